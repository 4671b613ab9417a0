"""A running estimate of how many schedules an exhaustive search will run, from the search's state.

The schedules are the leaves of the search tree.  The estimate follows the current path from its end
up (Knuth, "Estimating the efficiency of backtrack programs", 1975, with the sizes of the subtrees
already explored): at each node,

* the finished branches count what they really ran (``bstart - start``);
* the branch in progress is as large as the estimate for the node below (1 at the end of the path);
* each branch still to come (known to the node: ``order`` after ``pos``, less those asleep) is as
  large as the later branches already finished here, or, at a node still in its first branch, as
  large as that branch times :attr:`BranchSizes.ratio`.

``ratio`` is learned from the nodes the search has finished with more than one branch: the leaves of
their later branches over their first branch's, per later branch.  Later branches are smaller than
the first (sleep sets, and a preemption bound that the later branches spend), and how much smaller
depends on the search: 0.2 to 0.7 on the race scenarios.  Weighting every branch alike instead
overcounted 13x under a preemption bound.

DPOR adds a node's branches only as it explores below it (races of a step are found when later
steps are reordered), and those of the first steps last: on the unbounded race searches measured,
the first branch point within the first five steps appeared 22-85% of the way through.  Until the
path has one there (``ROOT_STEPS``), and while its first branch point is still in its first
branch, one more branch of the learned relative size is counted at the top.

Measured on 24 complete race searches (docs/benchmarks.md, ``bench/bench_estimate.py``) this is
closer than the estimate it replaced (each node's known branches weighted alike) on 17, but within
2x of the real count from 10% on for only 3: how many branches DPOR will add above the path, and
how large they will be, is not in the search's state until it explores there.

Nothing here reads a clock: the same search gives the same estimates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

ROOT_STEPS = 6
"""A path with no branch point among its first ``ROOT_STEPS`` steps is expected to gain one."""


class Node(Protocol):
    """What the estimate reads of a node of the search path (see :class:`faultlab.explore.dfs._Node`)."""

    order: list[int]
    pos: int
    sleep: int
    start: int  # runs finished before the node was made
    bstart: int  # runs finished before its current branch began
    nexp: int  # branches finished
    first: int  # leaves of its first branch, once finished (0: unknown)


class BranchSizes:
    """How large later branches are against the first, over the nodes finished so far."""

    __slots__ = ("first", "later")

    def __init__(self) -> None:
        self.first = 0  # per finished node with later branches: first branch's leaves x later branches
        self.later = 0  # the leaves of those later branches

    def finished(self, node: Node, runs: int) -> None:
        """``node`` has explored its last branch, ``runs`` runs into the search."""
        if node.nexp and node.first:
            self.first += node.first * node.nexp
            self.later += runs - node.start - node.first

    def merge(self, first: int, later: int) -> None:
        """Add the sums of another search (a task of a split search)."""
        self.first += first
        self.later += later

    @property
    def ratio(self) -> float:
        return self.later / self.first if self.first else 1.0


def estimate_total(path: Sequence[Node], sizes: BranchSizes, sleep_sets: bool, current: float = 1.0) -> float:
    """The estimated leaves of the tree of ``path[0]`` (``current``: those of the branch in progress
    below the path's last node, if known; else the run just done)."""
    ratio = sizes.ratio
    c = current
    top = len(path)  # index of the first node with more than one branch
    top_first = True  # whether that node is still in its first branch
    for i in range(len(path) - 1, -1, -1):
        node = path[i]
        order = node.order
        n = len(order)
        if n == 1:
            continue
        top = i
        top_first = not node.nexp
        pos = node.pos
        rest = n - pos - 1
        if sleep_sets and rest:
            sleep = node.sleep
            rest = sum(1 for t in order[pos + 1 :] if not (sleep >> t) & 1)
        k = node.nexp
        if k == 0:
            c += rest * ratio * c
            continue
        done = node.bstart - node.start
        first = node.first
        if not first:  # (restored from a checkpoint: sizes unknown)
            later = ratio * c
        elif k == 1:
            later = ratio * first
        else:
            later = (done - first) / (k - 1)
        c += done + rest * later
    if top >= ROOT_STEPS and top_first:
        c += ratio * c
    return c
