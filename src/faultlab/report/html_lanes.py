"""Swim lanes as HTML: a CSS grid with one row per scheduling step and one lane per thread.

Each lane has a gutter of lock tracks, where every lock a thread holds is a bar spanning the steps
it is held (striped when held for read), and a column naming the kernel function entered, the
step, and what changed (PTE installs, zaps, i_size).  The step where an invariant broke is a red
band across all lanes.  The layout is computed here; the page's CSS (``html_style``) draws it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from html import escape

from faultlab.compare import lock_sort_key, short_lock
from faultlab.execution import ModelRunResult
from faultlab.kernel.events import Event
from faultlab.report.cycles import Cycle, find_cycle
from faultlab.report.swimlanes import LaneRow, describe_change, lane_rows

LOCK_COLOURS = {
    "&inode->i_rwsem": "#7c3aed",
    "&mm->mmap_sem": "#2563eb",
    "&ei->i_mmap_sem": "#0891b2",
    "page lock": "#65a30d",
    "dax entry lock": "#d97706",
    "&mapping->i_mmap_mutex": "#db2777",
    "&mapping->i_mmap_rwsem": "#db2777",
    "xip_sparse_mutex": "#9333ea",
    "&mapping->tree_lock": "#0d9488",
    "ptlock": "#475569",
}
"""A colour per lock class, the same on every page (``i_mmap``'s mutex and rwsem share one)."""
OTHER_COLOURS = ("#b45309", "#be123c", "#4d7c0f", "#1d4ed8", "#a21caf", "#0f766e")

CHANGE_KINDS = {
    "pte_set": "ch-pte-set",
    "pte_clear": "ch-pte-zap",
    "pte_wrprotect": "ch-pte-wp",
    "isize": "ch-isize",
    "block_free": "ch-free",
    "page_free": "ch-free",
    "block_alloc": "ch-alloc",
    "block_zero": "ch-alloc",
}
"""Event kind -> the CSS class of its line in a lane (and of its legend entry)."""
CHANGE_LEGEND = (
    ("ch-pte-set", "PTE installed"),
    ("ch-pte-zap", "PTE zapped"),
    ("ch-pte-wp", "PTE write-protected"),
    ("ch-isize", "i_size changed"),
    ("ch-alloc", "block allocated / zeroed"),
    ("ch-free", "block / page freed"),
    ("ch-bad", "bad unlock"),
)
THREAD_HUES = 4  # lane tints cycle through this many (CSS classes lane0..lane3)
MIN_CUT_ROWS = 30
"""A loop at the end of the lanes is cut only if that hides at least this many rows (a livelock
hides thousands; a fault that retried three times is better read in full)."""


def lock_colour(cls: str) -> str:
    if cls in LOCK_COLOURS:
        return LOCK_COLOURS[cls]
    return OTHER_COLOURS[sum(cls.encode()) % len(OTHER_COLOURS)]


@dataclass
class Change:
    css: str
    text: str


@dataclass
class Row:
    step: int
    tid: int
    func: str  # the kernel function, when it differs from this thread's previous row ("" otherwise)
    label: str
    held: list[str]
    changes: list[Change] = field(default_factory=list)
    locks: list[str] = field(default_factory=list)  # classes acquired or released in this step
    switch: bool = False  # another thread ran the previous row
    violations: list[tuple[str, str]] = field(default_factory=list)  # (id, message) detected here
    current: str = ""  # the kernel function this thread is in (shown only where ``func`` says)

    @property
    def cut(self) -> bool:
        """The row standing for the runs of a cycle that are not shown (``tid`` -1)."""
        return self.tid < 0

    def signature(self) -> tuple[object, ...]:
        """What a reader sees of the row, but its step: equal rows repeat each other."""
        return (self.tid, self.current, self.label, tuple(self.held), tuple((c.css, c.text) for c in self.changes),
                tuple(self.locks), self.switch)


@dataclass
class Bar:
    tid: int
    cls: str
    name: str  # the lock instance
    mode: str  # "R" or "W"
    start_step: int
    end_step: int | None  # None: still held when the run ended
    first: int = 0  # row indices
    last: int = 0
    track: int = 0


@dataclass
class Lanes:
    threads: list[str]
    rows: list[Row]
    bars: list[Bar]
    tracks: list[int]  # lock tracks per thread (at least 1)
    cycle: Cycle | None = None  # the loop the run ended in, over the rows before the cut

    @property
    def lock_classes(self) -> list[str]:
        return sorted({b.cls for b in self.bars}, key=lock_sort_key)

    @property
    def change_kinds(self) -> set[str]:
        return {c.css for r in self.rows for c in r.changes}


def build_lanes(run: ModelRunResult, violations: list[tuple[str, str, int | None]] | None = None) -> Lanes:
    """The lanes of ``run``; ``violations`` (id, message, step) are marked (default: the run's own)."""
    if violations is None:
        violations = [(v.id, v.message, v.step) for v in run.violations]
    base: list[LaneRow] = lane_rows(run.steps, run.events, None)
    by_step: dict[int, list[Event]] = {}
    for ev in run.events:
        by_step.setdefault(ev.step, []).append(ev)
    rows: list[Row] = []
    last_func: dict[int, str] = {}
    for lr in base:
        switch = bool(rows) and rows[-1].tid != lr.tid
        # The function is named when it changes, and again when the thread resumes after a switch.
        current = lr.func or last_func.get(lr.tid, "")
        func = current if current and (switch or lr.func != last_func.get(lr.tid)) else ""
        last_func[lr.tid] = current
        row = Row(lr.step, lr.tid, func, lr.label, lr.held, switch=switch, current=current)
        for ev in by_step.get(lr.step, []):
            if ev.kind in ("lock_acquire", "lock_release"):
                if ev.data["cls"] not in row.locks:
                    row.locks.append(ev.data["cls"])
            elif ev.kind == "lock_bad_release":
                row.changes.append(Change("ch-bad", f"{ev.data['why']}: {ev.data['cls']}"))
            else:
                text = describe_change(ev)
                if text is not None:
                    row.changes.append(Change(CHANGE_KINDS.get(ev.kind, "ch-other"), text))
        rows.append(row)
    rows, cycle = cut_cycle(rows)
    steps = [r.step for r in rows]
    for vid, message, step in violations:
        if not rows:
            break
        at = len(rows) - 1 if step is None else max(bisect_right(steps, step) - 1, 0)
        rows[at].violations.append((vid, message))
    bars = _lock_bars(run.events)
    if cycle is not None:  # a lock taken and released within the loops not shown has no row
        lo, hi = _cut_steps(rows)
        bars = [b for b in bars if not (lo <= b.start_step and b.end_step is not None and b.end_step <= hi)]
    last = max(len(rows) - 1, 0)
    for b in bars:
        b.first = min(bisect_left(steps, b.start_step), last)
        b.last = last if b.end_step is None else min(bisect_left(steps, b.end_step), last)
    tracks = [1] * len(run.thread_names)
    for tid in range(len(run.thread_names)):
        ends: list[int] = []  # the last row of the latest bar on each track
        for b in sorted((b for b in bars if b.tid == tid), key=lambda b: (b.first, -b.last, b.start_step)):
            free = next((i for i, end in enumerate(ends) if end < b.first), None)
            if free is None:
                free = len(ends)
                ends.append(b.last)
            ends[free] = b.last
            b.track = free
        tracks[tid] = max(len(ends), 1)
    return Lanes(list(run.thread_names), rows, bars, tracks, cycle)


def cut_cycle(rows: list[Row]) -> tuple[list[Row], Cycle | None]:
    """``rows`` with the loop they end in shown once: the rows before the loop, a row (``tid``
    -1) saying how often the loop ran and which steps are not shown, then the loop's last run,
    which ends where the run was stopped.  Unchanged (and None) if the rows end in no loop, or in
    one whose runs before the last make fewer than ``MIN_CUT_ROWS`` rows."""
    cycle = find_cycle([r.signature() for r in rows])
    if cycle is None or (cycle.repeats - 1) * cycle.period < MIN_CUT_ROWS:
        return rows, None
    shown = cycle.end - cycle.period  # the first row of the last run
    first, last = rows[cycle.start], rows[shown - 1]
    steps = last.step - first.step + 1
    label = (f"the loop of {cycle.period} row{'s' if cycle.period != 1 else ''} below ran {cycle.repeats} "
             f"times from step {first.step}: its first {cycle.repeats - 1} runs (steps {first.step}-{last.step}, "
             f"{steps} steps) are not shown")
    marker = Row(first.step, -1, "", label, [])
    loop = rows[shown:]
    named: set[int] = set()
    for r in loop:  # each thread's function is named again at its first row after the cut
        if r.tid not in named:
            named.add(r.tid)
            r.func = r.current
    return [*rows[: cycle.start], marker, *loop], cycle


def _cut_steps(rows: list[Row]) -> tuple[int, int]:
    """The steps the cut row stands for: from its own to the one before the next row's."""
    i = next(i for i, r in enumerate(rows) if r.cut)
    return rows[i].step, rows[i + 1].step - 1 if i + 1 < len(rows) else rows[i].step


def _lock_bars(events: list[Event]) -> list[Bar]:
    """Pair each acquisition with its release (by lock instance and holder)."""
    bars: list[Bar] = []
    open_: dict[tuple[int, int], Bar] = {}  # (id(lock), tid) -> bar; ids only pair, never shown
    for ev in events:
        if ev.kind == "lock_acquire":
            bar = Bar(ev.tid, ev.data["cls"], ev.data["lock"].name, ev.data["mode"], ev.step, None)
            open_[(id(ev.data["lock"]), ev.tid)] = bar
            bars.append(bar)
        elif ev.kind == "lock_release":
            key = (id(ev.data["lock"]), ev.tid)
            if key not in open_:  # released by another thread than the one that took it
                key = next((k for k in open_ if k[0] == id(ev.data["lock"])), key)
            if key in open_:
                open_.pop(key).end_step = ev.step
    return bars


def render_lanes(lanes: Lanes, ops: dict[str, list[str]] | None = None, anchor: str = "v") -> str:
    """The grid's HTML.  ``ops`` (thread -> op lines) goes under each lane's name; the first
    violation callout gets the id ``anchor``."""
    n = len(lanes.rows)
    cols = ["var(--stepw)"]
    lane_col: list[tuple[int, int]] = []  # per thread: (first track column, content column), 1-based
    for t in range(len(lanes.threads)):
        first = len(cols) + 1
        cols.extend(["var(--trackw)"] * lanes.tracks[t])
        cols.append("minmax(17em, 1fr)")
        lane_col.append((first, len(cols)))
    out: list[str] = [
        f'<div class="lanes" style="grid-template-columns: {" ".join(cols)}; '
        f'grid-template-rows: auto repeat({n}, auto)">'
    ]
    last_row = n + 2
    for t, (first, content) in enumerate(lane_col):
        out.append(f'<div class="lane-bg lane{t % THREAD_HUES}" style="grid-column: {first} / {content + 1}; '
                   f'grid-row: 1 / {last_row}"></div>')
    for i, row in enumerate(lanes.rows):
        classes = (["switch"] if row.switch else []) + (["broken"] if row.violations else [])
        classes += ["cut"] if row.cut else []
        if classes:
            out.append(f'<div class="band {" ".join(classes)}" style="grid-column: 1 / -1; grid-row: {i + 2}">'
                       "</div>")
    out.append('<div class="lane-head step-head" style="grid-column: 1; grid-row: 1">step</div>')
    for t, name in enumerate(lanes.threads):
        first, content = lane_col[t]
        op_lines = "".join(f"<li>{escape(op)}</li>" for op in (ops or {}).get(name, []))
        out.append(f'<div class="lane-head lane{t % THREAD_HUES}" data-thread="{escape(name)}" '
                   f'style="grid-column: {first} / {content + 1}; grid-row: 1"><span class="tname">'
                   f'{escape(name)}</span>{f"<ol class=ops>{op_lines}</ol>" if op_lines else ""}</div>')
    for b in lanes.bars:
        col = lane_col[b.tid][0] + b.track
        mode = "read" if b.mode == "R" else "write"
        held = f"from step {b.start_step} " + ("to the end" if b.end_step is None else f"to step {b.end_step}")
        title = f"{b.cls} ({b.name}) held for {mode}, {held}"
        label = short_lock(b.cls) if b.last - b.first >= 3 else ""
        out.append(
            f'<div class="bar {mode}{" open" if b.end_step is None else ""}" data-lock="{escape(b.cls)}" '
            f'title="{escape(title)}" style="--c: {lock_colour(b.cls)}; grid-column: {col}; '
            f'grid-row: {b.first + 2} / {b.last + 3}"><span>{escape(label)}</span></div>'
        )
    anchored = False
    for i, row in enumerate(lanes.rows):
        r = i + 2
        out.append(f'<div class="stepno{" broken" if row.violations else ""}" style="grid-column: 1; grid-row: {r}">'
                   f"{'&#8942;' if row.cut else row.step}</div>")
        parts = []
        if row.func:
            parts.append(f'<div class="fn">{escape(row.func)}()</div>')
        chips = "".join(f'<i class="chip" style="--c: {lock_colour(cls)}"></i>' for cls in row.locks)
        parts.append(f'<div class="op">{chips}{escape(row.label)}</div>')
        for ch in row.changes:
            parts.append(f'<div class="chg {ch.css}">{escape(ch.text)}</div>')
        for vid, message in row.violations:
            ident = "" if anchored else f' id="{escape(anchor)}"'
            anchored = True
            parts.append(f'<div class="callout"{ident}><b>invariant broken: {escape(vid)}</b>'
                         f"<span>{escape(message)}</span></div>")
        if row.cut:  # across every lane: the runs of the loop not shown
            out.append(f'<div class="cell cut" style="grid-column: 2 / -1; grid-row: {r}">{"".join(parts)}</div>')
            continue
        held = f' title="held after this step: {escape(", ".join(row.held))}"' if row.held else ""
        out.append(f'<div class="cell lane{row.tid % THREAD_HUES}{" broken" if row.violations else ""}" '
                   f'data-thread="{escape(lanes.threads[row.tid])}"{held} '
                   f'style="grid-column: {lane_col[row.tid][1]}; grid-row: {r}">{"".join(parts)}</div>')
    out.append("</div>")
    return "\n".join(out)


def render_legend(lanes: Lanes) -> str:
    items = []
    for cls in lanes.lock_classes:
        items.append(f'<span class="key"><i class="swatch" style="--c: {lock_colour(cls)}"></i>'
                     f"{escape(cls)}</span>")
    if any(b.mode == "R" for b in lanes.bars):
        items.append('<span class="key"><i class="swatch read" style="--c: #64748b"></i>held for read</span>')
    kinds = lanes.change_kinds
    for css, text in CHANGE_LEGEND:
        if css in kinds:
            items.append(f'<span class="key chg {css}">{escape(text)}</span>')
    items.append('<span class="key"><i class="swatch broken"></i>invariant broken</span>')
    items.append('<span class="key"><i class="swatch switch"></i>thread switch</span>')
    return f'<div class="legend">{"".join(items)}</div>'


__all__ = ["Lanes", "build_lanes", "lock_colour", "render_legend", "render_lanes"]
