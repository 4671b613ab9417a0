"""The table of issue 12 (speed), measured side by side against a checkout of the commit before
that work, in one run:

    git worktree add ../before e04d03d
    (cd ../before && python -m venv .venv && .venv/bin/pip install -q -e .)
    python bench/bench_speed.py --before ../before [--reps 3] [--quick]

Rows: explorer schedules and steps/s on the seed (the four clean designs) and on hole-double-zero
under v4.7 and v4.10 (complete searches), the CPU seconds of the hole-double-zero searches (the
schedule counts before and now differ, since later soundness work added scheduling points: compare
the rates and the CPU per complete search), the model's cost per fault
against the kernel's (bench/bench_model.py's functions, in each checkout), the end-to-end time of
``faultlab explore scenarios/seed/cow-vs-truncate.toml --design xip`` (a subprocess), and the split
search on 2 workers against one process (this checkout only).  Explorer figures are for one
process (``jobs=1``): the split search's speed-up is its own row.  Each figure is the median of
``--reps`` runs; the load average before and after is printed, since machines here are shared.
``--quick`` caps the hole-double-zero searches at 2,000 schedules.  Explorer steps/s are steps per
CPU second of the exploring process (wall-clock rates on a shared machine say more about the other
load than about faultlab); the end-to-end and split-search rows are wall-clock times.  Each
checkout's interpreter runs with ``PYTHONPATH`` set to that checkout's ``src``, so that it measures
that checkout's sources whatever its environment has installed."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

# Runs in either checkout (its own interpreter, cwd = that checkout): prints one JSON line.
PROBE = r"""
import json, os, statistics, sys, time
sys.path.insert(0, "bench")
from faultlab.designs import get_design
from faultlab.execution import ModelExecution
from faultlab.explore.explorer import explore
from faultlab.scenario import load_scenario

what, reps, cap = sys.argv[1], int(sys.argv[2]), (int(sys.argv[3]) or None)

def search(path, designs):
    sc = load_scenario(path)
    steps = schedules = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for d in designs:
        design = get_design(d)
        r = explore(lambda: ModelExecution(sc, design), "dpor", stop_on_first=False, minimise=False,
                    max_schedules=cap)
        steps += r.steps
        schedules += r.schedules
    return steps, schedules, time.perf_counter() - t0, time.process_time() - c0

out = {}
if what == "model":
    from bench_model import KINDS, model_ns_per_fault
    for kind in KINDS:
        out[kind] = statistics.median(model_ns_per_fault(kind, 1024, 3)[0] for _ in range(reps))
else:
    path, designs = {"seed": ("scenarios/seed/cow-vs-truncate.toml", ["v7", "v4.0", "v4.7", "v4.10"]),
                     "hdz47": ("scenarios/races/hole-double-zero.toml", ["v4.7"]),
                     "hdz410": ("scenarios/races/hole-double-zero.toml", ["v4.10"])}[what]
    rows = [search(path, designs) for _ in range(reps if what == "seed" else 1)]
    out = {"steps": rows[0][0], "schedules": rows[0][1],
           "steps_per_s": statistics.median(r[0] / r[3] for r in rows),
           "cpu": statistics.median(r[3] for r in rows)}
print(json.dumps(out))
"""


def checkout_env(root: Path) -> dict[str, str]:
    """The environment for a checkout's interpreter: it imports that checkout's sources."""
    return dict(os.environ, PYTHONPATH=str(root / "src"))


def probe(root: Path, python: str, what: str, reps: int, cap: int | None) -> dict[str, float]:
    proc = subprocess.run([python, "-c", PROBE, what, str(reps), str(cap or 0)], cwd=root, capture_output=True,
                          text=True, check=True, env=checkout_env(root))
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def end_to_end(root: Path, python: str, reps: int, pycache: str) -> float:
    """The median wall time of the command, with bytecode caches (kept under ``pycache``, written by
    one untimed run, so that neither checkout is written to and neither compiles its sources while
    timed, whatever ``PYTHONDONTWRITEBYTECODE`` says)."""
    env = checkout_env(root)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = pycache
    cmd = [python, "-m", "faultlab", "explore", "scenarios/seed/cow-vs-truncate.toml", "--design", "xip"]
    times = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=root, capture_output=True, check=False, env=env)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def parallel_ratio(cap: int | None) -> tuple[float, float, int, int, bool]:
    from faultlab.designs import get_design
    from faultlab.explore.parallel import default_jobs
    from faultlab.exploring import SearchOptions, explore_design
    from faultlab.scenario import load_scenario

    sc = load_scenario(str(HERE / "scenarios/races/hole-double-zero.toml"))
    design = get_design("v4.7")
    out = []
    for jobs in (1, default_jobs()):
        t0 = time.perf_counter()
        v = explore_design(sc, design, max_schedules=cap, options=SearchOptions(jobs=jobs))
        out.append((time.perf_counter() - t0, v))
    (t1, one), (tn, many) = out
    return t1, tn, one.result.schedules, many.result.schedules, one.json() == many.json()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="a checkout of the commit before (with its own .venv)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="cap the hole-double-zero searches at 2,000 schedules")
    args = ap.parse_args()
    before = Path(args.before).resolve()
    before_py = str(before / ".venv/bin/python")
    if not Path(before_py).exists():
        sys.exit(f"bench_speed: no {before_py}: create it with "
                 f"(cd {args.before} && python -m venv .venv && .venv/bin/pip install -q -e .)")
    now_py = sys.executable
    cap = 2000 if args.quick else None
    load0 = os.getloadavg()
    rows: list[tuple[str, str, str, str]] = []

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.1f}x" if b else "-"

    for what, label in (("seed", "explorer, seed, 4 clean designs"),
                        ("hdz47", "explorer, hole-double-zero v4.7"),
                        ("hdz410", "explorer, hole-double-zero v4.10")):
        b = probe(before, before_py, what, args.reps, None if what == "seed" else cap)
        n = probe(HERE, now_py, what, args.reps, None if what == "seed" else cap)
        # The schedule counts differ: the soundness work after e04d03d added scheduling points, so
        # the same search has more (or fewer) schedules now.  Both counts are shown; the rates and
        # the CPU per complete search are what compare.
        rows.append((f"{label}, schedules", f"{int(b['schedules']):,}", f"{int(n['schedules']):,}", ""))
        rows.append((f"{label}, steps/s", f"{b['steps_per_s']:,.0f}",
                     f"{n['steps_per_s']:,.0f}", ratio(n["steps_per_s"], b["steps_per_s"])))
        if what != "seed":
            rows.append((f"{label}, CPU s" + (" (capped)" if cap else " (complete search)"),
                         f"{b['cpu']:.1f}", f"{n['cpu']:.1f}", ratio(b["cpu"], n["cpu"]) + " less"))
    sys.path.insert(0, str(HERE / "bench"))
    from bench_model import kernel_ns_per_fault

    mb = probe(before, before_py, "model", args.reps, None)
    mn = probe(HERE, now_py, "model", args.reps, None)
    for kind in mb:
        kernel = kernel_ns_per_fault(kind, 16384)
        if kernel:
            rows.append((f"model/kernel per fault, {kind}", f"{mb[kind] / kernel:.0f}x", f"{mn[kind] / kernel:.0f}x",
                         ratio(mb[kind], mn[kind]) + " less"))
        else:
            rows.append((f"model ns per fault, {kind} (no kernel timing)", f"{mb[kind]:,.0f}", f"{mn[kind]:,.0f}",
                         ratio(mb[kind], mn[kind]) + " less"))
    with tempfile.TemporaryDirectory() as cb, tempfile.TemporaryDirectory() as cn:
        eb = end_to_end(before, before_py, max(args.reps, 5), cb)
        en = end_to_end(HERE, now_py, max(args.reps, 5), cn)
    rows.append(("faultlab explore seed --design xip, end to end (s)", f"{eb:.2f}", f"{en:.2f}",
                 f"{en / eb:.2f}x the time"))
    t1, tn, s1, sn, same = parallel_ratio(cap)
    rows.append((f"hole-double-zero v4.7: --jobs 1 vs default jobs (s){' (capped)' if cap else ''}",
                 f"{t1:.1f}", f"{tn:.1f}", f"{t1 / tn:.2f}x faster, schedules {s1:,} / {sn:,}, "
                 f"{'same result' if same else 'DIFFERENT RESULT'}"))
    load1 = os.getloadavg()
    w = max(len(r[0]) for r in rows)
    print(f"| {'measurement':<{w}} | before (e04d03d) | now | ratio |")
    print(f"|{'-' * (w + 2)}|---:|---:|---|")
    for r in rows:
        print(f"| {r[0]:<{w}} | {r[1]} | {r[2]} | {r[3]} |")
    print(f"\nload average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
