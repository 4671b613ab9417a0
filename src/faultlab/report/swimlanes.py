"""Swim lanes: one column per thread, one row per scheduling step, showing the kernel function,
the step, the locks held after it, and every PTE and i_size change; the violating step is marked."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text

from faultlab.kernel.events import Event
from faultlab.sched import Step


@dataclass
class LaneRow:
    step: int
    tid: int
    func: str
    label: str
    held: list[str]
    changes: list[str] = field(default_factory=list)
    violation: bool = False


def describe_change(ev: Event) -> str | None:
    d = ev.data
    if ev.kind == "pte_set":
        return f"PTE {d['addr']:#x} := {d['pte'].describe()}"
    if ev.kind == "pte_clear":
        return f"PTE {d['addr']:#x} zapped (was {d['pte'].describe()})"
    if ev.kind == "pte_wrprotect":
        return f"PTE {d['addr']:#x} write-protected"
    if ev.kind == "isize":
        return f"i_size({d['inode'].name}) {d['old']} -> {d['new']}"
    if ev.kind == "block_free":
        count = d["count"]
        return f"pmem block {d['block']} freed" if count == 1 else f"pmem blocks {d['block']}+{count} freed"
    if ev.kind == "block_alloc":
        return f"pmem block {d['block']} allocated for {d['inode'].name}[{d['index']}]"
    if ev.kind == "block_zero":
        return f"pmem block {d['block']} zeroed"
    if ev.kind == "page_free":
        return f"{d['page']!r} freed"
    return None


def lane_rows(steps: list[Step], events: list[Event], violation_step: int | None) -> list[LaneRow]:
    """Fold the event stream into one row per step (thread start steps are left out)."""
    by_step: dict[int, list[Event]] = {}
    for ev in events:
        by_step.setdefault(ev.step, []).append(ev)
    held: dict[int, list[str]] = {}
    rows: list[LaneRow] = []
    for i, st in enumerate(steps):
        changes: list[str] = []
        for ev in by_step.get(i, []):
            locks = held.setdefault(ev.tid, [])
            if ev.kind == "lock_acquire":
                locks.append(f"{ev.data['cls']}{'(R)' if ev.data['mode'] == 'R' else ''}")
            elif ev.kind == "lock_release":
                name = f"{ev.data['cls']}{'(R)' if ev.data['mode'] == 'R' else ''}"
                if name in locks:
                    locks.remove(name)
            else:
                text = describe_change(ev)
                if text is not None:
                    changes.append(text)
        if st.label == "start" and not changes:
            continue
        rows.append(LaneRow(i, st.tid, st.func, st.label, list(held.get(st.tid, [])), changes,
                            violation=i == violation_step))
    return rows


MAX_ROWS = 400
"""Swim lanes show at most this many rows: the first and the last steps of a longer run (a
livelock's runs to its step limit)."""


def elide(rows: list[LaneRow], limit: int = MAX_ROWS) -> list[LaneRow]:
    """``rows`` cut to their first quarter and last three quarters of ``limit``, with a row
    (``tid`` -1) saying how many steps were left out."""
    if len(rows) <= limit:
        return rows
    head, tail = rows[: limit // 4], rows[-(limit - limit // 4):]
    gap = tail[0].step - head[-1].step - 1
    return [*head, LaneRow(head[-1].step + 1, -1, "", f"... {gap} steps not shown ...", []), *tail]


def swimlane_table(thread_names: list[str], rows: list[LaneRow]) -> Table:
    table = Table(show_lines=False, pad_edge=False, title="swim lanes (locks held after each step in [ ])")
    table.add_column("step", justify="right")
    for name in thread_names:
        table.add_column(name, overflow="fold")
    last_func: dict[int, str] = {}
    for row in rows:
        if row.tid < 0:
            table.add_row("", *[Text(row.label, style="dim")] * len(thread_names))
            continue
        cell = Text()
        if row.func and row.func != last_func.get(row.tid):
            cell.append(f"{row.func}()\n", style="bold")
        last_func[row.tid] = row.func
        cell.append(row.label)
        if row.held:
            cell.append(f"\n[{', '.join(row.held)}]", style="dim")
        for change in row.changes:
            cell.append(f"\n{change}", style="cyan")
        if row.violation:
            cell.append("\n<< violation detected here", style="bold red")
        cells = [Text("")] * len(thread_names)
        cells[row.tid] = cell
        table.add_row(str(row.step), *cells, style="on grey19" if row.violation else "")
    return table
