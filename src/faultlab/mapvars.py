"""The program's map variables: which mapping an op's MAP names, across threads.

A variable belongs to the thread whose ``VAR = mmap`` made it.  The ``[setup]`` section's are made
before the threads start, so every thread reads them freely.  With ``mm = "shared"`` a thread may
also name another thread's variable (``Op.owner``): that is a user-space read of a pointer the
other thread stores once its mmap has returned, so both are scheduling points on one cell per
variable.  Until the store, the variable holds no address: a load or store through it is a SIGSEGV
(an access where nothing is mapped), and munmap, msync, madvise and mprotect fail with EINVAL, the
outcomes of a variable that is still unset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faultlab.kernel.state.cell import READ, WRITE, Cell
from faultlab.scenario.model import SETUP, Op, Scenario

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import Vma


class MapVars:
    """The variables of one run: the ``[setup]`` section's and the ones threads share."""

    def __init__(self, scenario: Scenario) -> None:
        self.setup: dict[str, Vma] = {}
        self.shared: dict[tuple[str, str], Vma] = {}
        self.cells: dict[tuple[str, str], Cell] = {}
        for t in scenario.threads:
            for op in t.ops:
                if op.owner and op.owner != SETUP:
                    self.cells.setdefault((op.owner, op.map), Cell(f"{op.owner}.{op.map}"))

    def view(self, k: Kernel, own: dict[str, Vma], op: Op) -> dict[str, Vma]:
        """The variables ``op`` sees: its thread's own, or the one it names of another."""
        if not op.owner:
            return own
        if op.owner == SETUP:
            return self.setup
        key = (op.owner, op.map)
        k.sched.point(self.cells[key], READ, f"read {op.map} (of {op.owner})")
        vma = self.shared.get(key)
        return {} if vma is None else {op.map: vma}

    def publish(self, k: Kernel, thread: str, var: str, vma: Vma) -> None:
        """After ``thread``'s mmap of ``var`` returned: store the address where others read it."""
        key = (thread, var)
        cell = self.cells.get(key)
        if cell is None:
            return
        k.sched.point(cell, WRITE, f"store {var} for the other threads")
        self.shared[key] = vma
