"""The table of issue 12 (speed), measured side by side against a checkout of the commit before
that work, in one run:

    git worktree add ../before e04d03d
    git worktree add ../last LAST_COMMIT        # optional: a second column, e.g. the last release
    python bench/bench_speed.py --before ../before [--before ../last] [--reps 3] [--quick]

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
checkout's interpreter (its own ``.venv`` if it has one, else this one) runs with ``PYTHONPATH`` set
to that checkout's ``src``, so that it measures that checkout's sources whatever its environment
has installed."""

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
    if what == "seed":  # a short search: one untimed round first (the designs' images are linked then)
        search(path, designs)
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


def interpreter(root: Path) -> str:
    """A checkout's own venv if it has one, else this interpreter (PYTHONPATH picks the sources)."""
    own = root / ".venv/bin/python"
    return str(own) if own.exists() else sys.executable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, action="append",
                    help="a checkout of an earlier commit (repeat for more columns; ratios are against each)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="cap the hole-double-zero searches at 2,000 schedules")
    args = ap.parse_args()
    befores = [Path(b).resolve() for b in args.before]
    for b in befores:
        if not (b / "src/faultlab").is_dir():
            sys.exit(f"bench_speed: {b} is not a faultlab checkout (no src/faultlab)")
    names = [subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=b, capture_output=True, text=True,
                            check=False).stdout.strip() or b.name for b in befores]
    now_py = sys.executable
    cap = 2000 if args.quick else None
    load0 = os.getloadavg()
    rows: list[tuple[str, list[str], str, str]] = []  # label, befores, now, ratios

    def ratios(values: list[float], now: float, higher_is_better: bool, unit: str = "x") -> str:
        out = []
        for name, v in zip(names, values, strict=True):
            r = (now / v if higher_is_better else v / now) if v and now else 0.0
            out.append(f"{r:.2f}{unit} vs {name}")
        return ", ".join(out)

    for what, label in (("seed", "explorer, seed, 4 clean designs"),
                        ("hdz47", "explorer, hole-double-zero v4.7"),
                        ("hdz410", "explorer, hole-double-zero v4.10")):
        # Interleaved: each checkout's figure is taken next to the others', under the same load.
        bs = [probe(b, interpreter(b), what, args.reps, None if what == "seed" else cap) for b in befores]
        n = probe(HERE, now_py, what, args.reps, None if what == "seed" else cap)
        # The schedule counts may differ: the soundness work after e04d03d added scheduling points,
        # so the same search has more (or fewer) schedules now.  The rates and the CPU per complete
        # search are what compare.
        rows.append((f"{label}, schedules", [f"{int(b['schedules']):,}" for b in bs], f"{int(n['schedules']):,}", ""))
        rows.append((f"{label}, steps/s", [f"{b['steps_per_s']:,.0f}" for b in bs], f"{n['steps_per_s']:,.0f}",
                     ratios([b["steps_per_s"] for b in bs], n["steps_per_s"], True)))
        if what != "seed":
            rows.append((f"{label}, CPU s" + (" (capped)" if cap else " (complete search)"),
                         [f"{b['cpu']:.1f}" for b in bs], f"{n['cpu']:.1f}",
                         ratios([b["cpu"] for b in bs], n["cpu"], False, "x less")))
    sys.path.insert(0, str(HERE / "bench"))
    from bench_model import kernel_ns_per_fault

    mbs = [probe(b, interpreter(b), "model", args.reps, None) for b in befores]
    mn = probe(HERE, now_py, "model", args.reps, None)
    for kind in mn:
        kernel = kernel_ns_per_fault(kind, 16384)
        if kernel:
            rows.append((f"model/kernel per fault, {kind}", [f"{mb[kind] / kernel:.0f}x" for mb in mbs],
                         f"{mn[kind] / kernel:.0f}x", ratios([mb[kind] for mb in mbs], mn[kind], False, "x less")))
        else:
            rows.append((f"model ns per fault, {kind} (no kernel timing)", [f"{mb[kind]:,.0f}" for mb in mbs],
                         f"{mn[kind]:,.0f}", ratios([mb[kind] for mb in mbs], mn[kind], False, "x less")))
    ebs = []
    for b in befores:
        with tempfile.TemporaryDirectory() as cb:
            ebs.append(end_to_end(b, interpreter(b), max(args.reps, 5), cb))
    with tempfile.TemporaryDirectory() as cn:
        en = end_to_end(HERE, now_py, max(args.reps, 5), cn)
    rows.append(("faultlab explore seed --design xip, end to end (s)", [f"{e:.2f}" for e in ebs], f"{en:.2f}",
                 ", ".join(f"{en / e:.2f}x the time of {name}" for name, e in zip(names, ebs, strict=True))))
    t1, tn, s1, sn, same = parallel_ratio(cap)
    rows.append((f"hole-double-zero v4.7: --jobs 1 (before columns) vs default jobs (s){' (capped)' if cap else ''}",
                 [f"{t1:.1f}"] + [""] * (len(befores) - 1), f"{tn:.1f}",
                 f"{t1 / tn:.2f}x faster, schedules {s1:,} / {sn:,}, {'same result' if same else 'DIFFERENT RESULT'}"))
    load1 = os.getloadavg()
    w = max(len(r[0]) for r in rows)
    print(f"| {'measurement':<{w}} | " + " | ".join(names) + " | now | ratio |")
    print(f"|{'-' * (w + 2)}|" + "---:|" * len(names) + "---:|---|")
    for label, bvals, now, rat in rows:
        print(f"| {label:<{w}} | " + " | ".join(bvals) + f" | {now} | {rat} |")
    print(f"\nload average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
