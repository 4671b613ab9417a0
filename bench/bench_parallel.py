"""The speed-up of the default jobs (every core) over ``--jobs 1`` on complete searches of the
3-thread race scenarios, measured side by side: the two commands alternate, ``--reps`` times each,
and the median wall times are compared.  Each pair's JSON documents (less their timing fields) must
be identical.

    python bench/bench_parallel.py [--reps 5] [--scenario PATH:DESIGN ...]

Machines here are shared and noisy: the load average before and after is printed, and each
pair's ratio too, not only the medians."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
DEFAULT = ["scenarios/races/hole-double-zero.toml:v4.7", "scenarios/races/hole-double-zero.toml:v4.10"]


def run(scenario: str, design: str, jobs: int | None) -> tuple[float, dict[str, object]]:
    cmd = [sys.executable, "-m", "faultlab", "explore", scenario, "--design", design, "--json", "--quiet"]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    doc = json.loads(proc.stdout)
    doc.pop("timing", None)
    return wall, doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scenario", action="append", help="PATH:DESIGN (repeatable)")
    args = ap.parse_args()
    load0 = os.getloadavg()
    print(f"| scenario | design | schedules | --jobs 1 (s) | default jobs, {os.cpu_count()} cores (s) | "
          "speed-up (median) | per pair | same result |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for item in args.scenario or DEFAULT:
        scenario, design = item.rsplit(":", 1)
        ones, manys, same = [], [], True
        schedules = 0
        for _ in range(args.reps):
            w1, d1 = run(scenario, design, 1)
            wn, dn = run(scenario, design, None)
            ones.append(w1)
            manys.append(wn)
            same &= d1 == dn
            schedules = d1["designs"][0]["schedules"]  # type: ignore[index]
        pairs = ", ".join(f"{a / b:.2f}" for a, b in zip(ones, manys, strict=True))
        print(f"| `{Path(scenario).stem}` | `{design}` | {schedules:,} | {statistics.median(ones):.1f} | "
              f"{statistics.median(manys):.1f} | {statistics.median(ones) / statistics.median(manys):.2f}x | "
              f"{pairs} | {'yes' if same else 'NO'} |")
    load1 = os.getloadavg()
    print(f"\nload average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
    main()
