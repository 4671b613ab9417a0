"""``faultlab oracle``: run scenarios on the model and on a real kernel, side by side.

Exit status: 0 when every observable the model claims agrees, 1 when one differs, 2 (one line on
stderr) for bad input or when the probe or the DAX VM cannot be had. The command object is
:data:`oracle_cmd`; ``faultlab.cli`` registers it with ``main.add_command(oracle_cmd)``.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from faultlab.errors import UserError
from faultlab.oracle.compare import (
    KERNELS,
    Comparison,
    FileRow,
    OpRow,
    comparison_json,
    resolve_design,
    run_oracle,
)
from faultlab.results import FileState, OpRecord
from faultlab.scenario import load_scenario
from faultlab.scenario.model import Scenario, format_bytes

DIFF = "bold red"
UNCLAIMED = "dim"


def _console() -> Console:
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=160, color_system=None)
    return out


def one_line(e: UserError) -> str:
    """The first line of an error, plus where the VM's console log is when there is one."""
    first = (str(e).splitlines() or [type(e).__name__])[0]
    log = getattr(e, "console_log", None)
    return f"{first} (full console log: {log})" if log else first


def _clip(text: str, n: int = 48) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _cell(text: str, differs: bool, claimed: bool) -> Text:
    if differs:
        return Text(text, style=DIFF)
    return Text(text, style="" if claimed else UNCLAIMED)


def _faults(r: OpRecord | None) -> str:
    return "-" if r is None else f"{r.minflt}/{r.majflt}"


def _op_note(row: OpRow) -> str:
    notes = []
    unclaimed = [o for o in ("minflt", "majflt") if o not in row.claim.observables]
    if unclaimed:
        notes.append(f"{'+'.join(unclaimed)} not claimed")
    if row.claim.masked:
        notes.append(f"{len(row.claim.masked)} byte(s) not compared")
    if row.claim.waived:
        notes.append("(" + ", ".join(row.claim.waived) + ")")
    if row.differs:
        notes.insert(0, "DIFFERS: " + ", ".join(row.differs))
    return " ".join(notes)


def ops_table(c: Comparison) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for col in ("#", "line", "thread", "op", "model", "kernel", "model flt", "kernel flt", "notes"):
        table.add_column(col, justify="right" if col in ("#", "line") else "left")
    for row in c.rows:
        claimed_outcome = "outcome" in row.claim.observables
        faults_differ = "minflt" in row.differs or "majflt" in row.differs
        faults_claimed = "minflt" in row.claim.observables and "majflt" in row.claim.observables
        table.add_row(
            str(row.index + 1),
            str(row.line or ""),
            row.thread,
            row.op,
            _cell(
                _clip(str(row.model.outcome)) if row.model else "-", "outcome" in row.differs, claimed_outcome
            ),
            _cell(
                _clip(str(row.kernel.outcome)) if row.kernel else "-",
                "outcome" in row.differs,
                claimed_outcome,
            ),
            _cell(_faults(row.model), faults_differ, faults_claimed),
            _cell(_faults(row.kernel), faults_differ, faults_claimed),
            Text(_op_note(row), style=DIFF if row.differs else UNCLAIMED),
        )
    return table


def _contents(f: FileState | None) -> str:
    if f is None:
        return "-"
    return "(not recorded)" if f.contents is None else _clip(format_bytes(f.contents), 56)


def files_table(c: Comparison) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for col in ("file", "model size", "kernel size", "model contents", "kernel contents", "notes"):
        table.add_column(col)
    for f in c.files:
        note = ""
        if f.claim.masked:
            note = f"{len(f.claim.masked)} byte(s) not compared"
        if "contents" not in f.claim.observables:
            note = "contents not compared"
        if f.claim.waived:
            note += f" ({', '.join(f.claim.waived)})"
        if f.differs:
            note = "DIFFERS: " + ", ".join(f.differs) + (f"; {note}" if note else "")
        table.add_row(
            f.name,
            _cell(str(f.model.size) if f.model else "-", "size" in f.differs, True),
            _cell(str(f.kernel.size) if f.kernel else "-", "size" in f.differs, True),
            _cell(_contents(f.model), "contents" in f.differs, True),
            _cell(_contents(f.kernel), "contents" in f.differs, True),
            Text(note, style=DIFF if f.differs else UNCLAIMED),
        )
    return table


def print_comparison(out: Console, scenario: Scenario, c: Comparison) -> None:
    out.print(
        Text(
            f"{scenario.title}  [{scenario.path}]  fs {scenario.fs}: model design {c.design} "
            f"vs kernel {c.kernel}",
            style="bold",
        ),
        soft_wrap=True,
    )
    for note in c.notes:
        out.print(note, soft_wrap=True)
    out.print(ops_table(c))
    out.print(files_table(c))
    if c.model_error:
        out.print(Text(f"the model raised: {c.model_error}", style=DIFF))
    n = len(c.differences)
    if n:
        what = ", ".join(
            f"op {d.index + 1} {'/'.join(d.differs)}" if isinstance(d, OpRow) else f"file {d.name}"
            for d in c.differences
            if isinstance(d, OpRow | FileRow)
        )
        out.print(Text(f"{n} difference(s) in what the model claims: {what}", style=DIFF))
    elif c.model_error is None:
        out.print(Text("no difference in what the model claims", style="green"))


@click.command("oracle")
@click.argument("scenario_paths", metavar="SCENARIO...", nargs=-1)
@click.option(
    "--kernel",
    type=click.Choice(KERNELS),
    default=None,
    help="where to run: host-tmpfs, host-ext4 (this machine) or dax-vm (a 6.1 kernel under "
    "qemu with DAX); default: the one that matches each scenario's fs",
)
@click.option("--design", "design_name", default="v4.10", show_default=True, help="the model's design")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option(
    "--setup",
    "setup_only",
    is_flag=True,
    help="prepare the DAX VM (host packages, kernel, initramfs; cached) and exit",
)
def oracle_cmd(
    scenario_paths: tuple[str, ...], kernel: str | None, design_name: str, as_json: bool, setup_only: bool
) -> None:
    """Run each SCENARIO sequentially on the model and on a real kernel and compare what the model
    claims (docs/fidelity.md): op outcomes, minor/major faults per op, final file sizes and contents.

    Exits 1 when a claimed observable differs, 2 on bad input or when the probe or VM is missing."""
    try:
        code = _oracle(scenario_paths, kernel, design_name, as_json, setup_only)
    except UserError as e:
        click.echo(f"faultlab oracle: {one_line(e)}", err=True)
        sys.exit(2)
    sys.exit(code)


def _setup_log(message: str) -> None:
    """The VM setup's progress on stderr, except the line saying that everything was cached."""
    if not message.startswith("dax-vm: cached"):
        click.echo(message, err=True)


def _oracle(
    paths: tuple[str, ...], kernel: str | None, design_name: str, as_json: bool, setup_only: bool
) -> int:
    if setup_only:
        if paths:
            raise UserError("--setup prepares the DAX VM and exits; run the SCENARIOs without --setup")
        from faultlab.oracle import vm

        assets = vm.setup(log=lambda msg: click.echo(msg, err=True))
        click.echo(f"dax-vm ready: {assets.kernel_package} {assets.kernel_version} in {assets.cache_dir}")
        return 0
    if not paths:
        raise UserError("give at least one SCENARIO file (or --setup)")
    design = resolve_design(design_name)
    scenarios = [load_scenario(p) for p in paths]
    results = run_oracle(scenarios, kernel, design, log=_setup_log)
    if as_json:
        docs = [comparison_json(s, c) for s, c in results]
        total = sum(d["differences"] for d in docs)
        click.echo(json.dumps({"design": design.name, "differences": total, "scenarios": docs}, indent=2))
    else:
        out = _console()
        for i, (s, c) in enumerate(results):
            if i:
                out.print()
            print_comparison(out, s, c)
    return 1 if any(not c.ok for _, c in results) else 0
