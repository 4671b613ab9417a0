"""Stopping a search cleanly on SIGINT or SIGTERM.

While :func:`handle_signals` is active, the first SIGINT or SIGTERM only sets a flag: the search
stops at its next safe point (between two runs, or between two tasks of a split search), saves its
checkpoint if it has one, and reports what it explored.  A second signal interrupts at once."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested: list[int] = []


def requested() -> bool:
    """Whether a stop was asked for."""
    return bool(_requested)


def signal_name() -> str:
    return signal.Signals(_requested[0]).name if _requested else ""


def request(signum: int = signal.SIGINT) -> None:
    """Ask the running search to stop (what the signal handler does)."""
    _requested.append(signum)


def clear() -> None:
    _requested.clear()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _requested:
        raise KeyboardInterrupt
    _requested.append(signum)


@contextmanager
def handle_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into stop requests for the duration (main thread only)."""
    clear()
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def ignore_in_worker() -> None:
    """A worker process leaves signals from the terminal to its coordinator, and dies with it (a
    coordinator killed with SIGKILL must not leave workers behind)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    clear()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
