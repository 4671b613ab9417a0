"""Self-contained HTML reports for ``explore``, ``replay`` and ``compare`` (``--html FILE``).

One file, inline CSS, JS and SVG only: no network, no external assets.  The same input gives the
same bytes (nothing here reads the clock or depends on object identity).  A counterexample is drawn
as swim lanes (``html_lanes``); a comparison adds its table and a bar chart of cost per design
(``html_chart``).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from faultlab.compare import CompareRow, Comparison, short_lock, verdict_summary
from faultlab.errors import UserError
from faultlab.execution import ModelRunResult
from faultlab.exploring import Counterexample, DesignVerdict
from faultlab.report.html_chart import cost_chart
from faultlab.report.html_lanes import build_lanes, lock_colour, render_lanes, render_legend
from faultlab.report.html_style import CSS, JS
from faultlab.scenario.model import Scenario


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("faultlab")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "dev"


def page(title: str, what: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} \u2014 faultlab {escape(what)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header class="top"><span class="brand">faultlab</span><span class="what">{escape(what)}</span></header>\n'
        f"<main>\n{body}\n"
        f"<footer>faultlab {escape(_version())}: an executable model of the Linux page-fault path for "
        "file-backed mappings.</footer>\n</main>\n"
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )


def check_html_path(path: str) -> None:
    """Refuse, before any work is done, a report path that cannot be written."""
    p = Path(path)
    if p.is_dir():
        raise UserError("is a directory: expected a file name for the HTML report", where=path)
    if not p.parent.is_dir():
        raise UserError(f"no such directory: {p.parent}", where=path)


def write_html(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write the HTML report: {e.strerror}", where=path) from None


def thread_ops(scenario: Scenario) -> dict[str, list[str]]:
    return {t.name: [op.text for op in t.ops] for t in scenario.all_threads()}


def scenario_header(scenario: Scenario, extra: str = "") -> str:
    threads = "".join(
        f'<div class="thread"><b>{escape(t.name)}</b><ol>'
        + "".join(f"<li>{escape(op.text)}</li>" for op in t.ops)
        + "</ol></div>"
        for t in scenario.all_threads()
    )
    files = ", ".join(f"{escape(f.name)} ({f.size} bytes)" for f in scenario.files)
    return (
        f"<h1>{escape(scenario.title)}</h1>\n"
        f'<p class="sub"><code>{escape(scenario.path)}</code> \u00b7 fs {escape(scenario.fs)}'
        + (f" \u00b7 files {files}" if files else "")
        + (f" \u00b7 {extra}" if extra else "")
        + f'</p>\n<div class="threads">{threads}</div>'
    )


def command_box(command: str) -> str:
    return (f'<div class="cmd"><code>{escape(command)}</code>'
            f'<button type="button" data-copy="{escape(command)}">copy</button></div>')


def verdict_pill(v: DesignVerdict) -> str:
    head, _ = verdict_summary(v)
    if v.clean:
        return '<span class="pill clean">clean</span>'
    return f'<span class="pill violation">VIOLATION {escape(head)}</span>'


def verdicts_table(verdicts: list[DesignVerdict], anchors: dict[tuple[str, str], str]) -> str:
    rows = []
    for v in verdicts:
        r = v.result
        _, detail = verdict_summary(v)
        if v.clean:
            how = "complete: proof by exhaustion" if r.complete else f"not complete ({r.why_incomplete()})"
        else:
            how = " ".join(f'<a href="#{anchors[(v.design, c.id)]}">{escape(c.id)}</a>' for c in v.counterexamples)
        coverage = r.coverage_summary()
        if coverage is not None:
            detail += f"; {coverage}"
        detail = escape(detail.replace("\n", " "))
        rows.append(f'<tr><td class="nowrap"><b>{escape(v.design)}</b></td><td>{verdict_pill(v)}</td>'
                    f'<td class="n">{r.schedules}</td><td>{detail}</td><td>{how}</td></tr>')
    return ('<table class="t"><thead><tr><th>design</th><th>verdict</th><th class="n">schedules</th>'
            "<th>search</th><th>details</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def lanes_block(scenario: Scenario, run: ModelRunResult, violations: list[tuple[str, str, int | None]] | None,
                anchor: str) -> str:
    lanes = build_lanes(run, violations)
    return render_legend(lanes) + "\n" + render_lanes(lanes, thread_ops(scenario), anchor=anchor)


def counterexample_card(scenario: Scenario, design: str, c: Counterexample, anchor: str) -> str:
    step = next((v.step for v in c.run.violations if v.id == c.id), None)
    where = f"step {step}" if step is not None else "the end of the run"
    return (
        f'<section class="card bad cex" id="{anchor}-card">\n'
        f'<h2>{escape(design)}: <span class="vid">{escape(c.id)}</span></h2>\n'
        f'<div class="msg">{escape(c.message)}</div>\n'
        f'<p class="meta">minimal counterexample: {c.preemptions} preemption{"s" if c.preemptions != 1 else ""}, '
        f"{c.steps} steps, found at schedule {c.found_at} \u00b7 "
        f'<a href="#{anchor}">jump to the broken invariant ({escape(where)})</a></p>\n'
        "<h3>replay it with</h3>\n"
        f"{command_box(c.replay_command)}\n"
        "<h3>swim lanes</h3>\n"
        f"{lanes_block(scenario, c.run, [(c.id, c.message, step)], anchor)}\n"
        "</section>"
    )


def _anchors(verdicts: list[DesignVerdict], prefix: str = "") -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for v in verdicts:
        for c in v.counterexamples:
            out[(v.design, c.id)] = f"{prefix}violation-{len(out) + 1}"
    return out


def explore_html(scenario: Scenario, strategy: str, verdicts: list[DesignVerdict]) -> str:
    anchors = _anchors(verdicts)
    body = [
        scenario_header(scenario, f"strategy {escape(strategy)}"),
        f'<section class="card">\n<h2>verdicts</h2>\n{verdicts_table(verdicts, anchors)}\n</section>',
    ]
    for v in verdicts:
        for c in v.counterexamples:
            body.append(counterexample_card(scenario, v.design, c, anchors[(v.design, c.id)]))
    if all(v.clean for v in verdicts):
        body.append('<section class="card good"><h2>no invariant broke</h2><p class="sub">Every schedule the '
                    "search ran kept every invariant.</p></section>")
    return page(scenario.title, "explore", "\n".join(body))


def run_table(doc: dict[str, Any]) -> str:
    rows = []
    for op in doc["ops"]:
        expected = ""
        cls = ""
        if "expected" in op:
            expected = escape(op["expected"]["value"])
            if not op["matches"]:
                expected += ' <span class="pill violation">MISMATCH</span>'
                cls = ' class="mismatch"'
        rows.append(f'<tr{cls}><td class="n">{op["line"]}</td><td>{escape(op["thread"])}</td>'
                    f'<td class="mono">{escape(op["op"])}</td><td class="mono">{escape(op["outcome"]["value"])}</td>'
                    f'<td class="n">{op["minflt"]}</td><td class="n">{op["majflt"]}</td>'
                    f'<td class="mono">{expected}</td></tr>')
    return ('<table class="t"><thead><tr><th class="n">line</th><th>thread</th><th>op</th><th>outcome</th>'
            '<th class="n">minflt</th><th class="n">majflt</th><th>expected</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")


def counters_text(doc: dict[str, Any]) -> str:
    c = doc["counters"]
    f = c["faults"]
    kinds = ", ".join(f"{k} {v}" for k, v in f.items() if k not in ("total", "major") and v)
    locks = ", ".join(f"{short_lock(k)} {v}" for k, v in c["locks"].items())
    return (f"<p>faults: <b>{f['total']}</b> ({f['major']} major){': ' + escape(kinds) if kinds else ''} \u00b7 "
            f"bytes copied <b>{c['bytes_copied']}</b> \u00b7 pages zeroed <b>{c['pages_zeroed']}</b> \u00b7 "
            f"blocks allocated {c['blocks_allocated']}, freed {c['blocks_freed']}</p>"
            + (f'<p class="sub">lock acquisitions: {escape(locks)}</p>' if locks else ""))


def replay_html(scenario: Scenario, design: str, command: str, doc: dict[str, Any], run: ModelRunResult) -> str:
    broken = bool(run.violations)
    violations = "".join(
        f'<div class="msg"><b class="vid">{escape(v.id)}</b>{"" if v.step is None else f" (step {v.step})"}: '
        f"{escape(v.message)}</div>"
        for v in run.violations
    )
    body = [
        scenario_header(scenario, f"design {escape(design)}"),
        f'<section class="card {"bad" if broken else "good"}">\n'
        f'<h2>replay under {escape(design)}: '
        + ('<span class="pill violation">VIOLATION</span>' if broken else '<span class="pill clean">clean</span>')
        + "</h2>\n" + violations
        + ('<p class="meta"><a href="#violation-1">jump to the broken invariant</a></p>' if broken else "")
        + f"\n{command_box(command)}\n{run_table(doc)}\n{counters_text(doc)}\n</section>",
        f'<section class="card">\n<h2>swim lanes</h2>\n{lanes_block(scenario, run, None, "violation-1")}\n</section>',
    ]
    return page(scenario.title, "replay", "\n".join(body))


def _cell_classes(values: list[int]) -> list[str]:
    """Per value: 'zero', 'hi' (above the column's minimum: this design pays more) or ''."""
    low = min(values, default=0)
    return ["zero" if v == 0 else ("hi" if v > low else "") for v in values]


def _row_anchors(c: Comparison) -> list[list[str]]:
    """Per row of ``c``, the anchors of its counterexamples, numbered across the whole page."""
    out: list[list[str]] = []
    n = 0
    for row in c.rows:
        out.append([f"violation-{n + i + 1}" for i in range(len(row.verdict.counterexamples))])
        n += len(row.verdict.counterexamples)
    return out


def compare_table(c: Comparison) -> str:
    head = ("<tr><th>design</th><th class=\"n\">faults</th><th class=\"n\">major</th><th class=\"n\">read</th>"
            '<th class="n">cow</th><th class="n">shared</th><th class="n">wp-copy</th><th class="n">wp-reuse</th>'
            '<th class="n">bytes copied</th><th class="n">pages zeroed</th><th>locks: taken, longest held '
            "(steps)</th><th>verdict (dfs)</th></tr>")
    body = []
    anchors = _row_anchors(c)
    for scenario in c.scenarios:
        rows = c.rows_of(scenario)
        if len(c.scenarios) > 1:
            body.append(f'<tr class="group"><td colspan="12">{escape(scenario.title)} '
                        f"<code>{escape(scenario.path)}</code></td></tr>")
        columns: list[list[int]] = [[list(r.faults.values())[i] for r in rows] for i in range(7)]
        columns += [[r.bytes_copied for r in rows], [r.pages_zeroed for r in rows]]
        classes = [_cell_classes(col) for col in columns]
        for i, row in enumerate(rows):
            nums = "".join(f'<td class="n {classes[j][i]}">{columns[j][i]}</td>' for j in range(len(columns)))
            link = anchors[c.rows.index(row)]
            body.append(f'<tr><td class="nowrap"><b>{escape(row.design)}</b></td>{nums}'
                        f"<td>{_locks_cell(row)}</td>"
                        f"<td>{_verdict_cell(row, link[0] + '-card' if link else None)}</td></tr>")
    return f'<table class="t"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _locks_cell(row: CompareRow) -> str:
    lines = "".join(
        f'<tr><td><i class="chip" style="--c: {lock_colour(cls)}"></i>{escape(short_lock(cls))}</td>'
        f'<td class="n">{n}</td><td class="n">{hold}</td></tr>'
        for cls, n, hold in row.locks
    )
    return f'<table class="locks">{lines}</table>'


def _verdict_cell(row: CompareRow, card: str | None) -> str:
    _, detail = verdict_summary(row.verdict)
    pill = verdict_pill(row.verdict)
    if card is not None:
        pill = f'<a class="pill-link" href="#{card}">{pill}</a>'
    return f"{pill}<div class=\"sub\">{escape(detail.replace(chr(10), ' '))}</div>"


def compare_html(c: Comparison) -> str:
    how = "exhaustive dfs" if c.bound is None else f"dfs, preemption bound {c.bound}"
    if c.max_schedules is not None:
        how += f", at most {c.max_schedules} schedules"
    if c.budget_seconds is not None:
        how += f", {c.budget_seconds:g} s per design"
    body = []
    if len(c.scenarios) == 1:
        body.append(scenario_header(c.scenarios[0], f"verdicts by {escape(how)}"))
    else:
        body.append(f"<h1>{len(c.scenarios)} scenarios compared</h1>"
                    f'<p class="sub">verdicts by {escape(how)}</p>')
    body.append(
        '<section class="card">\n<h2>cost and correctness per design</h2>\n'
        '<p class="sub">Costs are those of one sequential run (threads in file order); a highlighted number is '
        "more than the cheapest design pays. Locks: acquisitions, and the longest any lock of the class was "
        "held, in scheduling steps.</p>\n"
        f"{compare_table(c)}\n</section>"
    )
    for scenario in c.scenarios:
        rows = c.rows_of(scenario)
        title = "" if len(c.scenarios) == 1 else f" \u2014 {escape(scenario.title)}"
        body.append(f'<section class="card">\n<h2>cost per design{title}</h2>\n{cost_chart(rows)}\n</section>')
    cex = []
    for row, anchors in zip(c.rows, _row_anchors(c), strict=True):
        for ce, anchor in zip(row.verdict.counterexamples, anchors, strict=True):
            cex.append(counterexample_card(row.scenario, row.design, ce, anchor))
    n = len(cex)
    if cex:
        body.append(f'<details class="cex-list" open><summary>{n} counterexample{"s" if n != 1 else ""}'
                    "</summary>\n" + "\n".join(cex) + "\n</details>")
    title = c.scenarios[0].title if len(c.scenarios) == 1 else "comparison"
    return page(title, "compare", "\n".join(body))
