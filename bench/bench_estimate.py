"""How good the running estimate of the total is: a complete search's estimate (``Stats.estimate``,
what the progress bar and ``--json`` show) when 1%, 5%, 10%, 25% and 50% of its schedules are
done, against the real count, and the worst ratio (either way) at any schedule after 10%.

    python bench/bench_estimate.py [--jobs N] [SCENARIO:DESIGN[:BOUND] ...]

Default: the complete race searches of ``DEFAULT`` (docs/benchmarks.md says why these), one process
each (``--jobs 1``, as the table in the docs; ``--jobs 2`` measures the split search's estimate).
One search at a time; the largest takes minutes."""

from __future__ import annotations

import argparse

from faultlab.designs import get_design
from faultlab.explore.results import Stats
from faultlab.exploring import SearchOptions, explore_design
from faultlab.scenario import load_scenario

# One search per bundled race scenario (and the seed): of v4.7, v4.10 and v6.1, the one with the
# most schedules among those complete within 8 s on one core, if it has 80 or more; then
# three-hole-readers at preemption bound 2 and hole-double-zero unbounded under v4.7 and v4.10
# (complete in minutes).  Smallest to largest.
DEFAULT = [
    "scenarios/races/generic-503-dax.toml:v4.7",
    "scenarios/races/shared-store-vs-truncate-dax.toml:v4.7",
    "scenarios/seed/cow-vs-truncate.toml:v4.7",
    "scenarios/races/read-fault-vs-write.toml:v6.1",
    "scenarios/races/private-write-faults-one-page.toml:v4.7",
    "scenarios/races/private-write-faults-one-page-ext4.toml:v4.7",
    "scenarios/races/mkwrite-vs-truncate.toml:v4.7",
    "scenarios/races/private-store-vs-truncate-ext4.toml:v4.7",
    "scenarios/races/holetest-2-neighbours.toml:v6.1",
    "scenarios/races/hole-double-zero.toml:v6.1",
    "scenarios/races/truncate-vs-cow-and-shared-loads-tmpfs.toml:v6.1",
    "scenarios/races/generic-437-tmpfs.toml:v4.7",
    "scenarios/races/fault-around-vs-truncate-ext4.toml:v6.1",
    "scenarios/races/shared-store-vs-truncate-ext4.toml:v6.1",
    "scenarios/races/private-write-faults-one-page-dax.toml:v4.7",
    "scenarios/races/private-store-vs-truncate-tmpfs.toml:v4.7",
    "scenarios/races/fault-around-vs-truncate.toml:v6.1",
    "scenarios/races/shared-store-vs-truncate-tmpfs.toml:v6.1",
    "scenarios/races/hole-write-fault-vs-write.toml:v4.10",
    "scenarios/races/holetest-2-one-page.toml:v6.1",
    "scenarios/races/hole-read-vs-write-fault.toml:v6.1",
    "scenarios/races/three-hole-readers.toml:v4.7:2",
    "scenarios/races/hole-double-zero.toml:v4.7",
    "scenarios/races/hole-double-zero.toml:v4.10",
]
POINTS = (0.01, 0.05, 0.10, 0.25, 0.50)


def measure(spec: str, jobs: int) -> tuple[int, bool, list[int | None], float]:
    """(real count, complete, the estimate at each of POINTS, worst ratio after 10%)."""
    path, design, *rest = spec.split(":")
    bound = int(rest[0]) if rest else None
    seen: list[tuple[int, int | None]] = []

    def progress(stats: Stats) -> None:
        seen.append((stats.schedules, stats.estimate))

    verdict = explore_design(load_scenario(path), get_design(design), bound=bound, progress=progress,
                             options=SearchOptions(jobs=jobs))
    real = verdict.result.schedules
    at: list[int | None] = []
    for p in POINTS:
        later = [e for s, e in seen if s >= p * real]
        at.append(later[0] if later else None)
    worst = max((max(e / real, real / e) for s, e in seen if s >= 0.10 * real and e), default=float("nan"))
    return real, verdict.result.complete, at, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("specs", nargs="*", metavar="SCENARIO:DESIGN[:BOUND]")
    args = ap.parse_args()
    print("| search | real | " + " | ".join(f"{p:.0%}" for p in POINTS) + " | worst after 10% |")
    print("|---|---:|" + "---:|" * len(POINTS) + "---:|")
    for spec in args.specs or DEFAULT:
        real, complete, at, worst = measure(spec, args.jobs)
        cells = " | ".join("-" if e is None else f"{e:,}" for e in at)
        name = spec.removeprefix("scenarios/").replace(".toml", "").replace("races/", "")
        flag = "" if complete else " (pruned by the bound)"
        worst_cell = f"**{worst:.1f}x**" if worst > 2 else f"{worst:.1f}x"  # bold: not within 2x
        print(f"| {name}{flag} | {real:,} | {cells} | {worst_cell} |", flush=True)


if __name__ == "__main__":
    main()
