"""The limits on input, part of faultlab's interface (documented in docs/scenarios.md, "Limits").

Each limit is checked before the work or the memory it bounds is spent, and breaking one is a
located one-line error (exit status 2) like any other bad input. They are generous: a scenario
that hits one is almost certainly a mistake or a hostile file. None of them is hit by the bundled
scenarios, the tests or the benchmarks (``bench/bench_sparse.py`` runs 100,001 ops on a 64 GiB
file of a 1 TiB device).
"""

from __future__ import annotations

MAX_DOCUMENT_BYTES = 1 << 20
"""A scenario file: at most 1 MiB (about 40,000 ops; the bundled scenarios are under 2 KiB). It bounds
what tomllib does before any other check can run: a few seconds for the worst 1 MiB."""

MAX_NESTING = 32
"""TOML nesting: at most 32 levels of tables, dotted-key parts and arrays above any value
(``threads.t.ops[0]`` is at level 4)."""

MAX_DIGITS = 20
"""A number (a TOML integer, a term of a size, a repeat count, a schedule's thread id or count):
at most 20 decimal digits."""

MAX_SIZE = 1 << 50
"""Any size, offset or length (file sizes, ``pmem_size``, ``memory_limit``, op arguments): at most
2**50 bytes (1 PiB). The model keeps only touched pages, so large sizes cost nothing by themselves."""

MAX_OP_BYTES = 1 << 20
"""Bytes per op: the data of a ``store`` or ``write``, the LEN of a ``load`` or ``read``, an
expected value, a file's ``fill`` pattern: at most 1 MiB each."""

MAX_SCENARIO_BYTES = 16 << 20
"""Bytes per scenario: all the ops' data and load/read lengths together, at most 16 MiB."""

MAX_FILES = 64
"""Files per scenario."""

MAX_THREADS = 64
"""Threads per scenario."""

MAX_OPS = 200_000
"""Ops per scenario, all threads together (so also per thread)."""

MAX_SCHEDULE_STEPS = 10_000_000
"""A schedule string expands to at most this many steps."""

STEPS_PER_RUN = 50_000
STEPS_PER_OP = 2_000
STEPS_PER_DATA_PAGE = 200
"""Steps per run: a run that makes more than ``STEPS_PER_RUN``, plus ``STEPS_PER_OP`` for each op and
``STEPS_PER_DATA_PAGE`` for each page of the ops' data and load/read lengths, does not terminate:
its verdict is ``livelock`` (:func:`step_limit`). A valid run stays far below it (a one-page load
takes some 45 steps, a 1 MiB write some 7,500). The fixed part is what a livelock costs before it is
reported: the run, its replay as a counterexample and the report each make that many steps."""


def step_limit(ops: int, data_bytes: int) -> int:
    """The step limit of a run of ``ops`` ops carrying ``data_bytes`` bytes of data and lengths."""
    return STEPS_PER_RUN + STEPS_PER_OP * ops + STEPS_PER_DATA_PAGE * (data_bytes >> 12)
