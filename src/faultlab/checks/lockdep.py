"""Lock-order checking in the manner of Linux lockdep: every *attempt* to take a lock of class B
that may sleep, while holding class A, records the dependency A -> B (the attempt is enough: an
inversion that deadlocks is reported too), across all schedules explored.  A new dependency that
closes a cycle is reported, as lockdep words it ("possible circular locking dependency"), as a
``lock-order`` violation of the run that closed it."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from faultlab.kernel.events import Event


@dataclass
class LockDep:
    """The dependency graph between lock classes, kept across runs (one per exploration)."""

    edges: dict[str, dict[str, str]] = field(default_factory=dict)  # a -> b -> where it was seen
    reports: list[str] = field(default_factory=list)
    _reported: set[frozenset[str]] = field(default_factory=set)

    def listener(self, thread_name: Callable[[int], str], on_report: Callable[[str], None]) -> Callable[[Event], None]:
        """A ``lock_attempt`` listener for one run; ``thread_name(tid)`` names the threads in
        reports, ``on_report`` receives each new cycle."""

        edges = self.edges

        def on_event(ev: Event) -> None:
            new = ev.data["cls"]
            for held, _mode in ev.data["held"]:
                a = held.cls
                if a == new or new in edges.get(a, ()):  # known: add() would do nothing
                    continue
                report = self.add(a, new, f"{thread_name(ev.tid)} at step {ev.step + 1}")
                if report is not None:
                    on_report(report)

        return on_event

    def add(self, a: str, b: str, where: str) -> str | None:
        if a == b or b in self.edges.get(a, {}):
            return None
        path = self.path(b, a) if self.reaches(b, a) else None
        self.edges.setdefault(a, {})[b] = where
        if path is None:
            return None
        key = frozenset([a, b])
        if key in self._reported:
            return None
        self._reported.add(key)
        report = self.describe(a, b, path)
        self.reports.append(report)
        return report

    def reaches(self, src: str, dst: str) -> bool:
        """Whether dst can be reached from src (a quick test before :meth:`path`, which is sorted)."""
        edges = self.edges
        seen = {src}
        todo = [src]
        while todo:
            node = todo.pop()
            if node == dst:
                return True
            for nxt in edges.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    def path(self, src: str, dst: str) -> list[str] | None:
        """A chain of recorded dependencies from src to dst (breadth first, sorted: deterministic)."""
        prev: dict[str, str | None] = {src: None}
        queue = deque([src])
        while queue:
            node = queue.popleft()
            if node == dst:
                chain = [node]
                while prev[chain[-1]] is not None:
                    chain.append(prev[chain[-1]])  # type: ignore[arg-type]
                return list(reversed(chain))
            for nxt in sorted(self.edges.get(node, {})):
                if nxt not in prev:
                    prev[nxt] = node
                    queue.append(nxt)
        return None

    def describe(self, a: str, b: str, back: list[str]) -> str:
        lines = [
            "WARNING: possible circular locking dependency detected",
            f"trying to acquire lock ({b}) while holding ({a});",
            "the existing dependency chain (in reverse order) is:",
        ]
        for x, y in zip(back, back[1:], strict=False):
            lines.append(f"  -> ({y}) taken while holding ({x}), {self.edges[x][y]}")
        lines.append(f"  -> ({b}) taken while holding ({a}), {self.edges[a][b]}")
        lines += [
            "Possible unsafe locking scenario:",
            "       CPU0                    CPU1",
            "       ----                    ----",
            f"  lock({a});",
            f"                               lock({b});",
            f"                               lock({a});",
            f"  lock({b});",
            " *** DEADLOCK ***",
        ]
        return "\n".join(lines)
