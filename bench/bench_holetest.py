"""holetest with three threads on one DAX hole page: how far DPOR gets per design, unbounded
(up to --max-schedules) and at preemption bounds 1 and 2, with schedules, distinct final states,
verdict and time.

    python bench/bench_holetest.py [--max-schedules 200000] [--design v4.10 ...] [SCENARIO]

The default scenario is scenarios/races/holetest-3-one-page.toml; docs/designs.md quotes the
numbers. The test suite explores it at preemption bound 1 only.
"""

from __future__ import annotations

import argparse
import time

from faultlab.designs import get_design
from faultlab.exploring import explore_design
from faultlab.scenario import load_scenario

DESIGNS = ["xip", "v7", "v7-insert", "v4.0", "v4.7", "v4.10"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="scenarios/races/holetest-3-one-page.toml")
    ap.add_argument("--max-schedules", type=int, default=200_000)
    ap.add_argument("--design", action="append", help="only these designs")
    args = ap.parse_args()
    scenario = load_scenario(args.scenario)
    print(f"{args.scenario}: {scenario.title}")
    print(f"{'design':<10} {'bound':>6} {'schedules':>10} {'states':>7} {'complete':>9} {'seconds':>8}  verdict")
    for name in args.design or DESIGNS:
        for bound in (1, 2, None):
            t0 = time.perf_counter()
            v = explore_design(scenario, get_design(name), bound=bound, max_schedules=args.max_schedules)
            r = v.result
            verdict = "clean" if v.clean else ", ".join(v.violation_ids)
            print(f"{name:<10} {bound if bound is not None else '-':>6} {r.schedules:>10} {r.final_state_count:>7} "
                  f"{'yes' if r.complete else r.stop_reason:>9} {time.perf_counter() - t0:>8.1f}  {verdict}",
                  flush=True)


if __name__ == "__main__":
    main()
