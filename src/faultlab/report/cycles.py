"""The repeating cycle at the end of a run: a livelock runs one loop of steps over and over until
the step limit stops it, and a report shows that loop once, with how many times it ran.

``find_cycle`` looks at one hashable signature per row (what a reader sees of the row: thread,
function, label, changes, locks); rows are repeated when their signatures are equal.  Only the
end of the run is searched: the run is cut there, so that is where the loop is.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

MAX_PERIOD = 256
"""The longest loop looked for, in rows (a retry loop of the model is tens of steps long)."""
MIN_REPEATS = 3
"""A loop is cut only if it ran at least this many times in a row."""


@dataclass(frozen=True)
class Cycle:
    """Rows ``[start, end)`` are ``repeats`` runs of one loop of ``period`` rows, ``end`` being the
    last row; the rows before ``start`` do not continue the loop backwards."""

    start: int
    period: int
    repeats: int

    @property
    def end(self) -> int:
        return self.start + self.period * self.repeats


def find_cycle(signatures: Sequence[Hashable], max_period: int = MAX_PERIOD,
               min_repeats: int = MIN_REPEATS) -> Cycle | None:
    """The loop that the last rows repeat at least ``min_repeats`` times and that covers the most
    rows (extended back in whole loops as far as it goes; of equal ones, the shortest loop); None
    if there is none."""
    n = len(signatures)
    best: Cycle | None = None
    starts: dict[int, int] = {}  # period -> where the rows repeating with it begin
    for period in range(1, min(max_period, n // min_repeats) + 1):
        # Rows repeating with a period that divides this one repeat with this one too: start from there.
        start = min((s for p, s in starts.items() if period % p == 0 and s <= n - min_repeats * period),
                    default=None)
        if start is None:
            start = n - min_repeats * period
            if any(signatures[i] != signatures[i + period] for i in range(start, n - period)):
                continue
        while start > 0 and signatures[start - 1] == signatures[start - 1 + period]:
            start -= 1
        starts[period] = start
        repeats = (n - start) // period
        cycle = Cycle(n - repeats * period, period, repeats)
        if best is None or cycle.end - cycle.start > best.end - best.start:
            best = cycle
    return best
