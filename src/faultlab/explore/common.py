"""Small pieces shared by the strategies: the default choice and aborting a run."""

from __future__ import annotations

from faultlab.sched.core import ModelThread


class AbortRun(BaseException):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a chooser to abandon the current run (e.g. a DPOR run that is sleep-set blocked).

    A BaseException so that model code catching ``Exception`` does not swallow it."""


def default_choice(prev: int, ready: list[ModelThread]) -> ModelThread:
    """The deterministic default: the thread that made the previous step if it is still ready,
    otherwise the ready thread with the lowest id.  Never a preemption."""
    for t in ready:
        if t.tid == prev:
            return t
    return ready[0]


def lowest_bit(mask: int) -> int:
    """Index of the lowest set bit of a non-zero mask."""
    return (mask & -mask).bit_length() - 1


class RunCut(AbortRun):
    """Raised by a program to cut a run short: one of its retry loops went round more times than
    the exploration's retry bound allows.  The search counts it, and is then not complete."""
