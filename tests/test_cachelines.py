"""The cache-line layer (faultlab.kernel.state.cachelines) against a plain per-line reference: any
sequence of stores, non-temporal stores, flushes, fences and allocations leaves the same
observable state (what the crash checks and the pmem device read): the pending lines of each
block, each pending line's media, in-flight and cached values, whether each other line's media is
initialised, and the blocks each thread's fence would make durable.

The reference is the layer as it was before it kept its states per block and whole-block
non-temporal stores as one record (a speed change): those must not change what a crash can leave."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.kernel.flags import PAGE_SIZE
from faultlab.kernel.state.cachelines import LINE, LINES_PER_BLOCK, Cachelines, lines_of


@dataclass
class RefLine:
    media: bytes | None = None
    media_ok: bool = True
    dirty: bool = False
    visible_ok: bool = True
    inflight: dict[int, tuple[bytes, bool]] = field(default_factory=dict)

    def pending(self) -> bool:
        return self.dirty or bool(self.inflight)


class RefCachelines:
    """One state per (block, line), every line of every operation visited in turn."""

    def __init__(self) -> None:
        self.lines: dict[tuple[int, int], RefLine] = {}
        self.unfenced: dict[int, set[tuple[int, int]]] = {}
        self.stale_blocks: set[int] = set()

    def _state(self, block: int, line: int) -> RefLine:
        st = self.lines.get((block, line))
        if st is None:
            ok = block not in self.stale_blocks
            st = self.lines[(block, line)] = RefLine(media_ok=ok, visible_ok=ok)
        return st

    def allocated(self, block: int) -> None:
        self.stale_blocks.add(block)
        for line in range(LINES_PER_BLOCK):
            st = self.lines.get((block, line))
            if st is not None:
                st.media_ok = st.visible_ok = False
                st.inflight = {t: (v, False) for t, (v, _ok) in st.inflight.items()}

    def stored(self, block: int, off: int, n: int, before: bytes) -> None:
        for line in lines_of(off, n):
            st = self._state(block, line)
            if not st.pending():
                st.media = before[line * LINE : (line + 1) * LINE]
                st.media_ok = st.visible_ok
            st.dirty = True
            st.visible_ok = True

    def stored_nt(self, tid: int, block: int, off: int, n: int, before: bytes, after: bytes) -> None:
        for line in lines_of(off, n):
            st = self._state(block, line)
            if not st.pending():
                st.media = before[line * LINE : (line + 1) * LINE]
                st.media_ok = st.visible_ok
            st.dirty = False
            st.visible_ok = True
            st.inflight[tid] = (after[line * LINE : (line + 1) * LINE], True)
            self.unfenced.setdefault(tid, set()).add((block, line))

    def flush(self, tid: int, block: int, visible: bytes, off: int, n: int) -> int:
        count = 0
        for line in lines_of(off, n):
            st = self.lines.get((block, line))
            if st is None or not st.pending():
                continue
            count += st.dirty
            st.dirty = False
            st.inflight[tid] = (visible[line * LINE : (line + 1) * LINE], st.visible_ok)
            self.unfenced.setdefault(tid, set()).add((block, line))
        return count

    def fence(self, tid: int) -> None:
        for block, line in sorted(self.unfenced.pop(tid, ())):
            st = self.lines[(block, line)]
            got = st.inflight.pop(tid, None)
            if got is not None:
                st.media, st.media_ok = got

    def unfenced_blocks(self, tid: int) -> list[int]:
        return sorted({b for b, _line in self.unfenced.get(tid, ())})

    def pending_lines(self, block: int) -> list[int]:
        return [ln for ln in range(LINES_PER_BLOCK) if (st := self.lines.get((block, ln))) is not None and st.pending()]

    def durable_ok(self, block: int, line: int) -> bool:
        st = self.lines.get((block, line))
        return st.visible_ok if st is not None else block not in self.stale_blocks


BLOCKS = 3
THREADS = 3


def _content(seed: int) -> bytes:
    return bytes((seed + i // LINE) % 251 for i in range(PAGE_SIZE))


span = st.one_of(
    st.just((0, PAGE_SIZE)),  # a whole block: clear_pmem, the driver's zeroing, a page copy
    st.tuples(st.integers(0, PAGE_SIZE - 1), st.integers(1, 3 * LINE)).map(
        lambda t: (t[0], min(t[1], PAGE_SIZE - t[0]))),
)
op = st.one_of(
    st.tuples(st.just("stored"), st.integers(0, BLOCKS - 1), span, st.integers(0, 99)),
    st.tuples(st.just("stored_nt"), st.integers(0, BLOCKS - 1), span, st.integers(0, 99), st.integers(0, THREADS - 1)),
    st.tuples(st.just("flush"), st.integers(0, BLOCKS - 1), span, st.integers(0, 99), st.integers(0, THREADS - 1)),
    st.tuples(st.just("fence"), st.integers(0, THREADS - 1)),
    st.tuples(st.just("allocated"), st.integers(0, BLOCKS - 1)),
    st.tuples(st.just("look"), st.integers(0, BLOCKS - 1), st.integers(0, LINES_PER_BLOCK - 1)),
)


def observe(c: Cachelines | RefCachelines) -> object:
    """What the crash checks and the device can see."""
    out: list[object] = []
    for block in range(BLOCKS):
        pending = c.pending_lines(block)
        out.append(("pending", block, pending))
        for line in range(LINES_PER_BLOCK):
            if line in pending:
                s = c.state(block, line) if isinstance(c, Cachelines) else c.lines[(block, line)]
                assert s is not None
                out.append((block, line, s.media, s.media_ok, s.dirty, s.visible_ok, sorted(s.inflight.items())))
            else:
                out.append((block, line, c.durable_ok(block, line)))
    out.append([c.unfenced_blocks(t) for t in range(THREADS)])
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=25))
def test_cachelines_match_the_per_line_reference(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    new, ref = Cachelines(), RefCachelines()
    for o in ops:
        kind = o[0]
        if kind == "stored":
            _, block, (off, n), seed = o
            new.stored(block, off, n, _content(seed))
            ref.stored(block, off, n, _content(seed))
        elif kind == "stored_nt":
            _, block, (off, n), seed, tid = o
            new.stored_nt(tid, block, off, n, _content(seed), _content(seed + 1))
            ref.stored_nt(tid, block, off, n, _content(seed), _content(seed + 1))
        elif kind == "flush":
            _, block, (off, n), seed, tid = o
            assert new.flush(tid, block, _content(seed), off, n) == ref.flush(tid, block, _content(seed), off, n)
        elif kind == "fence":
            new.fence(o[1])
            ref.fence(o[1])
        elif kind == "allocated":
            new.allocated(o[1])
            ref.allocated(o[1])
        else:  # a crash check looks at a line in the middle of the sequence (it may expand a record)
            _, block, line = o
            a, b = new.state(block, line), ref.lines.get((block, line))
            if b is not None and b.pending():
                assert a is not None and (a.media, a.inflight, a.dirty) == (b.media, b.inflight, b.dirty)
        assert [new.unfenced_blocks(t) for t in range(THREADS)] == [ref.unfenced_blocks(t) for t in range(THREADS)]
    assert observe(new) == observe(ref)


def test_a_whole_block_nt_store_is_kept_as_one_record_until_touched() -> None:
    c = Cachelines()
    c.allocated(4)
    c.stored_nt(1, 4, 0, PAGE_SIZE, bytes(PAGE_SIZE), b"\x07" * PAGE_SIZE)
    assert 4 in c.whole and not c.blocks.get(4)
    assert c.pending_lines(4) == list(range(LINES_PER_BLOCK)) and c.unfenced_blocks(1) == [4]
    c.fence(1)
    assert c.pending.get(4) is None and c.durable_ok(4, 63) and 4 not in c.whole
