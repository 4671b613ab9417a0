"""The HTML reports' inline style sheet and script (no external assets: the file is self-contained)."""

from __future__ import annotations

CSS = """
:root {
  --bg: #f4f5f7; --fg: #1f2937; --muted: #6b7280; --card: #ffffff; --line: #e2e5ea;
  --red: #dc2626; --red-bg: #fee2e2; --green: #15803d; --green-bg: #dcfce7;
  --stepw: 3.4em; --trackw: 14px;
  --mono: ui-monospace, "DejaVu Sans Mono", "SFMono-Regular", Menlo, Consolas, monospace;
  --sans: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Roboto, Helvetica, Arial, sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 14px/1.45 var(--sans); }
header.top { background: #111827; color: #e5e7eb; padding: 12px 28px; display: flex; align-items: baseline;
  gap: 14px; }
header.top .brand { font: 700 17px var(--sans); color: #fff; letter-spacing: .02em; }
header.top .what { color: #9ca3af; font-size: 13px; }
main { max-width: 1560px; margin: 0 auto; padding: 18px 28px 64px; }
h1 { font-size: 22px; margin: 6px 0 2px; }
h2 { font-size: 18px; margin: 0 0 6px; }
h3 { font-size: 15px; margin: 18px 0 8px; }
.sub { color: var(--muted); margin: 0 0 10px; }
.sub code, p code { font: 12.5px var(--mono); background: #eef0f3; padding: 1px 5px; border-radius: 4px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px;
  margin: 16px 0; box-shadow: 0 1px 2px rgba(15, 23, 42, .05); }
.card.bad { border-top: 4px solid var(--red); }
.card.good { border-top: 4px solid var(--green); }
.pill { display: inline-block; padding: 1px 9px; border-radius: 999px; font: 600 12px var(--sans);
  white-space: nowrap; }
.pill.clean { background: var(--green-bg); color: var(--green); }
.pill.violation { background: var(--red-bg); color: #b91c1c; }
a.pill-link { text-decoration: none; }
.vid { font-family: var(--mono); color: #b91c1c; }
.msg { font: 13px var(--mono); background: #fff7f7; border-left: 4px solid var(--red); padding: 7px 11px;
  margin: 8px 0; border-radius: 0 6px 6px 0; }
.meta { color: var(--muted); margin: 6px 0 10px; }
.meta a { color: #b91c1c; font-weight: 600; }
.threads { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 8px; }
.thread { border: 1px solid var(--line); border-radius: 8px; padding: 6px 12px; background: #fafbfc; }
.thread b { font-family: var(--sans); }
.thread ol, .ops { margin: 4px 0 0; padding-left: 1.7em; font: 12px var(--mono); color: #4b5563; }
table.t { border-collapse: collapse; width: 100%; font-size: 13px; }
table.t th { text-align: left; font: 600 11.5px var(--sans); text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); border-bottom: 2px solid var(--line); padding: 6px 10px; vertical-align: bottom; }
table.t td { border-bottom: 1px solid var(--line); padding: 7px 10px; vertical-align: top; }
table.t tr:hover td { background: #f9fafb; }
table.t td.n, table.t th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.t td.n { font-family: var(--mono); }
table.t td.zero { color: #c0c4cc; }
table.t td.hi { color: #b45309; font-weight: 700; background: #fffbeb; }
table.t td.mono { font-family: var(--mono); font-size: 12.5px; }
table.t td.nowrap { white-space: nowrap; }
table.t tr.group td { background: #f3f4f6; font-weight: 700; }
table.locks { border-collapse: collapse; font: 12px var(--mono); }
table.locks td { border: 0; padding: 0 10px 0 0; }
table.locks td.n { text-align: right; }
.cmd { display: flex; align-items: center; gap: 10px; background: #0f172a; color: #e2e8f0; border-radius: 8px;
  padding: 9px 12px; margin: 8px 0 14px; }
.cmd code { font: 12.5px var(--mono); white-space: pre-wrap; word-break: break-all; flex: 1; }
.cmd code::before { content: "$ "; color: #64748b; }
.cmd button { font: 600 12px var(--sans); background: #334155; color: #f1f5f9; border: 0; border-radius: 5px;
  padding: 4px 10px; cursor: pointer; }
.cmd button:hover { background: #475569; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; font-size: 12px; color: #374151; margin: 10px 0; }
.key { display: inline-flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 10px; height: 16px; border-radius: 4px; background: var(--c); }
.swatch.read { background: repeating-linear-gradient(135deg, var(--c) 0 3px, #e2e8f0 3px 6px); }
.swatch.broken { width: 22px; background: var(--red-bg); box-shadow: inset 3px 0 0 var(--red); border-radius: 2px; }
.swatch.switch { width: 22px; height: 0; border-top: 1px dashed #94a3b8; border-radius: 0; }
.legend .chg { display: inline-flex; margin: 0; }

.lanes { display: grid; font: 12.5px/1.38 var(--mono); border: 1px solid var(--line); border-radius: 8px;
  background: #fff; overflow: clip; }
.lane-bg { border-left: 1px solid var(--line); }
.lane0 { --hue: #2563eb; --tint: #f5f8ff; }
.lane1 { --hue: #d97706; --tint: #fffaf2; }
.lane2 { --hue: #7c3aed; --tint: #f8f5ff; }
.lane3 { --hue: #0d9488; --tint: #f2fbfa; }
.lane-bg { background: var(--tint); }
.band.switch { border-top: 1px dashed #b6bfcc; }
.band.broken { background: var(--red-bg); box-shadow: inset 5px 0 0 var(--red); }
.band.cut { border-top: 2px dashed #94a3b8; border-bottom: 2px dashed #94a3b8; background: #f8fafc; }
.cell.cut { font-style: italic; color: #475569; padding: 8px 10px; z-index: 1; }
.lane-head { position: sticky; top: 0; z-index: 3; background: #fff; padding: 8px 10px 7px;
  border-bottom: 1px solid var(--line); border-top: 4px solid var(--hue, #94a3b8);
  box-shadow: 0 2px 3px rgba(15, 23, 42, .06); }
.lane-head.step-head { color: var(--muted); font: 600 11px var(--sans); text-transform: uppercase; text-align: right;
  padding-right: 8px; }
.tname { font: 700 14.5px var(--sans); color: var(--hue); }
.stepno { text-align: right; padding: 5px 8px 5px 0; color: #9aa1ac; font-variant-numeric: tabular-nums; }
.stepno.broken { color: var(--red); font-weight: 700; }
.cell { padding: 5px 10px 5px 6px; min-width: 0; overflow-wrap: anywhere; z-index: 1; }
.fn { font-weight: 700; color: #111827; }
.op { color: #4b5563; }
.chip { display: inline-block; width: 8px; height: 8px; border-radius: 2px; background: var(--c); margin-right: 6px;
  vertical-align: 1px; }
.chg { display: table; margin-top: 2px; padding: 0 6px; border-radius: 4px; font-size: 12px; }
.ch-pte-set { background: #dcfce7; color: #166534; }
.ch-pte-zap { background: #ffedd5; color: #9a3412; }
.ch-pte-wp { background: #fef9c3; color: #854d0e; }
.ch-isize { background: #dbeafe; color: #1e40af; }
.ch-alloc { background: #ccfbf1; color: #115e59; }
.ch-free { background: #eceef1; color: #4b5563; }
.ch-bad { background: var(--red-bg); color: #991b1b; font-weight: 700; }
.ch-other { background: #f3f4f6; color: #374151; }
.callout { margin-top: 5px; background: #fff; border: 1px solid #fca5a5; border-left: 5px solid var(--red);
  border-radius: 5px; padding: 5px 9px; color: #7f1d1d; font-family: var(--sans); font-size: 13px;
  box-shadow: 0 1px 4px rgba(220, 38, 38, .18); }
.callout b { display: block; color: var(--red); }
.bar { margin: 3px 2px; border-radius: 6px; background: var(--c); z-index: 2; display: flex; align-items: center;
  justify-content: center; overflow: hidden; min-height: 10px; box-shadow: 0 0 0 1px rgba(255, 255, 255, .6); }
.bar.read { background: repeating-linear-gradient(135deg, var(--c) 0 4px,
  color-mix(in srgb, var(--c) 40%, white) 4px 8px); }
.bar.open { border-bottom-left-radius: 0; border-bottom-right-radius: 0; margin-bottom: 0; }
.bar span { writing-mode: vertical-rl; transform: rotate(180deg); font: 700 9.5px/1 var(--sans); color: #fff;
  white-space: nowrap; background: var(--c); padding: 4px 0; border-radius: 3px; }
.bar.hl { box-shadow: 0 0 0 2px #111827; }
svg.chart { max-width: 100%; height: auto; font-family: var(--sans); }
svg.chart .axis { stroke: #cbd5e1; }
svg.chart .grid { stroke: #eef0f3; }
svg.chart text { fill: #374151; font-size: 12px; }
svg.chart text.title { font-weight: 700; font-size: 13px; fill: #111827; }
svg.chart text.val { font-family: var(--mono); font-size: 11.5px; }
svg.chart text.tick { fill: #9ca3af; font-size: 10.5px; }
details.cex-list > summary { cursor: pointer; font-weight: 600; margin: 8px 0; }
footer { color: var(--muted); font-size: 12px; margin-top: 30px; }
"""

JS = """
document.addEventListener('click', function (e) {
  var b = e.target.closest('button[data-copy]');
  if (!b || !navigator.clipboard) return;
  navigator.clipboard.writeText(b.getAttribute('data-copy')).then(function () {
    b.textContent = 'copied';
    setTimeout(function () { b.textContent = 'copy'; }, 1200);
  });
});
document.addEventListener('mouseover', function (e) {
  document.querySelectorAll('.bar.hl').forEach(function (x) { x.classList.remove('hl'); });
  var bar = e.target.closest('.bar');
  if (!bar) return;
  bar.closest('.lanes').querySelectorAll('.bar').forEach(function (x) {
    if (x.getAttribute('data-lock') === bar.getAttribute('data-lock')) x.classList.add('hl');
  });
});
"""
