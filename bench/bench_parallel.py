"""The speed-up of the default jobs (every core) over ``--jobs 1`` on complete searches of the
3-thread race scenarios, measured side by side: the two commands alternate, ``--reps`` times each,
and the median wall times are compared.  Each pair's JSON documents (less their timing fields) must
be identical.

    python bench/bench_parallel.py [--reps 5] [--scenario PATH:DESIGN ...] [--before CHECKOUT]

With ``--before`` (a checkout of an earlier commit, e.g. ``git worktree add ../before <commit>``)
its default jobs run in the same rotation, from its sources, and its speed-up over this checkout's
``--jobs 1`` is printed too (the one-process search is the same in both).

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


def run(scenario: str, design: str, jobs: int | None, src: Path | None = None) -> tuple[float, dict[str, object]]:
    cmd = [sys.executable, "-m", "faultlab", "explore", scenario, "--design", design, "--json", "--quiet"]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src / "src")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, check=False, env=env)
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
    ap.add_argument("--before", type=Path, help="a checkout of an earlier commit, run side by side")
    args = ap.parse_args()
    load0 = os.getloadavg()
    before_cols = " before: default jobs (s) | before: speed-up |" if args.before else ""
    print(f"| scenario | design | schedules | --jobs 1 (s) | default jobs, {os.cpu_count()} cores (s) | "
          f"speed-up (median) | per pair | same result |{before_cols}")
    print("|---|---|---:|---:|---:|---:|---|---|" + ("---:|---:|" if args.before else ""))
    for item in args.scenario or DEFAULT:
        scenario, design = item.rsplit(":", 1)
        ones, manys, befores, same = [], [], [], True
        schedules = 0
        for _ in range(args.reps):
            w1, d1 = run(scenario, design, 1)
            wn, dn = run(scenario, design, None)
            ones.append(w1)
            manys.append(wn)
            same &= d1 == dn
            if args.before:
                wb, db = run(scenario, design, None, args.before)
                befores.append(wb)
                same &= d1 == db
            schedules = d1["designs"][0]["schedules"]  # type: ignore[index]
        pairs = ", ".join(f"{a / b:.2f}" for a, b in zip(ones, manys, strict=True))
        one = statistics.median(ones)
        extra = f" {statistics.median(befores):.1f} | {one / statistics.median(befores):.2f}x |" if befores else ""
        print(f"| `{Path(scenario).stem}` | `{design}` | {schedules:,} | {one:.1f} | "
              f"{statistics.median(manys):.1f} | {one / statistics.median(manys):.2f}x | "
              f"{pairs} | {'yes' if same else 'NO'} |{extra}", flush=True)
    load1 = os.getloadavg()
    print(f"\nload average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
    main()
