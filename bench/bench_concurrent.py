"""Concurrent oracle: how long the kernel side and the model side of `faultlab oracle --concurrent`
take, and how many distinct outcomes each side has, per scenario.

    python bench/bench_concurrent.py [--runs 10000] [--vm-runs 1000] [--no-vm] [--dax-on-host] [--markdown]
                                     [SCENARIO...]

Default scenarios: the seed and every file in scenarios/races. Page-cache scenarios run on host
tmpfs and host ext4 (as `--kernel host-tmpfs` / `--kernel host-ext4` would), N runs each in one
probe process; DAX scenarios run in ONE boot of the DAX VM, M runs each (and, with
--dax-on-host, also on host tmpfs and ext4). For each it prints the wall time of the kernel runs
(for the VM: of the whole boot, once), of the model's exploration, and the distinct outcomes on
both sides (the table in docs/fidelity.md; --markdown prints it as that table at the end). Kernel
outcome counts vary from run to run (real races); the model's are exact. A scenario the probe
cannot run is listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from dataclasses import replace

from faultlab.designs import get_design
from faultlab.oracle.concurrent import (
    KernelOutcomes,
    check,
    default_concurrent_design,
    model_outcomes,
    run_concurrent_in_vm,
    run_concurrent_on_host,
)
from faultlab.oracle.errors import UnsupportedScenarioError
from faultlab.oracle.program import check_probe_supports
from faultlab.scenario import load_scenario
from faultlab.scenario.model import Scenario

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


TABLE: list[str] = []


def row(scenario: Scenario, kernel: str, runs: int, kernel_s: float | None, outcomes: KernelOutcomes) -> None:
    design = get_design(default_concurrent_design(kernel))
    t0 = time.perf_counter()
    model = model_outcomes(scenario, design)
    model_s = time.perf_counter() - t0
    c = check(scenario, outcomes, model, design)
    verdict = "subset" if c.ok else f"{len(c.unexplained)} unexplained"
    bound = "complete" if model.complete else f"lower bound (bound {model.bound})"
    name = os.path.relpath(scenario.path, ROOT)
    print(
        f"{name:<54} {kernel:<10} {runs:>6} {'-' if kernel_s is None else f'{kernel_s:.2f} s':>10} "
        f"{len(c.kernel.outcomes):>7} "
        f"{len(model.outcomes):>6} {model.schedules:>7} {model_s:>7.1f} s  {bound}, {verdict}",
        flush=True,
    )
    how = f"{model.schedules} schedules, complete" if model.complete else (
        f"{model.schedules} schedules (bound {model.bound}): **lower bound**")
    TABLE.append(
        f"| `{os.path.relpath(scenario.path, os.path.join(ROOT, 'scenarios'))[:-5]}` | {scenario.fs} | "
        f"{kernel} (`{design.name}`) | {runs:,} | {len(c.kernel.outcomes)} | {len(model.outcomes)} | "
        f"{len(c.model_only)} | {how} | {'yes' if c.ok else f'**{len(c.unexplained)} not**'} |"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000, help="concurrent runs per scenario on the host")
    ap.add_argument("--vm-runs", type=int, default=1000, help="concurrent runs per DAX scenario in the VM")
    ap.add_argument("--no-vm", action="store_true", help="skip the DAX VM")
    ap.add_argument("--dax-on-host", action="store_true", help="also run the DAX scenarios on host tmpfs and ext4")
    ap.add_argument("--markdown", action="store_true", help="print the rows as a markdown table at the end")
    ap.add_argument("scenarios", nargs="*")
    args = ap.parse_args()
    paths = args.scenarios or [
        os.path.join(ROOT, "scenarios/seed/cow-vs-truncate.toml"),
        *sorted(glob.glob(os.path.join(ROOT, "scenarios/races/*.toml"))),
    ]
    scenarios = []
    for p in paths:
        sc = load_scenario(p)
        try:
            check_probe_supports(sc)
        except UnsupportedScenarioError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        scenarios.append(sc)
    print(f"{'scenario':<54} {'kernel':<10} {'runs':>6} {'kernel':>10} {'kernel':>7} {'model':>6} "
          f"{'model':>7} {'model':>9}")
    print(f"{'':<54} {'':<10} {'':>6} {'time':>10} {'outc.':>7} {'outc.':>6} {'sched.':>7} {'time':>9}")
    for s in scenarios:
        if s.fs == "dax" and not args.dax_on_host:
            continue
        for kernel in ("host-tmpfs", "host-ext4"):
            sc = replace(s, fs=kernel.removeprefix("host-"))
            t0 = time.perf_counter()
            outcomes = run_concurrent_on_host(sc, kernel, args.runs)
            row(sc, kernel, args.runs, time.perf_counter() - t0, outcomes)
    dax = [s for s in scenarios if s.fs == "dax"]
    if dax and not args.no_vm:
        t0 = time.perf_counter()
        results = run_concurrent_in_vm(dax, args.vm_runs, log=lambda m: print(m, file=sys.stderr))
        boot_s = time.perf_counter() - t0
        print(f"DAX VM: {len(dax)} scenarios x {args.vm_runs} runs in one boot: {boot_s:.1f} s", flush=True)
        for s, outcomes in zip(dax, results, strict=True):
            row(s, "dax-vm", args.vm_runs, None, outcomes)
    if args.markdown:
        print("\n| scenario | fs | kernel (design) | runs | kernel outcomes | model outcomes | model only "
              "| model exploration | subset |")
        print("|---|---|---|---:|---:|---:|---:|---|---|")
        print("\n".join(TABLE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
