"""Where a model fault's time goes: the COW benchmark of bench_model.py run four times, with the
scheduler's points and/or the event stream (and so every check) switched off by patching them to
no-ops.  The difference between the rows is what each costs; the last row is the model alone.

    python bench/bench_model_breakdown.py [--pages N]"""

from __future__ import annotations

import argparse
from typing import Any

from bench_model import model_ns_per_fault

import faultlab.kernel.events as events
import faultlab.sched.core as core


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=2048)
    args = ap.parse_args()
    point, emit = core.Scheduler.point, events.EventBus.emit

    def no_point(self: Any, *a: Any, **kw: Any) -> None:
        return None

    def no_emit(self: Any, kind: str, /, **data: Any) -> None:
        return None

    rows = []
    for label, p, e in (("everything on", point, emit), ("no scheduling points", no_point, emit),
                        ("no events (no checks)", point, no_emit), ("neither", no_point, no_emit)):
        core.Scheduler.point, events.EventBus.emit = p, e  # type: ignore[method-assign]
        rows.append((label, model_ns_per_fault("cow", args.pages, 3)[0]))
    core.Scheduler.point, events.EventBus.emit = point, emit  # type: ignore[method-assign]
    for label, ns in rows:
        print(f"{label:<24} {ns:>8.0f} ns per COW fault")


if __name__ == "__main__":
    main()
