"""The cost of `faultlab explore --crash`: per scenario and design, the verdict, the schedules
explored, the crash points checked (one after every step of every schedule, and at the end), the
crash states tried (line choices: each pending cache line's media, in-flight and cached values),
and the time, next to the same exploration without --crash.

    python bench/bench_crash.py [--design all] [SCENARIO...]

Default scenarios: the seed, the msync scenarios (scenarios/ported/*dax*.toml with an msync) and
scenarios/crash.  One process (--jobs 1), so the crash counters of this process are the search's.
"""

from __future__ import annotations

import argparse
import glob
import os
import time

from faultlab.checks import durability
from faultlab.designs import resolve_designs
from faultlab.exploring import SearchOptions, explore_design
from faultlab.scenario import load_scenario

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_scenarios() -> list[str]:
    out = [os.path.join(ROOT, "scenarios/seed/cow-vs-truncate.toml")]
    for path in sorted(glob.glob(os.path.join(ROOT, "scenarios/ported/*dax*.toml"))):
        with open(path) as f:
            if "msync" in f.read():
                out.append(path)
    out += sorted(glob.glob(os.path.join(ROOT, "scenarios/crash/*.toml")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--design", default="all")
    ap.add_argument("scenarios", nargs="*")
    args = ap.parse_args()
    print(f"{'scenario':<44} {'design':<8} {'verdict':<15} {'schedules':>9} {'plain s':>8} "
          f"{'crash pts':>9} {'states':>8} {'crash s':>8}")
    for path in args.scenarios or default_scenarios():
        scenario = load_scenario(path)
        for design in resolve_designs(args.design):
            opts = SearchOptions(jobs=1)
            t0 = time.perf_counter()
            explore_design(scenario, design, options=opts)
            plain_s = time.perf_counter() - t0
            durability.STATS.update(crash_points=0, line_choices=0)
            t0 = time.perf_counter()
            v = explore_design(scenario, design, options=opts, crash=True)
            crash_s = time.perf_counter() - t0
            verdict = "clean" if v.clean else v.violation_ids[0]
            name = os.path.relpath(path, ROOT)
            print(f"{name:<44} {design.name:<8} {verdict:<15} {v.result.schedules:>9} {plain_s:>8.2f} "
                  f"{durability.STATS['crash_points']:>9} {durability.STATS['line_choices']:>8} {crash_s:>8.2f}")


if __name__ == "__main__":
    main()
