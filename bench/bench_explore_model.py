"""The explorer on the model: exhaustive exploration of the seed scenario, time to the first
counterexample, schedules per second, and DPOR against plain exhaustive search.

    python bench/bench_explore_model.py [--plain-cap N]

Wall-clock numbers are medians of a few runs on a shared machine: compare them with each other,
not across machines.  Schedule counts are exact and deterministic."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from faultlab.designs import get_design
from faultlab.execution import ModelExecution
from faultlab.explore.explorer import explore
from faultlab.explore.results import ExploreResult
from faultlab.exploring import explore_design
from faultlab.scenario import load_scenario

SEED = "scenarios/seed/cow-vs-truncate.toml"
THREE = "scenarios/bench/readers-vs-extend.toml"


def timed(fn: Callable[[], object], reps: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def search(path: str, design: str, strategy: str, cap: int | None = None) -> ExploreResult:
    scenario = load_scenario(path)
    d = get_design(design)
    return explore(lambda: ModelExecution(scenario, d), strategy, max_schedules=cap, stop_on_first=False,
                   minimise=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plain-cap", type=int, default=20000, help="stop plain search on the seed after N schedules")
    args = ap.parse_args()
    seed = load_scenario(SEED)

    print("seed scenario, exhaustive DPOR (dfs), per design:")
    print(f"  {'design':<10} {'schedules':>9} {'complete':>9} {'seconds':>8} {'schedules/s':>12}")
    for design in ("v7", "v4.0", "v4.7", "v4.10"):
        secs, verdict = timed(lambda d=design: explore_design(seed, get_design(d)))
        r = verdict.result  # type: ignore[attr-defined]
        print(f"  {design:<10} {r.schedules:>9} {str(r.complete):>9} {secs:>8.3f} {r.schedules / secs:>12.0f}")

    print("time to the first counterexample on the seed scenario (search + minimisation + replay):")
    for design in ("xip", "v4.0-no-isize-recheck"):
        secs, verdict = timed(lambda d=design: explore_design(seed, get_design(d)))
        c = verdict.counterexamples[0]  # type: ignore[attr-defined]
        print(f"  {design:<22} {c.id} at schedule {c.found_at}, {c.preemptions} preemption(s): {secs:.3f} s")

    print("DPOR against plain exhaustive search (schedules; same final states required):")
    for path, design, cap in ((THREE, "v4.10", None), (SEED, "v4.0", args.plain_cap)):
        dpor = search(path, design, "dpor")
        t0 = time.perf_counter()
        plain = search(path, design, "dfs", cap)
        plain_secs = time.perf_counter() - t0
        more = "" if plain.complete else "+ (stopped)"
        same = "same final states" if plain.final_states == dpor.final_states else "DIFFERENT final states"
        ratio = plain.schedules / dpor.schedules
        print(f"  {path} [{design}]: DPOR {dpor.schedules}, plain {plain.schedules}{more} "
              f"({plain_secs:.1f} s, {plain.schedules / plain_secs:.0f} schedules/s): "
              f"{'>=' if not plain.complete else ''}{ratio:.0f}x fewer, {same}")


if __name__ == "__main__":
    main()
