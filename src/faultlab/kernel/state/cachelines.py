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
    LineState; a line without one is durable (media = what the CPUs see).

    The states are kept per block (block -> line -> state).  A non-temporal store of a whole block
    that has no line states (clear_pmem of a new block, the common case) is kept as one record
    (``whole``) until something else touches the block: its fence then needs no per-line work.

    A line state that is neither dirty nor in flight says only whether its media is initialised
    (its media value is never read again: the next store replaces it); when that agrees with the
    block's staleness, it is the same as no state at all."""

    __slots__ = ("blocks", "whole", "pending", "unfenced", "stale_blocks")

    def __init__(self) -> None:
        self.blocks: dict[int, dict[int, LineState]] = {}
        # block -> (thread, content before, content after) of a whole-block non-temporal store not
        # yet fenced, for a block without line states (its lines are in flight for that thread)
        self.whole: dict[int, tuple[int, bytes, bytes]] = {}
        # block -> line indices that are dirty or in flight (kept sorted when read)
        self.pending: dict[int, set[int]] = {}
        # thread -> block -> line indices it has in flight, waiting for its fence
        self.unfenced: dict[int, dict[int, set[int]]] = {}
        self.stale_blocks: set[int] = set()

    def _states(self, block: int) -> dict[int, LineState] | None:
        """The block's line states (None: it has none), with a whole-block record expanded first."""
        if block in self.whole:
            self._expand(block)
        return self.blocks.get(block)

    def _lines(self, block: int) -> dict[int, LineState]:
        states = self._states(block)
        if states is None:
            states = self.blocks[block] = {}
        return states

    def _expand(self, block: int) -> None:
        """Turn a whole-block record into the line states it stands for."""
        tid, before, after = self.whole.pop(block)
        ok = block not in self.stale_blocks
        self.blocks[block] = {
            line: LineState(before[line * LINE : (line + 1) * LINE], ok, False, True,
                            {tid: (after[line * LINE : (line + 1) * LINE], True)})
            for line in range(LINES_PER_BLOCK)
        }

    def _pending_of(self, block: int) -> set[int]:
        lines = self.pending.get(block)
        if lines is None:
            lines = self.pending[block] = set()
        return lines

    def _settled(self, block: int, line: int) -> None:
        """The line is neither dirty nor in flight any more."""
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
        states = self._states(block) or {}  # (expanded while the block is not stale yet)
        self.stale_blocks.add(block)
        for st in states.values():
            st.media_ok = False
            st.visible_ok = False
            st.inflight = {t: (v, False) for t, (v, _ok) in st.inflight.items()}

    def stored(self, block: int, off: int, n: int, before: bytes) -> None:
        """A cached store changed bytes [off, off+n) of ``block``; ``before`` is the block's whole
        previous content (a line clean until now has that as its media value)."""
        self._store(block, off, n, before, None, b"")

    def stored_nt(self, tid: int, block: int, off: int, n: int, before: bytes, after: bytes) -> None:
        """A non-temporal store (the line bypasses the cache): in flight for ``tid`` until its fence."""
        if off == 0 and n == PAGE_SIZE and not self.blocks.get(block) and block not in self.whole:
            self.whole[block] = (tid, before, after)
            self.pending[block] = set(range(LINES_PER_BLOCK))
            self.unfenced.setdefault(tid, {})[block] = set(range(LINES_PER_BLOCK))
            return
        span = self._store(block, off, n, before, tid, after)
        if span:
            self.unfenced.setdefault(tid, {}).setdefault(block, set()).update(span)

    def _store(self, block: int, off: int, n: int, before: bytes, tid: int | None, after: bytes) -> range:
        """The lines a store touches: one clean until now keeps ``before`` as its media value; a
        cached store (``tid`` None) leaves it dirty, a non-temporal one in flight for ``tid`` with
        its value in ``after``."""
        states = self._lines(block)
        fresh_ok = block not in self.stale_blocks
        cached = tid is None
        span = lines_of(off, n)
        for line in span:
            st = states.get(line)
            lo = line * LINE
            if st is None:
                st = states[line] = LineState(before[lo : lo + LINE], fresh_ok, cached, True, {})
            elif not (st.dirty or st.inflight):
                st.media = before[lo : lo + LINE]
                st.media_ok = st.visible_ok
            st.dirty = cached
            st.visible_ok = True
            if tid is not None:
                st.inflight[tid] = (after[lo : lo + LINE], True)
        if span:
            self._pending_of(block).update(span)
        return span

    def flush(self, tid: int, block: int, visible: bytes, off: int = 0, n: int = PAGE_SIZE) -> int:
        """clwb of every line of [off, off+n) in ``block``: a dirty line's value goes in flight for
        ``tid``.  So does a clean line another thread's flush has in flight: a flush is of the line,
        not of a thread's stores (the x86 persistency model: a clwb of x orders every write to x
        before it ahead of the flushing thread's next sfence), so this thread's fence persists the
        line's value even if the other thread never fences.  Returns how many lines were dirty."""
        states = self._states(block)
        if not states:
            return 0
        count = 0
        flushed: set[int] | None = None
        for line in lines_of(off, n):
            st = states.get(line)
            if st is None or not (st.dirty or st.inflight):
                continue
            count += st.dirty
            st.dirty = False
            st.inflight[tid] = (visible[line * LINE : (line + 1) * LINE], st.visible_ok)
            if flushed is None:
                flushed = self.unfenced.setdefault(tid, {}).setdefault(block, set())
            flushed.add(line)
        return count

    def unfenced_blocks(self, tid: int) -> list[int]:
        """The blocks a fence by ``tid`` would make durable lines of (sorted)."""
        return sorted(self.unfenced.get(tid, ()))

    def fence(self, tid: int) -> None:
        """sfence after clwb/movnt (wmb_pmem, pmem_wmb, nvdimm_flush): the thread's in-flight
        values reach media."""
        for block, lines in self.unfenced.pop(tid, {}).items():
            whole = self.whole.get(block)
            if whole is not None and whole[0] == tid:
                # Every line's media becomes its value, initialised, and none is pending: the same
                # as no line states in a block that is not stale.
                del self.whole[block]
                del self.pending[block]
                self.stale_blocks.discard(block)
                continue
            states = self.blocks[block]
            for line in lines:
                st = states[line]
                got = st.inflight.pop(tid, None)
                if got is None:
                    continue
                st.media, st.media_ok = got
                if not (st.dirty or st.inflight):
                    self._settled(block, line)

    # -- for the crash checks -----------------------------------------------------------------------
    def pending_lines(self, block: int) -> list[int]:
        return sorted(self.pending.get(block, ()))

    def state(self, block: int, line: int) -> LineState | None:
        states = self._states(block)
        return states.get(line) if states is not None else None

    def durable_ok(self, block: int, line: int) -> bool:
        """Whether a line that is not pending holds initialised data on media."""
        st = self.state(block, line)
        return st.visible_ok if st is not None else block not in self.stale_blocks
