"""The ``coherence`` invariant: every load through a mapping, and every read(2), returns a value some
linearisation of the stores, writes, truncates and punches allows.

The check works on the operations' intervals (from ``syscall_enter`` to ``syscall_exit``), not on
what the model did inside them, so it holds a design to what a user can observe.  Each byte is a
*regular register*: a read may return the value of any writer that began before the read ended,
unless another writer of that byte ended before the read began and began after that writer ended
(it is then overwritten for sure); the initial value likewise, until some writer of the byte has
ended before the read began.

There are two kinds of domain:

* a file: write(2), stores through shared mappings, truncate (zeros from the new size on: the
  bytes a later extension brings back read as zeros) and punch hole (zeros over the range);
* a private mapping's page (per VMA): once a store through it has ended, the page is its own copy,
  made (at some point of the first store) of what the file held then; until then, and while a
  store is under way, the file is read.  A fork copies each page's state into the child's VMA.
  madvise(DONTNEED), and truncate for pages wholly past the new size, drop the copy: a load that
  overlaps such a drop is not checked (it may see either).

A byte that may be past EOF while it is read (the size's lowest value during the read) may read
as zero or as anything ever stored there: a store past EOF in the last page lands in the page
(LTP mmap01), and the kernel zeroes that tail only when it writes the page back.  A store made
past EOF stays allowed at that offset for the same reason.  A read that raises a signal is not
checked (SIGBUS past EOF is the ``stale-pte-after-truncate`` checks' business).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faultlab.kernel.events import Event
from faultlab.kernel.flags import PAGE_SHIFT, PAGE_SIZE
from faultlab.scenario.model import format_bytes

if TYPE_CHECKING:
    from faultlab.kernel.kernel import Kernel
    from faultlab.kernel.mm import Vma
    from faultlab.kernel.state.inode import Inode

INFINITY = 1 << 62


@dataclass(slots=True)
class Writer:
    """One store, write, truncate or punch into a domain: bytes [lo, hi) become ``data`` (None:
    zeros), somewhere between events ``start`` and ``end`` (None: not ended, or never will)."""

    start: int
    lo: int
    hi: int
    data: bytes | None
    end: int | None = None

    def byte(self, off: int) -> int:
        return 0 if self.data is None else self.data[off - self.lo]


@dataclass(slots=True)
class PrivatePage:
    """A private VMA's page: the stores made through it since its copy was last dropped."""

    writers: list[Writer] = field(default_factory=list)
    drops: list[tuple[int, int | None]] = field(default_factory=list)  # (start, end) of each drop


@dataclass(slots=True)
class Access:
    """A load or read under way: its start, and the lowest size of its file seen since."""

    start: int
    inode: Inode | None
    min_size: int
    writers: list[Writer] = field(default_factory=list)  # the writers it opened (a store, a write)
    pages: list[PrivatePage] = field(default_factory=list)  # the private pages it stores into or drops


class CoherenceChecker:
    """Follows one run's operations and checks what each load and read returned."""

    def __init__(self, k: Kernel, report: Callable[[str, str], None]) -> None:
        self.k = k
        self.report = report
        self.seq = 0
        self.files: dict[Inode, list[Writer]] = {}
        self.junk: dict[Inode, dict[int, set[int]]] = {}  # bytes stored past EOF, allowed ever after
        self.private: dict[tuple[Vma, int], PrivatePage] = {}
        self.open: dict[int, tuple[Any, Vma | None, Access]] = {}  # tid -> (op, vma, access)
        k.events.subscribe(self.on_event, ("syscall_enter", "syscall_exit", "isize", "fork"))

    def tick(self) -> int:
        self.seq += 1
        return self.seq

    # -- the operations ---------------------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        d = ev.data
        if ev.kind == "isize":
            for _op, _vma, acc in self.open.values():
                if acc.inode is d["inode"]:
                    acc.min_size = min(acc.min_size, d["new"])
            return
        if ev.kind == "fork":
            self.on_fork(d["copies"], self.tick())
            return
        op = d.get("spec")
        if op is None:
            return
        if ev.kind == "syscall_enter":
            self.on_enter(ev.tid, op, d.get("vma"))
        else:
            self.on_exit(ev.tid, d["outcome"])

    def on_enter(self, tid: int, op: Any, vma: Vma | None) -> None:
        now = self.tick()
        kind = op.kind
        inode = vma.file if vma is not None else self.k.inodes.get(op.file)
        acc = Access(now, inode, inode.peek_size() if inode is not None else 0)
        self.open[tid] = (op, vma, acc)
        if inode is None:
            return
        if kind == "write":
            acc.writers.append(self.file_writer(inode, Writer(now, op.offset, op.offset + len(op.data), op.data)))
        elif kind == "truncate":
            lo = min(op.size, inode.peek_size())
            acc.writers.append(self.file_writer(inode, Writer(now, lo, INFINITY, None)))
            self.drop_private(inode, -(-op.size // PAGE_SIZE), None, acc)
        elif kind == "fallocate":
            acc.writers.append(self.file_writer(inode, Writer(now, op.offset, op.offset + op.length, None)))
        elif kind == "madvise" and vma is not None:
            self.drop_private(inode, 0, vma, acc)
        elif kind == "store" and vma is not None:
            self.on_store(inode, vma, op, acc, now)

    def file_writer(self, inode: Inode, w: Writer) -> Writer:
        self.files.setdefault(inode, []).append(w)
        return w

    def on_store(self, inode: Inode, vma: Vma, op: Any, acc: Access, now: int) -> None:
        base = vma.pgoff << PAGE_SHIFT
        lo, hi = base + op.offset, base + op.offset + len(op.data)
        size = inode.peek_size()
        if hi > size:  # (part of) it may land past EOF: allowed there for ever
            junk = self.junk.setdefault(inode, {})
            for off in range(max(lo, size), hi):
                junk.setdefault(off, set()).add(op.data[off - lo])
        if vma.shared:
            acc.writers.append(self.file_writer(inode, Writer(now, lo, hi, op.data)))
            return
        for index in range(lo >> PAGE_SHIFT, ((hi - 1) >> PAGE_SHIFT) + 1):
            plo, phi = max(lo, index << PAGE_SHIFT), min(hi, (index + 1) << PAGE_SHIFT)
            w = Writer(now, plo, phi, op.data[plo - lo : phi - lo])
            page = self.private.setdefault((vma, index), PrivatePage())
            page.writers.append(w)
            acc.writers.append(w)
            acc.pages.append(page)

    def drop_private(self, inode: Inode, first: int, vma: Vma | None, acc: Access) -> None:
        """A drop of private copies starts (with ``acc``): pages ``first`` on of ``vma`` (None: of
        every private VMA of ``inode``)."""
        for (v, index), page in self.private.items():
            if (v is vma or (vma is None and v.file is inode)) and index >= first:
                page.drops.append((acc.start, None))
                acc.pages.append(page)

    def on_exit(self, tid: int, outcome: Any) -> None:
        now = self.tick()
        entry = self.open.pop(tid, None)
        if entry is None:
            return
        op, vma, acc = entry
        ok = outcome.kind in ("ok", "data")
        for w in acc.writers:
            if ok:
                w.end = now
        # Only the pages this operation stored into or dropped can change (settle is idempotent
        # on the others): going over every page at every exit made a run quadratic in its pages.
        for page in {id(p): p for p in acc.pages}.values():
            page.drops = [(s, now if e is None and s == acc.start else e) for s, e in page.drops]
            self.settle(page)
        if outcome.kind != "data":
            return
        if op.kind == "read":
            inode = self.k.inodes[op.file]
            self.check(op, inode, op.offset, outcome.data, acc, now, None)
        elif op.kind == "load" and vma is not None:
            self.check(op, vma.file, (vma.pgoff << PAGE_SHIFT) + op.offset, outcome.data, acc, now, vma)

    def settle(self, page: PrivatePage) -> None:
        """After a drop has ended, the stores that ended before it began are gone; one under way
        during it may have landed after it (it stays, as never ended: maybe)."""
        ended = [(s, e) for s, e in page.drops if e is not None]
        if not ended:
            return
        last_start = max(s for s, _e in ended)
        kept = []
        for w in page.writers:
            if w.end is not None and w.end < last_start:
                continue
            if w.start < last_start:
                w.end = None
            kept.append(w)
        page.writers = kept

    def on_fork(self, copies: dict[Vma, Vma], now: int) -> None:
        """The child's VMAs start with their parent's private pages (a store under way in the
        parent may or may not be in the child's copy).  A drop under way in the parent either
        reaches the copy too (truncate: it drops the copies of every VMA of the file) or happened
        before the copy was made, or only to the parent's page after it (madvise of the parent's
        VMA): the stores it would remove may or may not be in the child's copy."""
        for (vma, index), page in list(self.private.items()):
            child = copies.get(vma)
            if child is None:
                continue
            writers = [Writer(w.start, w.lo, w.hi, w.data, w.end) for w in page.writers]
            copy = self.private[(child, index)] = PrivatePage(writers, [(s, e) for s, e in page.drops if e is not None])
            dropping = {s for s, e in page.drops if e is None}
            for _op, dropper, acc in self.open.values():
                if acc.start not in dropping:
                    continue
                if dropper is None:  # truncate: the drop under way ends for the copy too
                    copy.drops.append((acc.start, None))
                    acc.pages.append(copy)
                    continue
                for w in copy.writers:  # madvise of the parent's VMA: maybe
                    if w.end is not None and w.end < acc.start:
                        w.end = None

    # -- the check -------------------------------------------------------------------------------------------
    def check(self, op: Any, inode: Inode, offset: int, data: bytes, acc: Access, now: int, vma: Vma | None) -> None:
        if self.untouched(inode, offset, len(data), acc, vma):
            want = b"".join(initial_page(inode, i) for i in range(offset >> PAGE_SHIFT,
                                                                  ((offset + len(data) - 1) >> PAGE_SHIFT) + 1))
            skip = offset & ~(PAGE_SIZE - 1)
            if want[offset - skip : offset - skip + len(data)] == data:
                return
        for i, got in enumerate(data):
            off = offset + i
            allowed = self.allowed(inode, off, acc, now, vma)
            if allowed is None or got in allowed:
                continue
            values = ", ".join(format_bytes(bytes([b])) for b in sorted(allowed))
            how = "through a private mapping" if vma is not None and not vma.shared else \
                "through a shared mapping" if vma is not None else "with read(2)"
            self.report("coherence", f"{op.loc}: '{op.text}' read {format_bytes(bytes([got]))} at offset {off} of "
                        f"{inode.name} {how}, where the stores and writes allow only {values}")
            return

    def untouched(self, inode: Inode, offset: int, length: int, acc: Access, vma: Vma | None) -> bool:
        """Whether nothing but the file's initial contents can be read there (the fast path)."""
        end = offset + length
        if end > acc.min_size or any(w.lo < end and offset < w.hi for w in self.files.get(inode, ())):
            return False
        if any(offset <= off < end for off in self.junk.get(inode, {})):
            return False
        if vma is None or vma.shared:
            return True
        return not any(v is vma and offset >> PAGE_SHIFT <= index <= (end - 1) >> PAGE_SHIFT
                       for v, index in self.private)

    def allowed(self, inode: Inode, off: int, acc: Access, now: int, vma: Vma | None) -> set[int] | None:
        """The values a read of byte ``off`` during [acc.start, now] may return (None: any)."""
        if vma is not None and not vma.shared:
            page = self.private.get((vma, off >> PAGE_SHIFT))
            if page is not None:
                if any(s < now and (e is None or e > acc.start) for s, e in page.drops):
                    return None
                if page.writers:
                    got = self.private_allowed(inode, off, page, acc, now)
                    return self.past_eof(inode, off, acc, got)
        return self.past_eof(inode, off, acc, self.file_allowed(inode, off, acc.start, now))

    def past_eof(self, inode: Inode, off: int, acc: Access, allowed: set[int]) -> set[int]:
        extra = self.junk.get(inode, {}).get(off)
        if extra:
            allowed = allowed | extra
        if off >= acc.min_size:
            allowed = allowed | {0} | {w.byte(off) for w in self.files.get(inode, ()) if w.lo <= off < w.hi}
        return allowed

    def file_allowed(self, inode: Inode, off: int, start: int, end: int) -> set[int]:
        return regular(self.files.get(inode, ()), off, start, end, {initial_byte(inode, off)})

    def private_allowed(self, inode: Inode, off: int, page: PrivatePage, acc: Access, now: int) -> set[int]:
        """The page's copy was made during its first store (between the earliest start and the
        first end): what the file allowed then is the copy's initial value; before a store has
        ended, the load may also read the file itself."""
        first = min(w.start for w in page.writers)
        ends = [w.end for w in page.writers if w.end is not None]
        copy_end = min(ends) if ends else now
        source = self.file_allowed(inode, off, first, copy_end)
        allowed = regular(page.writers, off, acc.start, now, source)
        if not any(e < acc.start for e in ends):
            allowed |= self.file_allowed(inode, off, acc.start, now)
        return allowed


def regular(writers: Any, off: int, start: int, end: int, initial: set[int]) -> set[int]:
    """A regular register's values for a read during [start, end] (event numbers)."""
    mine = [w for w in writers if w.lo <= off < w.hi and w.start < end]
    done_before = [w for w in mine if w.end is not None and w.end < start]
    out = set() if done_before else set(initial)
    for w in mine:
        if w.end is not None and any(w2.start > w.end for w2 in done_before):
            continue
        out.add(w.byte(off))
    return out


def initial_page(inode: Inode, index: int) -> bytes:
    page = inode.initial_contents(index)
    return bytes(PAGE_SIZE) if page is None else page


def initial_byte(inode: Inode, off: int) -> int:
    page = inode.initial_contents(off >> PAGE_SHIFT)
    return 0 if page is None else page[off & (PAGE_SIZE - 1)]
