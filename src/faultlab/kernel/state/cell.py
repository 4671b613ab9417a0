"""Cells: the objects the explorer sees, and the guard that makes unannounced access impossible.

A :class:`Cell` names one piece of shared state (one PTE slot, one page's refcount, a file's
i_size, the set of pages in a page-cache tree).  State objects keep their data in private
containers and reach it only after announcing the cell with ``sched.point(cell, access, ...)``.

In audit mode those containers are :class:`AuditedDict` / :class:`AuditedSet` and every field is an
:class:`audited` descriptor: each raw read or write asks the scheduler whether the running thread's
current step announced the cell with a sufficient access (WRITE covers READ and UPDATE), and fails
with :class:`~faultlab.sched.core.AuditError` otherwise, naming the function and the object.  With
audit off the same code uses plain dicts, sets and slots, so the check costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

from faultlab.sched.core import Access, Scheduler

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

READ = Access.READ
UPDATE = Access.UPDATE
WRITE = Access.WRITE


class Cell:
    """One object of the explorer's dependence relation.  Compared by identity; ``name`` is for
    labels and error messages only."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


class CellMap(Generic[K]):
    """Cells created on first use, one per key (one per PTE address, per page-cache index...)."""

    __slots__ = ("prefix", "cells")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.cells: dict[K, Cell] = {}

    def __getitem__(self, key: K) -> Cell:
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell(f"{self.prefix}[{_show(key)}]")
        return cell


def _show(key: object) -> str:
    return f"{key:#x}" if isinstance(key, int) and key >= 1 << 16 else str(key)


class AuditedDict(dict[K, V]):
    """A dict whose every use is checked against the running step's announcement.

    ``slot(key)`` is the cell of one key (reads and writes of that key); ``members`` is the cell
    of the key set (iteration and size; adding or removing a key is an UPDATE of it).  The state
    layer's own trusted peeks use ``dict.get(d, key)`` and bypass the check."""

    def __init__(self, sched: Scheduler, what: str, slot: Callable[[K], Cell], members: Cell) -> None:
        super().__init__()
        self._sched = sched
        self._what = what
        self._slot = slot
        self._members = members

    def _check(self, cell: Cell, access: Access, key: object = None) -> None:
        what = self._what if key is None else f"{self._what}[{_show(key)}]"
        self._sched.check_announced(cell, access, what)

    def __getitem__(self, key: K) -> V:
        self._check(self._slot(key), READ, key)
        return super().__getitem__(key)

    def get(self, key: K, default: Any = None) -> Any:
        self._check(self._slot(key), READ, key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._check(self._slot(key), READ, key)  # type: ignore[arg-type]
        return super().__contains__(key)

    def __setitem__(self, key: K, value: V) -> None:
        self._check(self._slot(key), WRITE, key)
        if not super().__contains__(key):
            self._check(self._members, UPDATE)
        super().__setitem__(key, value)

    def __delitem__(self, key: K) -> None:
        self._check(self._slot(key), WRITE, key)
        self._check(self._members, UPDATE)
        super().__delitem__(key)

    def pop(self, key: K, default: Any = None) -> Any:
        self._check(self._slot(key), WRITE, key)
        if super().__contains__(key):
            self._check(self._members, UPDATE)
        return super().pop(key, default)

    def __iter__(self) -> Iterator[K]:
        self._check(self._members, READ)
        return super().__iter__()

    def __len__(self) -> int:
        self._check(self._members, READ)
        return super().__len__()

    def keys(self) -> Any:
        self._check(self._members, READ)
        return super().keys()

    def items(self) -> Any:
        self._check(self._members, READ)
        return super().items()

    def values(self) -> Any:
        self._check(self._members, READ)
        return super().values()


class AuditedSet(set[K]):
    """A set whose membership tests read the member's cell and whose iteration reads the set's."""

    def __init__(self, sched: Scheduler, what: str, slot: Callable[[K], Cell], members: Cell) -> None:
        super().__init__()
        self._sched = sched
        self._what = what
        self._slot = slot
        self._members = members

    def __contains__(self, key: object) -> bool:
        self._sched.check_announced(self._slot(key), READ, f"{self._what}[{_show(key)}]")  # type: ignore[arg-type]
        return super().__contains__(key)

    def add(self, key: K) -> None:
        self._sched.check_announced(self._slot(key), WRITE, f"{self._what}[{_show(key)}]")
        self._sched.check_announced(self._members, UPDATE, self._what)
        super().add(key)

    def discard(self, key: object) -> None:
        self._sched.check_announced(self._slot(key), WRITE, f"{self._what}[{_show(key)}]")  # type: ignore[arg-type]
        self._sched.check_announced(self._members, UPDATE, self._what)
        super().discard(key)

    def __iter__(self) -> Iterator[K]:
        self._sched.check_announced(self._members, READ, self._what)
        return super().__iter__()

    def __len__(self) -> int:
        self._sched.check_announced(self._members, READ, self._what)
        return super().__len__()


def new_dict(sched: Scheduler, what: str, slot: Callable[[K], Cell], members: Cell) -> dict[K, V]:
    """A plain dict, or an audited one when the scheduler audits."""
    if sched.audit:
        return AuditedDict(sched, what, slot, members)
    return {}


def new_set(sched: Scheduler, what: str, slot: Callable[[K], Cell], members: Cell) -> set[K]:
    if sched.audit:
        return AuditedSet(sched, what, slot, members)
    return set()


class _Guarded:
    """The audit-mode stand-in for one slot of a state class: checks, then uses the real slot."""

    __slots__ = ("name", "base", "cell_of", "counter")

    def __init__(self, name: str, base: Any, cell_of: Callable[[Any], Cell], counter: bool) -> None:
        self.name = name
        self.base = base
        self.cell_of = cell_of
        self.counter = counter

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        sched = _sched_of(obj)
        if sched is not None:
            sched.check_announced(self.cell_of(obj), UPDATE if self.counter and _updating(sched, self.cell_of(obj))
                                  else READ, f"{obj!r}.{self.name.lstrip('_')}")
        return self.base.__get__(obj, owner)

    def __set__(self, obj: Any, value: Any) -> None:
        sched = _sched_of(obj)
        if sched is not None:
            sched.check_announced(self.cell_of(obj), UPDATE if self.counter else WRITE,
                                  f"{obj!r}.{self.name.lstrip('_')}")
        self.base.__set__(obj, value)


def _sched_of(obj: Any) -> Scheduler | None:
    """The scheduler an audited object reports to (None while it is being built)."""
    try:
        return obj._audit_sched
    except AttributeError:
        return None


def _updating(sched: Scheduler, cell: Cell) -> bool:
    """Whether the running step announced an UPDATE (not a READ) of ``cell``: a counter's
    read-modify-write under UPDATE is an increment, which commutes with other increments."""
    t = sched.current
    if t is None:
        return False
    if t.pending_obj is cell:
        return t.pending_access == UPDATE
    return any(o is cell and a == UPDATE for o, a in t.pending_more)


def audited_subclass(cls: type, fields: dict[str, Callable[[Any], Cell]], counters: tuple[str, ...] = ()) -> type:
    """A subclass of the slotted state class ``cls`` in which each named slot is guarded: reading
    it needs an announced READ of ``fields[name](obj)``, writing it a WRITE (an UPDATE for the
    ``counters``, which the state layer only ever increments or decrements).  Instances carry the
    scheduler in ``_audit_sched``."""
    ns: dict[str, Any] = {"__slots__": ("_audit_sched",)}
    for name, cell_of in fields.items():
        ns[name] = _Guarded(name, cls.__dict__[name], cell_of, name in counters)
    return type(f"Audited{cls.__name__}", (cls,), ns)
