"""Explorer throughput and reduction: schedules per second, and DPOR against plain DFS.

    python bench/bench_explore.py [--max-schedules N] [--no-model]

For each toy program (faultlab.explore.toys) it runs plain DFS and DPOR to completion (or N
schedules) and prints the schedule counts, whether each search completed, and schedules/second.
With the model available it then runs DPOR on the scenarios in scenarios/seed and scenarios/races
under every design.  Plain output, no assertions; machines here are shared and noisy, so compare
counts, and take the rates as rough."""

from __future__ import annotations

import argparse
import functools
import glob
import os
import time
from collections.abc import Callable

from faultlab.explore import toys
from faultlab.explore.explorer import explore
from faultlab.explore.program import Program
from faultlab.explore.results import ExploreResult

TOYS: dict[str, Callable[[], toys.ToyProgram]] = {
    "counter x2": lambda: toys.counter(2),
    "counter x3": lambda: toys.counter(3),
    "counter x3 locked": lambda: toys.counter(3, locked=True),
    "counter x2 padded": lambda: toys.counter(2, padding=4),
    "two locks": toys.two_locks,
    "independent 3x1": lambda: toys.independent(3, 1),
    "independent 3x2": lambda: toys.independent(3, 2),
    "ordering": toys.ordering,
    "lost wake-up": toys.lost_wakeup,
    "hand-off": toys.handoff,
}


def timed(program: Program, strategy: str, max_schedules: int) -> tuple[ExploreResult, float]:
    t0 = time.perf_counter()
    r = explore(program, strategy, stop_on_first=False, minimise=False, max_schedules=max_schedules)
    return r, time.perf_counter() - t0


def cell(r: ExploreResult, dt: float) -> str:
    done = "" if r.complete else "+"
    return f"{r.schedules:>8}{done:1} {r.schedules / dt if dt > 0 else 0.0:>9.0f}/s"


def bench_toys(max_schedules: int) -> None:
    print(f"{'toy program':<20} {'plain DFS':>19} {'DPOR':>19} {'final':>6} {'violations'}")
    for name, make in TOYS.items():
        prog = make()
        plain, dt_plain = timed(prog, "dfs", max_schedules)
        dpor, dt_dpor = timed(prog, "dpor", max_schedules)
        mismatch = plain.complete and dpor.complete and plain.final_states != dpor.final_states
        same = " MISMATCH" if mismatch else ""
        print(
            f"{name:<20} {cell(plain, dt_plain)} {cell(dpor, dt_dpor)} {dpor.final_state_count:>6} "
            f"{','.join(sorted(dpor.violation_ids)) or '-'}{same}"
        )
    print("(+ = stopped at the schedule cap; rates are schedules per second)")


def bench_model(max_schedules: int) -> None:
    try:
        from faultlab.designs import resolve_designs
        from faultlab.execution import ModelExecution
        from faultlab.scenario.parse import load_scenario
    except ImportError as e:  # the model is optional for this benchmark
        print(f"(model not available: {e})")
        return
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scenarios")
    paths = sorted(glob.glob(os.path.join(root, "seed", "*.toml")))
    paths += sorted(glob.glob(os.path.join(root, "races", "*.toml")))
    print()
    print(f"{'scenario':<26} {'design':<10} {'DPOR':>19} {'steps/run':>9} {'violations'}")
    for path in paths:
        scenario = load_scenario(path)
        if len(scenario.threads) < 2:
            continue
        for design in resolve_designs("all"):
            program = functools.partial(ModelExecution, scenario, design, record_steps=False)
            r, dt = timed(program, "dpor", max_schedules)
            print(
                f"{os.path.basename(path):<26} {design.__name__:<10} {cell(r, dt)} "
                f"{r.steps / max(r.schedules, 1):>9.0f} {','.join(sorted(r.violation_ids)) or '-'}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--max-schedules", type=int, default=50_000)
    ap.add_argument("--no-model", action="store_true", help="only the toy programs")
    args = ap.parse_args()
    bench_toys(args.max_schedules)
    if not args.no_model:
        bench_model(min(args.max_schedules, 5_000))


if __name__ == "__main__":
    main()
