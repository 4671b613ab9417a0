"""Text report of the concurrent oracle (``faultlab oracle --concurrent N``): one table per
scenario whose columns are the distinct outcomes (the kernel's, then those only the model has)
and whose rows are the ops and the files, then every kernel outcome the model does not produce
with the nearest model outcome and the command that replays it."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from faultlab.oracle.concurrent import DIFFERENCE, ConcurrentCheck, Observed, Unexplained, show_contents

DIFF = "bold red"
UNSEEN = "bold yellow"
DIM = "dim"
CELL = 18


def _clip(text: str, n: int = CELL) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _labels(c: ConcurrentCheck) -> dict[Observed, str]:
    labels = {o: f"K{i + 1}" for i, o in enumerate(c.kernel.outcomes)}
    labels.update({o: f"M{i + 1}" for i, o in enumerate(c.model_only)})
    return labels


def outcomes_table(c: ConcurrentCheck) -> Table:
    """Rows: ops, then each file's size and contents, then whether the model has the outcome;
    columns: the kernel's outcomes (with their run counts), then the model-only ones."""
    labels = _labels(c)
    unexplained = {u.outcome: u for u in c.unexplained}
    columns: list[tuple[Observed, str, str]] = []
    for o, (runs, _first) in c.kernel.outcomes.items():
        style = "" if o not in unexplained else DIFF if unexplained[o].kind == DIFFERENCE else UNSEEN
        columns.append((o, f"{labels[o]}\n{runs} run{'s' if runs != 1 else ''}", style))
    for o in c.model_only:
        columns.append((o, f"{labels[o]}\nmodel only", DIM))
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("thread")
    table.add_column("op")
    for _o, header, style in columns:
        table.add_column(Text(header, style=style))
    ops = next(iter(c.kernel.outcomes), None) or next(iter(c.model.outcomes), None)
    if ops is None:
        return table
    for i, (thread, op, _r) in enumerate(ops.ops):
        cells = [Text(_clip(o.ops[i][2]) if i < len(o.ops) else "-", style=style) for o, _h, style in columns]
        table.add_row(str(i + 1), Text(thread), Text(_clip(op, 36)), *cells)  # Text: "[setup]" is no markup
    for j, (name, _size, _contents) in enumerate(ops.files):
        sizes = [Text(str(o.files[j][1]) if j < len(o.files) else "-", style=s) for o, _h, s in columns]
        table.add_row("", f"file {name}", "size", *sizes)
        contents = [
            Text(show_contents(o.files[j][2], CELL) if j < len(o.files) else "-", style=s) for o, _h, s in columns
        ]
        table.add_row("", f"file {name}", "contents", *contents)
    verdict = []
    for o, _h, _s in columns:
        if o not in unexplained:
            verdict.append(Text("yes", style=DIM if o not in c.kernel.outcomes else "green"))
        elif unexplained[o].kind == DIFFERENCE:
            verdict.append(Text("NO", style=DIFF))
        else:
            verdict.append(Text("not seen", style=UNSEEN))
        # (model-only columns are model outcomes by construction)
    table.add_row("", "", "a model outcome?", *verdict)
    return table


def _op_difference(u: Unexplained, i: int) -> str:
    assert u.nearest is not None
    mine = u.outcome.ops[i] if i < len(u.outcome.ops) else None
    theirs = u.nearest.ops[i] if i < len(u.nearest.ops) else None
    ref = mine or theirs
    assert ref is not None
    kernel = mine[2] if mine else "(missing)"
    model = theirs[2] if theirs else "(missing)"
    return f"op {i + 1} ({ref[0]}) `{ref[1]}`: kernel {kernel}, model {model}"


def _file_difference(u: Unexplained, name: str) -> str:
    assert u.nearest is not None
    mine = {f[0]: f for f in u.outcome.files}.get(name)
    theirs = {f[0]: f for f in u.nearest.files}.get(name)

    def show(f: tuple[str, int, bytes | None] | None) -> str:
        return "(missing)" if f is None else f"size {f[1]}, contents {show_contents(f[2], 48)}"

    return f"file {name}: kernel {show(mine)}; model {show(theirs)}"


def describe_unexplained(c: ConcurrentCheck, u: Unexplained, label: str = "") -> list[str]:
    """Plain lines: the kernel outcome, the nearest model outcome, which ops and files differ and
    the replay command (for the report and for test failure messages)."""
    label = label or "kernel outcome"
    runs = f"{u.runs} run{'s' if u.runs != 1 else ''}, first in run {u.first_run}"
    if u.kind == DIFFERENCE:
        head = (
            f"DIFFERENCE: {label} ({runs}) is not one the model ({c.model.design}) produces; its "
            "exploration was complete"
        )
    else:
        head = (
            f"NOT SEEN BY THE BOUNDED MODEL: {label} ({runs}) is not among the outcomes of the model's "
            f"({c.model.design}) bounded exploration, which is a lower bound of the model's outcomes"
        )
    lines = [head]
    lines.append(
        "  kernel: "
        + "; ".join(f"{t} `{o}` {r}" for t, o, r in u.outcome.ops)
        + "".join(f"; file {n} size {s} {show_contents(b, 48)}" for n, s, b in u.outcome.files)
    )
    if u.nearest is None:
        lines.append("  the model produced no outcome at all")
        return lines
    n = len(u.differing_ops) + len(u.differing_files)
    lines.append(f"  nearest model outcome ({n} difference{'s' if n != 1 else ''}):")
    lines += [f"    {_op_difference(u, i)}" for i in u.differing_ops]
    lines += [f"    {_file_difference(u, name)}" for name in u.differing_files]
    if u.replay:
        lines.append(f"  replay it: {u.replay}")
    return lines


def print_concurrent(out: Console, c: ConcurrentCheck) -> None:
    k, m = c.kernel, c.model
    out.print(
        Text(
            f"{c.scenario.title}  [{c.scenario.path}]  fs {c.scenario.fs}: model design {m.design} vs kernel "
            f"{k.kernel}, {k.runs} concurrent runs ({k.workers}, {k.cpus} CPU{'s' if k.cpus != 1 else ''})",
            style="bold",
        ),
        soft_wrap=True,
    )
    for note in c.notes:
        out.print(note, soft_wrap=True)
    n = len(m.outcomes)
    out.print(f"model: {m.how}; {n} distinct outcome{'s' if n != 1 else ''}", soft_wrap=True)
    if m.violations:
        found = ", ".join(m.violations)
        out.print(Text(f"the model's exploration itself reports: {found} (see faultlab explore)", style=DIM))
    out.print(outcomes_table(c))
    labels = _labels(c)
    for u in c.unexplained:
        style = DIFF if u.kind == DIFFERENCE else UNSEEN
        for i, line in enumerate(describe_unexplained(c, u, f"kernel outcome {labels[u.outcome]}")):
            out.print(Text(line, style=style if i == 0 else ""), soft_wrap=True)
    shown = len(m.outcomes) - len(c.model_only)
    coverage = f"the kernel showed {shown} of the model's {len(m.outcomes)} outcomes"
    if c.ok:
        out.print(
            Text(
                f"every kernel outcome ({len(k.outcomes)} distinct in {k.runs} runs) is a model outcome; {coverage}",
                style="green",
            ),
            soft_wrap=True,
        )
    else:
        hard = len(c.differences)
        unseen = len(c.unexplained) - hard
        parts = []
        if hard:
            parts.append(f"{hard} kernel outcome{'s' if hard != 1 else ''} the model does not produce")
        if unseen:
            parts.append(f"{unseen} not seen by the bounded model")
        out.print(Text(f"{'; '.join(parts)}; {coverage}", style=DIFF if hard else UNSEEN), soft_wrap=True)
