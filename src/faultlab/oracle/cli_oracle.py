"""``faultlab oracle``: run scenarios on the model and on a real kernel, side by side.

Sequentially by default; with ``--concurrent N`` the scenario's threads race for real N times and
every outcome the kernel shows must be one the model's exploration produces
(:mod:`faultlab.oracle.concurrent`).

Exit status: 0 when every observable the model claims agrees (every kernel outcome is a model
outcome), 1 when one differs, 2 (one line on stderr) for bad input or when the probe or the DAX VM
cannot be had. The command object is :data:`oracle_cmd`; ``faultlab.cli`` registers it with
``main.add_command(oracle_cmd)``.
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
from faultlab.oracle.concurrent import MAX_RUNS, check_json, run_concurrent_oracle
from faultlab.oracle.report_concurrent import print_concurrent
from faultlab.results import FileState, OpRecord
from faultlab.scenario import load_scenario
from faultlab.scenario.model import Scenario, format_bytes

DIFF = "bold red"
UNCLAIMED = "dim"


def _console() -> Console:
    from faultlab.cli import pipe_closed

    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=160, color_system=None)
    out.on_broken_pipe = pipe_closed  # type: ignore[method-assign]  # (rich exits 1: a violation's status)
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
            Text(row.thread),  # Text: "[setup]" is no markup
            Text(row.op),
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
@click.option(
    "--design",
    "design_name",
    default=None,
    help="the model's design (default: the design of the kernel it runs on: v6.18 on this host, v6.1 in the DAX VM)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option(
    "--setup",
    "setup_only",
    is_flag=True,
    help="prepare the DAX VM (host packages, kernel, initramfs; cached) and exit",
)
@click.option(
    "--concurrent",
    "runs_text",
    metavar="N",
    default=None,
    help="run the threads concurrently N times (threads, or processes for mm = per-thread) and check "
    "that every outcome the kernel shows is one the model's exploration produces",
)
@click.option("--seed", "seed_text", metavar="S", default=None, help="--concurrent: seed of the timing plans (0)")
@click.option(
    "--bound",
    "bound_text",
    metavar="B",
    default=None,
    help="--concurrent: preemption bound of the model's exploration (default: unbounded, falling back "
    "to bound 2 past --max-schedules)",
)
@click.option(
    "--max-schedules",
    "max_text",
    metavar="M",
    default=None,
    help="--concurrent: cap on the model's exploration (5000 unbounded, 50000 bounded)",
)
def oracle_cmd(
    scenario_paths: tuple[str, ...],
    kernel: str | None,
    design_name: str | None,
    as_json: bool,
    setup_only: bool,
    runs_text: str | None,
    seed_text: str | None,
    bound_text: str | None,
    max_text: str | None,
) -> None:
    """Run each SCENARIO sequentially on the model and on a real kernel and compare what the model
    claims (docs/fidelity.md): op outcomes, minor/major faults per op, final file sizes and contents.

    With --concurrent N the threads race for real, N times, and every distinct outcome the kernel
    shows (ops' outcomes, final files; no fault counts) must be one the model's exploration of the
    interleavings produces; model outcomes the kernel never showed are only coverage.

    Exits 1 when a claimed observable differs, 2 on bad input or when the probe or VM is missing."""
    try:
        if runs_text is None:
            for name, value in (("--seed", seed_text), ("--bound", bound_text), ("--max-schedules", max_text)):
                if value is not None:
                    raise UserError(f"{name} applies to --concurrent N only")
            code = _oracle(scenario_paths, kernel, design_name, as_json, setup_only)
        else:
            code = _concurrent(
                scenario_paths,
                kernel,
                design_name,
                as_json,
                setup_only,
                runs=_whole("--concurrent N", runs_text, 1, MAX_RUNS, "a positive number of runs"),
                seed=0 if seed_text is None else _whole("--seed", seed_text, 0, (1 << 64) - 1, "0..2^64-1"),
                bound=None if bound_text is None else _whole("--bound", bound_text, 0, 1000, "0 or more"),
                max_schedules=None if max_text is None else _whole("--max-schedules", max_text, 1, None, "1 or more"),
            )
    except UserError as e:
        click.echo(f"faultlab oracle: {one_line(e)}", err=True)
        sys.exit(2)
    sys.exit(code)


def _whole(option: str, text: str, low: int, high: int | None, expected: str) -> int:
    """``text`` as a whole number in [low, high]; a UserError naming the option otherwise."""
    value = int(text) if text.strip().isdigit() else None
    if value is None or value < low or (high is not None and value > high):
        raise UserError(f"{option}: expected a whole number, {expected}, got {text!r}")
    return value


def _concurrent(
    paths: tuple[str, ...],
    kernel: str | None,
    design_name: str | None,
    as_json: bool,
    setup_only: bool,
    *,
    runs: int,
    seed: int,
    bound: int | None,
    max_schedules: int | None,
) -> int:
    if setup_only:
        raise UserError("--setup prepares the DAX VM and exits; it does not take --concurrent")
    if not paths:
        raise UserError("give at least one SCENARIO file")
    if design_name is not None:
        resolve_design(design_name)  # an unknown design is refused before anything runs
    scenarios = [load_scenario(p) for p in paths]
    checks = run_concurrent_oracle(
        scenarios, runs, kernel, design_name, seed=seed, bound=bound, max_schedules=max_schedules, log=_setup_log
    )
    if as_json:
        docs = [check_json(c) for c in checks]
        total = sum(d["differences"] for d in docs)
        click.echo(json.dumps({"runs": runs, "seed": seed, "differences": total, "scenarios": docs}, indent=2))
    else:
        out = _console()
        for i, c in enumerate(checks):
            if i:
                out.print()
            print_concurrent(out, c)
    return 1 if any(not c.ok for c in checks) else 0


def _setup_log(message: str) -> None:
    """The VM setup's progress on stderr, except the line saying that everything was cached."""
    if not message.startswith("dax-vm: cached"):
        click.echo(message, err=True)


def _oracle(
    paths: tuple[str, ...], kernel: str | None, design_name: str | None, as_json: bool, setup_only: bool
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
    design = None if design_name is None else resolve_design(design_name)
    scenarios = [load_scenario(p) for p in paths]
    results = run_oracle(scenarios, kernel, design, log=_setup_log)
    if as_json:
        docs = [comparison_json(s, c) for s, c in results]
        total = sum(d["differences"] for d in docs)
        names = sorted({c.design for _s, c in results})
        click.echo(json.dumps({"design": ",".join(names), "differences": total, "scenarios": docs}, indent=2))
    else:
        out = _console()
        for i, (s, c) in enumerate(results):
            if i:
                out.print()
            print_comparison(out, s, c)
    return 1 if any(not c.ok for _, c in results) else 0
