"""Model cost per fault (read, COW, shared) next to the real kernel's, measured in the same run.

    python bench/bench_model.py [--pages N] [--reps R]

The kernel numbers come from the C probe's timing mode (faultlab.oracle.host.time_faults_on_host);
without a C compiler they are skipped with a note.  Report ratios, not absolute times: machines
here are shared and noisy."""

from __future__ import annotations

import argparse
import statistics
import time

from faultlab.designs import get_design
from faultlab.execution import ModelExecution
from faultlab.scenario import ScenarioBuilder
from faultlab.sched import SequentialChooser

KINDS = {
    # kind: (mapping, op template, fs)
    "read": ("private r", "load m {i}p", "tmpfs"),
    "cow": ("private rw", "store m {i}p B", "tmpfs"),
    "shared": ("shared rw", "store m {i}p B", "tmpfs"),
}


def model_ns_per_fault(kind: str, pages: int, reps: int, design: str = "v4.10") -> tuple[float, int]:
    mapping, template, fs = KINDS[kind]
    ops = [f"m = mmap data 0 {pages}p {mapping}"] + [template.format(i=i) for i in range(pages)]
    scenario = (ScenarioBuilder(f"bench {kind}", fs=fs).file("data", size=f"{pages}p", fill="A")
                .thread("t", *ops).build())
    times = []
    faults = 0
    for _ in range(reps):
        execution = ModelExecution(scenario, get_design(design), record_steps=False)
        t0 = time.perf_counter()
        result = execution.run(SequentialChooser())
        times.append(time.perf_counter() - t0)
        faults = result.counters["faults"]
    return statistics.median(times) * 1e9 / faults, faults


def kernel_ns_per_fault(kind: str, pages: int) -> float | None:
    try:
        from faultlab.oracle.host import time_faults_on_host

        return time_faults_on_host(kind, pages)
    except Exception as e:  # noqa: BLE001 - report why the kernel column is missing
        print(f"  (kernel timing unavailable: {e})")
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    print(f"{'fault':<8} {'model ns/fault':>15} {'faults':>7} {'kernel ns/fault':>16} {'model/kernel':>13}")
    for kind in KINDS:
        model, faults = model_ns_per_fault(kind, args.pages, args.reps)
        kernel = kernel_ns_per_fault(kind, 16384)
        ratio = f"{model / kernel:.1f}x" if kernel else "-"
        kcol = f"{kernel:.0f}" if kernel else "-"
        print(f"{kind:<8} {model:>15.0f} {faults:>7} {kcol:>16} {ratio:>13}")


if __name__ == "__main__":
    main()
