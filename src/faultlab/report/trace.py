"""Naming the kernel function of each step of a recorded run.

A run replayed for a report runs on a traced kernel image, whose functions emit ``func_enter``
and ``func_exit`` events (see :mod:`faultlab.kernel.image`).  The tracer keeps each thread's stack
of model functions from those events and names the innermost one when a step is recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faultlab.kernel.events import Event
    from faultlab.kernel.kernel import Kernel


class FunctionTracer:
    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.stacks: dict[int, list[str]] = {}
        k.events.subscribe(self.on_event, ("func_enter", "func_exit"))
        k.sched.func_of = self.current

    def on_event(self, ev: Event) -> None:
        stack = self.stacks.setdefault(ev.tid, [])
        if ev.kind == "func_enter":
            stack.append(ev.data["name"])
        elif stack:
            stack.pop()

    def current(self) -> str:
        stack = self.stacks.get(self.k.tid())
        return stack[-1] if stack else ""
