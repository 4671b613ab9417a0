"""What an exhaustive search covered: at its decision points, how many choices it explored, how many
the preemption bound pruned, and how many the reduction (DPOR's races and sleep sets) left out.

A *decision point* is a state of the search tree where more than one thread can move; each thread
that can is one *alternative*.  Every alternative of a decision point is counted once, when the
search has finished with that point (all its branches explored), in one of three ways:

* explored: the search ran a branch starting with it;
* pruned by the bound: a race asked for it, or plain search would have taken it, but taking it
  there costs a preemption beyond ``--bound`` (see :func:`faultlab.explore.dfs.add_race_bounded`);
* left out by the reduction: nothing asked for it (no race of DPOR needs it), or it was asleep
  (sleep sets: it was explored from an equivalent state).

So ``explored + bound + reduction == alternatives``.  Plain search without a bound leaves nothing
out.  A complete search counts every decision point of its tree, and the counts are the same with
any number of jobs (a split search finishes each node exactly once, in a task or in the
coordinator); a search that stopped early counts the points it finished.  Runs themselves are
counted by the collector (schedules, sleep-set blocked, cut by the retry bound).
"""

from __future__ import annotations

from typing import Protocol


class FinishedNode(Protocol):
    """What the count reads of a node of the search tree (see :class:`faultlab.explore.dfs._Node`)."""

    enabled: int  # threads that can move there
    done: int  # threads whose branch was explored
    cut: int  # threads the preemption bound kept from being explored


class Coverage:
    """The counts over the decision points a search has finished."""

    __slots__ = ("points", "alternatives", "explored", "bound")

    def __init__(self) -> None:
        self.points = 0
        self.alternatives = 0
        self.explored = 0
        self.bound = 0

    def finished(self, node: FinishedNode) -> None:
        """The search has explored every branch of ``node`` it will."""
        enabled = node.enabled
        n = enabled.bit_count()
        if n < 2:
            return
        self.points += 1
        self.alternatives += n
        self.explored += (node.done & enabled).bit_count()
        self.bound += (node.cut & enabled & ~node.done).bit_count()

    @property
    def reduction(self) -> int:
        return self.alternatives - self.explored - self.bound

    def counts(self) -> tuple[int, int, int, int]:
        """(points, alternatives, explored, bound): what a task sends back and a checkpoint keeps."""
        return self.points, self.alternatives, self.explored, self.bound

    def merge(self, counts: tuple[int, int, int, int]) -> None:
        """Add the :meth:`counts` of another part of the same search."""
        self.points += counts[0]
        self.alternatives += counts[1]
        self.explored += counts[2]
        self.bound += counts[3]

    def json(self) -> dict[str, int]:
        return {"decision_points": self.points, "alternatives": self.alternatives, "explored": self.explored,
                "pruned_by_bound": self.bound, "left_out_by_reduction": self.reduction}

    def describe(self) -> str:
        """One line for the text report."""
        return (f"{self.points} decision points, {self.alternatives} alternatives: {self.explored} explored, "
                f"{self.reduction} left out by the reduction, {self.bound} pruned by the bound")
