"""Start-up: the wall time of one short command, end to end as a shell runs it (median of N runs),
once with the bytecode caches warm and once with none for faultlab's own modules.

    python bench/bench_startup.py [--runs 20] [--python PATH]

The command is ``faultlab explore scenarios/seed/cow-vs-truncate.toml --design xip --quiet`` (it
stops at the first counterexample, after 32 schedules, and prints it: exit status 1). ``--python``
times the faultlab installed for another interpreter (another checkout's venv, to compare); by
default the one running this script. "No .pyc" runs a fresh copy of the faultlab package, without
``__pycache__``, under ``PYTHONDONTWRITEBYTECODE=1``, so every run compiles faultlab's modules
from source (click and rich keep their caches, as in any installed environment)."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["explore", "scenarios/seed/cow-vs-truncate.toml", "--design", "xip", "--quiet"]


def time_runs(cmd: list[str], cwd: Path, env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        times.append(time.perf_counter() - t0)
        if proc.returncode not in (0, 1):
            sys.exit(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--python", default=sys.executable, help="the interpreter whose faultlab is timed")
    args = ap.parse_args()
    package = Path(subprocess.run([args.python, "-c", "import faultlab, os; print(os.path.dirname(faultlab.__file__))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    repo = package.parent.parent  # src/faultlab -> the checkout, where scenarios/ is
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    script = Path(args.python).parent / "faultlab"  # the console script pip installed next to it
    warm_cmd = [str(script), *ARGS]
    time_runs(warm_cmd, repo, env, 2)  # write the caches
    warm = time_runs(warm_cmd, repo, env, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(package, Path(tmp) / "faultlab", ignore=shutil.ignore_patterns("__pycache__"))
        cold_env = dict(env, PYTHONPATH=tmp, PYTHONDONTWRITEBYTECODE="1")
        check = subprocess.run([args.python, "-c", "import faultlab; print(faultlab.__file__)"], env=cold_env,
                               capture_output=True, text=True, check=True).stdout
        assert check.startswith(tmp), f"the copy is not the faultlab imported: {check}"
        cold = time_runs(warm_cmd, repo, cold_env, args.runs)
        assert not list(Path(tmp).rglob("__pycache__")), "a bytecode cache was written"
    print(f"faultlab {' '.join(ARGS)}  ({package})")
    for label, times in (("with .pyc", warm), ("no .pyc", cold)):
        print(f"  {label:<10} median {statistics.median(times) * 1000:6.0f} ms  "
              f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {len(times)} runs)")


if __name__ == "__main__":
    main()
