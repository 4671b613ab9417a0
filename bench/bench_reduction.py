"""Every bundled scenario under every design (known bugs included), each search capped, in this
checkout and in an earlier one, side by side: how many searches complete, the schedules and the
sleep-set-blocked runs of those complete in both, and every difference in what they find (verdict,
violations, end states, counterexamples).  A change to the reduction must show no difference but
smaller counts.

    python bench/bench_reduction.py --before ../before [--cap 300]

Each checkout's sources are run by this interpreter (``PYTHONPATH=<checkout>/src``), the two at
once (one process each).  ``scenarios/crash`` is explored with ``--crash``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE = r"""
import glob, json, sys
from faultlab.designs import ALL_DESIGNS
from faultlab.errors import UserError
from faultlab.exploring import SearchOptions, explore_design
from faultlab.scenario import load_scenario
for path in sorted(glob.glob("scenarios/**/*.toml", recursive=True)):
    sc = load_scenario(path)
    for name in sorted(ALL_DESIGNS):
        try:
            v = explore_design(sc, ALL_DESIGNS[name], max_schedules=int(sys.argv[1]),
                               options=SearchOptions(jobs=1), crash="/crash/" in path)
        except UserError:
            row = None
        else:
            r = v.result
            row = [r.complete, sorted(set(r.violation_ids)), len(r.final_states), r.schedules,
                   r.sleep_blocked, [[c.id, c.steps, c.schedule] for c in v.counterexamples]]
        print(json.dumps([path + ":" + name, row]), flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="a checkout of the earlier commit")
    ap.add_argument("--cap", type=int, default=300, help="schedules per search (default 300)")
    args = ap.parse_args()
    procs = {}
    for label, tree in (("before", Path(args.before).resolve()), ("now", ROOT)):
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
        procs[label] = subprocess.Popen([sys.executable, "-c", ONE, str(args.cap)], cwd=tree, env=env,
                                        stdout=subprocess.PIPE, text=True)
    rows = {}
    for label, proc in procs.items():
        out, _ = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"bench_reduction: the {label} checkout failed (status {proc.returncode})")
        rows[label] = dict(json.loads(line) for line in out.splitlines())
    before, now = rows["before"], rows["now"]
    keys = [k for k in now if k in before]
    diffs = []
    complete = [0, 0]
    sums = [0, 0, 0, 0]  # schedules and blocked, before and now, of searches complete in both
    fewer = more = 0
    for k in keys:
        b, n = before[k], now[k]
        if b is None or n is None:
            if (b is None) != (n is None):
                diffs.append(f"{k}: supported {b is not None} before, {n is not None} now")
            continue
        complete[0] += b[0]
        complete[1] += n[0]
        if b[0] and n[0]:
            sums[0] += b[3]
            sums[1] += n[3]
            sums[2] += b[4]
            sums[3] += n[4]
            fewer += n[3] < b[3]
            more += n[3] > b[3]
            if b[1:3] != n[1:3]:
                diffs.append(f"{k}: violations/end states {b[1:3]} before, {n[1:3]} now")
        elif b[1] != n[1] and (b[0] or n[0] or (b[1] and n[1])):
            diffs.append(f"{k}: violations {b[1]} before, {n[1]} now")
        if [c[:2] for c in b[5]] != [c[:2] for c in n[5]]:
            diffs.append(f"{k}: counterexamples {[c[:2] for c in b[5]]} before, {[c[:2] for c in n[5]]} now")
    print(f"{len(keys)} searches capped at {args.cap} schedules; complete: {complete[0]} before, {complete[1]} now")
    print(f"complete in both: schedules {sums[0]:,} before, {sums[1]:,} now ({fewer} searches fewer, {more} more); "
          f"sleep-set blocked {sums[2]:,} before, {sums[3]:,} now")
    print(f"differences in what they find: {len(diffs)}")
    for d in diffs:
        print("  " + d)


if __name__ == "__main__":
    main()
