"""Splitting an exhaustive search into independent pieces (for parallel or resumable exploration).

``split(program, depth)`` lists the schedule prefixes of length ``depth`` (or shorter, for runs that
end earlier) of the choice tree; ``explore(program, "dpor"|"dfs", prefix=p)`` then searches the
subtree below each one.

* For plain DFS the prefixes are every path of the top ``depth`` levels, so the subtrees partition
  the tree: the schedule counts add up to the unsplit count exactly.
* For DPOR the top levels are enumerated with sleep sets only (every ready thread that is not
  asleep), which skips prefixes equivalent to an earlier one, and each subtree is then searched by
  DPOR from an empty sleep set.  Persistent sets plus sleep sets preserve every reachable end state
  and violation (Godefroid 1996, Thm. 6.14), so the union of the pieces finds the same violations and
  final states as the unsplit search, although the schedule counts may differ.
* With a preemption bound, sleep sets are not used and the prefixes respect the bound.
"""

from __future__ import annotations

from faultlab.errors import UserError
from faultlab.explore.dfs import TreeSearch
from faultlab.explore.program import Program


def split(program: Program, depth: int, *, reduce: bool = True, bound: int | None = None) -> list[list[int]]:
    """Schedule prefixes at ``depth`` whose subtrees together cover the whole search.

    ``reduce`` (for DPOR) enumerates the top levels with sleep sets; pass ``reduce=False`` to split a
    plain DFS exactly."""
    if depth < 0:
        raise UserError(f"split depth must be at least 0, not {depth}")
    if depth == 0:
        return [[]]
    ts = TreeSearch(program, reduce=False, bound=bound, sleep_sets=reduce, cutoff=depth)
    prefixes: list[list[int]] = []
    while True:
        trace, result, cut = ts.run_one()
        if cut or result is not None:  # else sleep-set blocked: covered by an earlier prefix
            prefixes.append(trace)
        if not ts.advance():
            return prefixes
