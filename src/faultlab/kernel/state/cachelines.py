"""The CPU caches in front of persistent memory: what a store has made durable, and what a crash
could still lose.

Every pmem block is 64 cache lines of 64 bytes.  The device's contents (``PmemDevice.data``) are
what the CPUs see; this module keeps, per line, what the *media* holds and how a newer value may
still get there:

- a cached store (a store through a PTE, memcpy/memset by the kernel) leaves the line *dirty*:
  the new value sits in the cache and may or may not have been evicted to media at a crash;
- ``clwb``/``clflushopt`` (arch_wb_cache_pmem, dax_flush) of a dirty line, and a non-temporal
  store (memcpy_to_pmem, copy_from_iter_nocache, clear_pmem's movnt), put the line's value *in
  flight* for the issuing thread: it reaches media at that thread's next fence (wmb_pmem / pmem_wmb,
  nvdimm_flush), and may or may not have reached it before; a clwb of a clean line that another
  thread has in flight puts it in flight for this thread too (a flush is of the line);
- a fence makes the thread's in-flight values the media's.

The value a line holds in flight is captured at the flush, so a store after the flush and before
the fence does not change what the fence persists.  A crash lets each line independently end up
with its media value, any of its in-flight values, or (dirty) its current value: intermediate
values a dirty line held between two flushes are not enumerated (the bound: one value per store
epoch).  Since the crash invariants (faultlab.checks.durability) are per byte, checking each line's
choices one at a time covers every combination exactly.

Each line also records whether its media value was ever *initialised* (zeroed or written since
its block was allocated), for the torn-metadata invariant: a block freed and handed out again
keeps its media, its dirty lines and its in-flight values (it is the same memory), but its media
is stale until a zeroing or a write reaches it.

Callers announce the block's cell before calling in (PmemDevice does): this is bookkeeping of
the block's state, not a separate object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from faultlab.kernel.flags import PAGE_SIZE

LINE = 64
LINES_PER_BLOCK = PAGE_SIZE // LINE


@dataclass(slots=True)
class LineState:
    """One cache line of one block: while pending, its media value (set when it became pending),
    whether that media is initialised, whether the cache holds a newer value (and
    whether that value is initialised), and the values in flight per thread (with theirs)."""

    media: bytes | None = None
    media_ok: bool = True
    dirty: bool = False
    visible_ok: bool = True
    inflight: dict[int, tuple[bytes, bool]] = field(default_factory=dict)

    def pending(self) -> bool:
        return self.dirty or bool(self.inflight)


def lines_of(off: int, n: int) -> range:
    """The line indices within a block that bytes [off, off+n) touch."""
    if n <= 0:
        return range(0)
    return range(off // LINE, (off + n - 1) // LINE + 1)


class Cachelines:
    """Per-line persistence state of a pmem device.  Only lines that were ever stored to have a
    LineState; a line without one is durable (media = what the CPUs see)."""

    def __init__(self) -> None:
        self.lines: dict[tuple[int, int], LineState] = {}
        # block -> line indices that are dirty or in flight (kept sorted when read)
        self.pending: dict[int, set[int]] = {}
        # thread -> (block, line) it has in flight, waiting for its fence
        self.unfenced: dict[int, set[tuple[int, int]]] = {}
        self.stale_blocks: set[int] = set()

    def _state(self, block: int, line: int) -> LineState:
        st = self.lines.get((block, line))
        if st is None:
            ok = block not in self.stale_blocks
            st = self.lines[(block, line)] = LineState(media_ok=ok, visible_ok=ok)
        return st

    def _track(self, block: int, line: int, st: LineState) -> None:
        if st.pending():
            self.pending.setdefault(block, set()).add(line)
        else:
            lines = self.pending.get(block)
            if lines is not None:
                lines.discard(line)
                if not lines:
                    del self.pending[block]

    # -- what the model's steps do -----------------------------------------------------------------
    def allocated(self, block: int) -> None:
        """The block was handed to a file: its media and its cached contents are stale until
        initialised (a fresh block was never written; a reused one holds its last owner's data,
        and its dirty and in-flight lines stay what they were)."""
        self.stale_blocks.add(block)
        for line in range(LINES_PER_BLOCK):
            st = self.lines.get((block, line))
            if st is not None:
                st.media_ok = False
                st.visible_ok = False
                st.inflight = {t: (v, False) for t, (v, _ok) in st.inflight.items()}

    def stored(self, block: int, off: int, n: int, before: bytes) -> None:
        """A cached store changed bytes [off, off+n) of ``block``; ``before`` is the block's whole
        previous content (a line clean until now has that as its media value)."""
        for line in lines_of(off, n):
            st = self._state(block, line)
            if not st.pending():
                st.media = before[line * LINE : (line + 1) * LINE]
                st.media_ok = st.visible_ok
            st.dirty = True
            st.visible_ok = True
            self._track(block, line, st)

    def stored_nt(self, tid: int, block: int, off: int, n: int, before: bytes, after: bytes) -> None:
        """A non-temporal store (the line bypasses the cache): in flight for ``tid`` until its fence."""
        for line in lines_of(off, n):
            st = self._state(block, line)
            if not st.pending():
                st.media = before[line * LINE : (line + 1) * LINE]
                st.media_ok = st.visible_ok
            st.dirty = False
            st.visible_ok = True
            st.inflight[tid] = (after[line * LINE : (line + 1) * LINE], True)
            self.unfenced.setdefault(tid, set()).add((block, line))
            self._track(block, line, st)

    def flush(self, tid: int, block: int, visible: bytes, off: int = 0, n: int = PAGE_SIZE) -> int:
        """clwb of every line of [off, off+n) in ``block``: a dirty line's value goes in flight for
        ``tid``.  So does a clean line another thread's flush has in flight: a flush is of the line,
        not of a thread's stores (the x86 persistency model: a clwb of x orders every write to x
        before it ahead of the flushing thread's next sfence), so this thread's fence persists the
        line's value even if the other thread never fences.  Returns how many lines were dirty."""
        count = 0
        for line in lines_of(off, n):
            st = self.lines.get((block, line))
            if st is None or not (st.dirty or st.inflight):
                continue
            count += st.dirty
            st.dirty = False
            st.inflight[tid] = (visible[line * LINE : (line + 1) * LINE], st.visible_ok)
            self.unfenced.setdefault(tid, set()).add((block, line))
        return count

    def unfenced_blocks(self, tid: int) -> list[int]:
        """The blocks a fence by ``tid`` would make durable lines of (sorted)."""
        return sorted({b for b, _line in self.unfenced.get(tid, ())})

    def fence(self, tid: int) -> None:
        """sfence after clwb/movnt (wmb_pmem, pmem_wmb, nvdimm_flush): the thread's in-flight
        values reach media."""
        for block, line in sorted(self.unfenced.pop(tid, ())):
            st = self.lines[(block, line)]
            got = st.inflight.pop(tid, None)
            if got is None:
                continue
            st.media, st.media_ok = got
            self._track(block, line, st)

    # -- for the crash checks -----------------------------------------------------------------------
    def pending_lines(self, block: int) -> list[int]:
        return sorted(self.pending.get(block, ()))

    def state(self, block: int, line: int) -> LineState | None:
        return self.lines.get((block, line))

    def durable_ok(self, block: int, line: int) -> bool:
        """Whether a line that is not pending holds initialised data on media."""
        st = self.lines.get((block, line))
        return st.visible_ok if st is not None else block not in self.stale_blocks
