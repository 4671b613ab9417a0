"""What the explore and compare commands need beyond parsing: search options from the command
line, the timing figures of ``--json``, and the message of an interrupted exploration."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from faultlab.errors import UserError
from faultlab.explore import interrupt
from faultlab.explore.checkpoint import Checkpoint
from faultlab.explore.parallel import default_jobs
from faultlab.exploring import DesignVerdict, SearchOptions


def make_search_options(jobs: int | None, engine: str, address: str | None, checkpoint: str | None,
                        resume: str | None) -> SearchOptions:
    """Options of an exhaustive search from the command line (``jobs`` None: every core)."""
    if address is not None and engine != "ray":
        raise UserError("--address applies to --engine ray only")
    if engine == "ray":
        from faultlab.explore.ray_engine import check_ray

        check_ray()
    cp = None
    if resume is not None:
        cp = Checkpoint(resume, resume=True)
        if checkpoint is not None and checkpoint != resume:
            saved = cp.entries
            cp = Checkpoint(checkpoint, resume=False)
            cp.entries = saved
            cp.resuming = True
    elif checkpoint is not None:
        cp = Checkpoint(checkpoint, resume=False)
    if jobs is None:  # every core here, or (0) every CPU of the Ray cluster
        jobs = 0 if engine == "ray" else default_jobs()
    return SearchOptions(jobs=jobs, engine=engine, address=address, checkpoint=cp)


def timing_json(verdicts: Sequence[DesignVerdict]) -> dict[str, Any]:
    """Wall-clock figures per design, kept apart from the (deterministic) verdicts."""
    return {v.design: dict(v.timing, schedules=v.result.schedules, steps=v.result.steps) for v in verdicts}


def interrupted_message(verdicts: Sequence[DesignVerdict], options: SearchOptions, argv: Sequence[str]) -> str:
    """What an exploration stopped by a signal says on stderr: what it explored, how to go on."""
    v = verdicts[-1]
    what = (f"faultlab: interrupted ({interrupt.signal_name() or 'signal'}) while exploring {v.design}: "
            f"{v.result.schedules} schedules, {v.result.steps} steps, {v.result.final_state_count} distinct final "
            "states so far")
    keep: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--checkpoint", "--resume"):
            skip = True
            continue
        if arg.startswith(("--checkpoint=", "--resume=")):
            continue
        keep.append(arg)
    if options.checkpoint is not None:
        path = str(options.checkpoint.path)
        return f"{what}; progress saved. Resume with: {shlex.join(['faultlab', *keep, '--resume', path])}"
    return (f"{what}; nothing was saved. To be able to resume next time, run with a checkpoint: "
            f"{shlex.join(['faultlab', *keep, '--checkpoint', 'FILE'])}")
