"""How good the running estimate of the total is: a complete search's estimate (``Stats.estimate``,
what the progress bar and ``--json`` show) when 1%, 5%, 10%, 25% and 50% of its schedules are
done, against the real count.

    python bench/bench_estimate.py [SCENARIO:DESIGN[:BOUND] ...]

Default: hole-double-zero under v4.7 and v4.10, and three-hole-readers under v4.7 at bound 2."""

from __future__ import annotations

import sys

from faultlab.designs import get_design
from faultlab.explore.results import Stats
from faultlab.exploring import SearchOptions, explore_design
from faultlab.scenario import load_scenario

DEFAULT = ["scenarios/races/hole-double-zero.toml:v4.7", "scenarios/races/hole-double-zero.toml:v4.10",
           "scenarios/races/three-hole-readers.toml:v4.7:2"]
POINTS = (0.01, 0.05, 0.10, 0.25, 0.50)


def measure(spec: str) -> tuple[int, list[int | None], float]:
    path, design, *rest = spec.split(":")
    bound = int(rest[0]) if rest else None
    seen: list[tuple[int, int | None]] = []

    def progress(stats: Stats) -> None:
        seen.append((stats.schedules, stats.estimate))

    verdict = explore_design(load_scenario(path), get_design(design), bound=bound, progress=progress,
                             options=SearchOptions(jobs=1))
    real = verdict.result.schedules
    at: list[int | None] = []
    for p in POINTS:
        later = [e for s, e in seen if s >= p * real]
        at.append(later[0] if later else None)
    worst = max((max(e / real, real / e) for s, e in seen if s >= 0.10 * real and e), default=float("nan"))
    return real, at, worst


def main() -> None:
    specs = sys.argv[1:] or DEFAULT
    print("| search | real | " + " | ".join(f"{p:.0%}" for p in POINTS) + " | worst after 10% |")
    print("|---|---:|" + "---:|" * len(POINTS) + "---:|")
    for spec in specs:
        real, at, worst = measure(spec)
        cells = " | ".join("-" if e is None else f"{e:,}" for e in at)
        print(f"| {spec} | {real:,} | {cells} | {worst:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
