"""Explore every bundled race scenario under every design and known bug; print verdicts, schedule
counts, distinct final states and time, optionally side by side with another checkout.

    python bench/verdicts.py [--before ../before] [--jobs N] [--json FILE]

``--before DIR`` runs the same matrix with ``DIR/.venv/bin/faultlab`` (a checkout of an earlier
commit with its own virtualenv, e.g. ``git worktree add ../before e04d03d && cd ../before &&
python -m venv .venv && .venv/bin/pip install -e .``) and prints both columns.  The 3-thread
scenarios run at preemption bound 2 (both columns), as the test suite does."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ["scenarios/seed/cow-vs-truncate.toml", *sorted(str(p.relative_to(ROOT))
                                                             for p in (ROOT / "scenarios/races").glob("*.toml"))]
BOUNDED = {"scenarios/races/three-hole-readers.toml": 2, "scenarios/races/hole-double-zero.toml": 2}
DESIGNS = ["xip", "v7", "v7-insert", "v4.0", "v4.7", "v4.10", "v6.1", "v6.18", "v4.0-no-isize-recheck",
           "v4.3-rc1", "v4.3-cow-unlock-mismatch", "v4.1-hole-double-zero", "v4.7-wake-one", "v4.10-iomap-first"]


def run(faultlab: str, scenario: str, design: str, cwd: Path) -> dict[str, object]:
    cmd = [faultlab, "explore", scenario, "--design", design, "--json", "--quiet"]
    if scenario in BOUNDED:
        cmd += ["--bound", str(BOUNDED[scenario])]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=3600)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        return {"verdict": f"error {proc.returncode}: {proc.stderr.strip()[:80]}", "schedules": "-",
                "final_states": "-", "seconds": elapsed}
    doc = json.loads(proc.stdout)["designs"][0]
    return {"verdict": doc["verdict"], "schedules": doc["schedules"], "complete": doc["complete"],
            "final_states": doc["final_states"], "seconds": round(elapsed, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="a checkout (with .venv) to run side by side")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    ap.add_argument("--scenario", action="append", help="only these scenarios")
    args = ap.parse_args()
    here = shutil.which("faultlab") or str(Path(sys.executable).parent / "faultlab")
    runs: list[tuple[str, str, Path, str, str]] = []
    scenarios = args.scenario or SCENARIOS
    for s in scenarios:
        for d in DESIGNS:
            runs.append(("after", here, ROOT, s, d))
            if args.before:
                runs.append(("before", str(args.before / ".venv/bin/faultlab"), args.before, s, d))
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda r: run(r[1], r[3], r[4], r[2]), runs))
    table: dict[tuple[str, str], dict[str, dict[str, object]]] = {}
    for (which, _f, _c, s, d), res in zip(runs, results, strict=True):
        table.setdefault((s, d), {})[which] = res
    cols = ["before", "after"] if args.before else ["after"]
    print(f"{'scenario':<40} {'design':<26} " + " ".join(f"{c + ' verdict':<26} {'sched':>7} {'fs':>3} {'s':>6}"
                                                         for c in cols))
    for (s, d), by in table.items():
        line = f"{Path(s).name:<40} {d:<26} "
        for c in cols:
            r = by[c]
            line += (f"{str(r['verdict']):<26} {str(r['schedules']):>7} {str(r['final_states']):>3} "
                     f"{r['seconds']:>6.2f} ")
        print(line.rstrip())
    if args.json:
        args.json.write_text(json.dumps([{"scenario": s, "design": d, **by} for (s, d), by in table.items()],
                                        indent=1))


if __name__ == "__main__":
    main()
