"""Sparse state: a 1 TiB pmem device holding a 64 GiB DAX file, 100,000 pages touched through a
shared mapping (loads, one per page, spread over the file).  Prints time and the process's peak
resident memory (the interpreter's own ~20-30 MB included).

    python bench/bench_sparse.py [--pages N]"""

from __future__ import annotations

import argparse
import resource
import time

from faultlab.designs import get_design
from faultlab.execution import ModelExecution
from faultlab.scenario import ScenarioBuilder
from faultlab.sched import SequentialChooser

FILE_PAGES = 64 << 18  # 64 GiB in 4 KiB pages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=100_000)
    args = ap.parse_args()
    stride = FILE_PAGES // args.pages
    ops = ["m = mmap data 0 64g shared r"] + [f"load m {i * stride}p" for i in range(args.pages)]
    t0 = time.perf_counter()
    scenario = (ScenarioBuilder("sparse", fs="dax", pmem_size="1024g")
                .file("data", size="64g", fill="A").thread("t", *ops).build())
    built = time.perf_counter()
    result = ModelExecution(scenario, get_design("v4.10"), record_steps=False).run(SequentialChooser())
    done = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    loads = [r for r in result.record.ops if r.op.startswith("load")]
    assert all(str(r.outcome) == '"A"' for r in loads), "a load did not read the file's contents"
    print(f"1 TiB pmem, 64 GiB file, {args.pages} pages touched: {result.counters['faults']} faults, "
          f"scenario built in {built - t0:.1f} s, run in {done - built:.1f} s, peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
