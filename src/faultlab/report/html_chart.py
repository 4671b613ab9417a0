"""An inline SVG bar chart of what each design costs on a scenario: faults (stacked by kind) and
bytes copied, with each design's verdict next to its name."""

from __future__ import annotations

from html import escape

from faultlab.compare import CompareRow

KIND_COLOURS = {
    "read": "#60a5fa",
    "cow": "#f59e0b",
    "shared": "#34d399",
    "wp-copy": "#ef4444",
    "wp-reuse": "#a78bfa",
}
OTHER = "#94a3b8"
BYTES_COLOUR = "#475569"
CLEAN = "#16a34a"
VIOLATION = "#dc2626"

PANEL_W = 470
LABEL_W = 120
VALUE_W = 56
ROW_H = 26
TOP = 44


def _ticks(top: int) -> list[int]:
    """Up to about five round tick values from 0 to ``top``."""
    step = 1
    while top / step > 5:
        for m in (2, 5, 10):
            if top / (step * m) <= 5:
                step *= m
                break
        else:
            step *= 10
    return list(range(0, top + 1, step))


def _panel(x0: int, title: str, rows: list[CompareRow], values: list[list[tuple[str, int]]], total: list[int],
           fmt: str) -> list[str]:
    out = [f'<text class="title" x="{x0}" y="16">{escape(title)}</text>']
    width = PANEL_W - LABEL_W - VALUE_W
    top = max(max(total, default=0), 1)
    ticks = _ticks(top)
    top = max(top, ticks[-1])
    bottom = TOP + ROW_H * len(rows)
    for t in ticks:
        x = x0 + LABEL_W + width * t / top
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" y2="{bottom}"/>')
        out.append(f'<text class="tick" x="{x:.1f}" y="{TOP - 8}" text-anchor="middle">{t}</text>')
    out.append(f'<line class="axis" x1="{x0 + LABEL_W}" y1="{TOP - 4}" x2="{x0 + LABEL_W}" y2="{bottom}"/>')
    for i, row in enumerate(rows):
        y = TOP + i * ROW_H
        colour = CLEAN if row.verdict.clean else VIOLATION
        mark = "clean" if row.verdict.clean else f"violation: {row.verdict.counterexamples[0].id}"
        out.append(f'<g><title>{escape(row.design)}: {escape(mark)}</title>'
                   f'<circle cx="{x0 + 6}" cy="{y + ROW_H / 2:.1f}" r="4.5" fill="{colour}"/>'
                   f'<text x="{x0 + 16}" y="{y + ROW_H / 2 + 4:.1f}">{escape(row.design)}</text></g>')
        x = float(x0 + LABEL_W)
        for name, value in values[i]:
            if value <= 0:
                continue
            w = width * value / top
            fill = KIND_COLOURS.get(name, BYTES_COLOUR if name == "bytes" else OTHER)
            out.append(f'<rect x="{x:.1f}" y="{y + 5}" width="{w:.1f}" height="{ROW_H - 10}" rx="2" fill="{fill}">'
                       f"<title>{escape(row.design)}: {escape(name)} {value}</title></rect>")
            x += w
        out.append(f'<text class="val" x="{x + 6:.1f}" y="{y + ROW_H / 2 + 4:.1f}">{fmt.format(total[i])}</text>')
    return out


def cost_chart(rows: list[CompareRow]) -> str:
    """Two panels side by side: faults per design stacked by kind, and bytes copied per design."""
    faults: list[list[tuple[str, int]]] = []
    for row in rows:
        f = row.faults
        parts = [(k, f[k]) for k in KIND_COLOURS]
        rest = f["total"] - sum(v for _, v in parts)
        faults.append(parts + ([("other", rest)] if rest > 0 else []))
    height = TOP + ROW_H * len(rows) + 40
    width = 2 * PANEL_W + 30
    out = [f'<svg class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="cost per design">']
    out += _panel(0, "faults (one sequential run)", rows, faults, [r.faults["total"] for r in rows], "{}")
    out += _panel(PANEL_W + 30, "bytes copied", rows, [[("bytes", r.bytes_copied)] for r in rows],
                  [r.bytes_copied for r in rows], "{}")
    y = height - 14
    x = 0
    for name, colour in [*KIND_COLOURS.items(), ("clean", CLEAN), ("violation", VIOLATION)]:
        shape = (f'<circle cx="{x + 5}" cy="{y - 4}" r="4.5" fill="{colour}"/>' if name in ("clean", "violation")
                 else f'<rect x="{x}" y="{y - 9}" width="11" height="10" rx="2" fill="{colour}"/>')
        out.append(f'{shape}<text x="{x + 16}" y="{y}">{escape(name)}</text>')
        x += 24 + 8 * len(name)
    out.append("</svg>")
    return "\n".join(out)
