"""The scenario's forked children: a thread named by ``fork CHILD`` runs in a new process.

The child is a model thread from the start of the run, whose first step waits (a scheduling point
on one cell per child, not ready until then) for its parent's fork to return.  The fork makes the
child's mm (``Kernel.new_task_mm``), copies the parent's into it (the design's ``sys_fork``, i.e.
dup_mmap), and gives the child its variables: every map variable of the parent thread (and, with
``mm = "shared"``, of ``[setup]``) names the child's copy of that mapping.  A variable whose
mapping the parent had already unmapped names an unmapped range in the child too.  When the
child's ops end, its mm goes (exit_mmap).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from faultlab.kernel.mm import MmStruct, Vma
from faultlab.kernel.state.cell import READ, WRITE, Cell
from faultlab.scenario.model import Op, Outcome, Scenario

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel


class Forks:
    """The children of one run: who forks each, and each child's variables once it is forked."""

    def __init__(self, scenario: Scenario) -> None:
        self.shared_mm = scenario.mm == "shared"
        self.tids = {t.name: i for i, t in enumerate(scenario.threads)}
        self.cells = {t.name: Cell(f"fork {t.name}") for t in scenario.threads if t.forked_by}
        self.maps: dict[str, dict[str, Vma]] = {}

    def wait(self, k: Kernel, child: str) -> dict[str, Vma]:
        """The child's first step: it runs once its parent's fork has returned."""
        k.sched.point(self.cells[child], READ, f"{child} starts (its fork returned)",
                      ready=lambda: child in self.maps)
        return self.maps[child]

    def fork(self, k: Kernel, sys_fork: Callable[[Kernel, MmStruct], dict[Vma, Vma]], op: Op,
             own: dict[str, Vma], setup: dict[str, Vma]) -> Outcome:
        """``fork CHILD`` in the running thread: copy its mm, then let the child run."""
        child = op.child
        child_mm = k.new_task_mm(self.tids[child], f"mm.{child}")
        copies = sys_fork(k, child_mm)
        k.events.emit("fork", copies=copies)
        inherited = {**setup, **own} if self.shared_mm else dict(own)
        maps: dict[str, Vma] = {}
        for var, vma in sorted(inherited.items()):
            copy = copies.get(vma)
            # Unmapped in the parent: the same range, unmapped, in the child.
            maps[var] = copy if copy is not None else Vma(child_mm, vma.start, vma.end, vma.pgoff, vma.file,
                                                          vma.flags, vma.vm_ops)
        k.sched.point(self.cells[child], WRITE, f"fork returns ({child} may run)")
        self.maps[child] = maps
        return Outcome.ok()
