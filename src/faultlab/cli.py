"""The faultlab command line: run, explore, replay, compare, designs, oracle (entry points only, no logic).

Start-up matters for a command run in loops and scripts, so each command imports what it uses
when it runs: the oracle, the comparison and the HTML report are never imported by ``explore``,
and rich's progress bar only when it is shown. Every usage error and every bad input is one line
``faultlab: ...`` on stderr with exit status 2 (:class:`FaultlabGroup`).
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from faultlab.errors import AuditError, UserError, one_line, shown
from faultlab.limits import MAX_DIGITS

if TYPE_CHECKING:
    from rich.console import Console

    from faultlab.designs.base import Design
    from faultlab.explore.results import Stats
    from faultlab.scenario.model import Scenario

F = TypeVar("F", bound=Callable[..., Any])

_NO_ARGS_IS_HELP: tuple[type[Exception], ...] = tuple(
    e for e in [getattr(click.exceptions, "NoArgsIsHelpError", None)] if e is not None)  # click >= 8.2

LAZY_COMMANDS = {"oracle": ("faultlab.oracle.cli_oracle", "oracle_cmd")}
"""Commands whose module is imported only when they are asked for (by name, or by --help)."""
PIPE_CLOSED = 141
"""The exit status when the output's reader went away (128 + SIGPIPE, as a shell reports a command
SIGPIPE killed): not 1, which says a violation was found."""


def fail(message: str, status: int = 2) -> NoReturn:
    """One line on stderr, then exit (2: bad input)."""
    click.echo(f"faultlab: {one_line(message)}", err=True)
    sys.exit(status)


def _usage_message(e: click.UsageError) -> str:
    """A click usage error as one line: ``--bound: -1 is not in the range x>=0``."""
    if isinstance(e, click.BadParameter) and not isinstance(e, click.MissingParameter) and e.param is not None:
        param = e.param
        name = max(param.opts, key=len) if isinstance(param, click.Option) else param.human_readable_name
        return f"{name}: {e.message.rstrip('.')}"
    message = e.format_message().rstrip(".")
    message = message[:1].lower() + message[1:]
    names: list[str] = []
    ctx = e.ctx
    while ctx is not None and ctx.parent is not None:
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return f"{message} (see '{' '.join(['faultlab', *names])} --help')"


def pipe_closed() -> NoReturn:
    """Exit with PIPE_CLOSED, the output thrown away (the exit's own flush must not fail again)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(PIPE_CLOSED)


class FaultlabGroup(click.Group):
    """The ``faultlab`` group: lazy subcommands, and one line on stderr for every usage error,
    bad parameter or bad input (exit status 2), never click's usage block or a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            import importlib

            module, attr = LAZY_COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (``| head``) while a command printed
            pipe_closed()

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            self._main(args, prog_name, complete_var, **extra)
        finally:  # (what is still buffered is written here: the reader may have gone away since)
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                pipe_closed()

    def _main(self, args: Sequence[str] | None, prog_name: str | None, complete_var: str | None,
              **extra: Any) -> NoReturn:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP:
            fail(f"missing command: expected one of {', '.join(self.list_commands(click.Context(self)))} "
                 "(see 'faultlab --help')")
        except click.UsageError as e:
            fail(_usage_message(e))
        except click.ClickException as e:
            fail(e.format_message())
        except UserError as e:
            fail(str(e))
        except AuditError as e:  # the model (or a design) reached state it did not announce
            fail(f"audit: {e}", 1)
        except (click.Abort, KeyboardInterrupt):
            fail("interrupted", 130)
        # A command that did not exit itself succeeded; --help and --version give their code here.
        sys.exit(rv if isinstance(rv, int) else 0)


def audit_option(fn: F) -> F:
    """``--audit``: every run checks that each access to shared state was announced."""

    def set_audit(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if value:
            import faultlab.execution

            faultlab.execution.AUDIT = True
        return value

    return click.option("--audit", is_flag=True, expose_value=False, callback=set_audit,
                        help="fail at once on any access to shared state its step did not announce "
                             "(always on for a design file)")(fn)


def console() -> Console:
    """Rich output; a fixed width when not on a terminal, so piped output is the same everywhere."""
    from rich.console import Console

    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=140, color_system=None)
    out.on_broken_pipe = pipe_closed  # type: ignore[method-assign]  # (rich exits 1: a violation's status)
    return out


def progress_bar(label: str, budget: float | None, enabled: bool) -> AbstractContextManager[Any]:
    """The progress bar of a long exploration, only on a terminal (rich's progress is imported
    only then); otherwise a context whose ``update`` is None."""
    if enabled and sys.stdout.isatty():
        from faultlab.report.progress import ExploreProgress

        return ExploreProgress(console(), label, budget, enabled=True)
    return nullcontext(_NoProgress())


class _NoProgress:
    update: Callable[[Stats], None] | None = None


_WHOLE_NUMBER = re.compile(f"-?[0-9]{{1,{MAX_DIGITS}}}")
_DECIMAL = re.compile(f"[0-9]{{1,{MAX_DIGITS}}}(?:\\.[0-9]{{0,{MAX_DIGITS}}})?|\\.[0-9]{{1,{MAX_DIGITS}}}")


class Count(click.ParamType):
    """A whole number in ASCII digits (no other script's digits, no underscores), at least ``min``."""

    name = "integer"

    def __init__(self, min: int | None = None) -> None:
        self.min = min

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            text = str(value)
            if not _WHOLE_NUMBER.fullmatch(text):
                self.fail(f"{shown(text)} is not a whole number of at most {MAX_DIGITS} digits", param, ctx)
            n = int(text)
        if self.min is not None and n < self.min:
            self.fail(f"{n} is not in the range x>={self.min}", param, ctx)
        return n


class Seconds(click.ParamType):
    """A positive, finite number of seconds in ASCII digits (``nan`` and ``inf`` are refused)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            seconds = value
        else:
            text = str(value)
            if not _DECIMAL.fullmatch(text):
                self.fail(f"{shown(text)} is not a number of seconds such as 30 or 0.5", param, ctx)
            seconds = float(text)
        if not (math.isfinite(seconds) and seconds > 0):
            self.fail(f"{shown(value)} is not a number of seconds greater than 0", param, ctx)
        return seconds


def design_args(spec: str) -> list[tuple[Design, str]]:
    """``--design`` as (class, how a replay command names it); an empty name is refused."""
    from faultlab.designs import resolve_design_args

    if spec.strip() != "all" and any(not part.strip() for part in spec.split(",")):
        raise UserError(f"--design {shown(spec)} has an empty design name: expected a design name, 'all', "
                        "a comma-separated list of names or a path to a .py file")
    return resolve_design_args(spec)


@click.group(cls=FaultlabGroup)
@click.version_option(package_name="faultlab")
def main() -> None:
    """An executable model of the Linux page-fault path for file-backed mappings (page cache and
    DAX), with every design from the 2014 "handler performs the COW" history."""


@main.command("designs")
def designs_cmd() -> None:
    """List the designs: the seed's history and today's kernels, then the known bugs."""
    from faultlab.designs import DESIGNS, KNOWN_BUGS

    out = console()
    for d in list(DESIGNS.values()) + list(KNOWN_BUGS):
        out.print(f"{d.name:<26} {d.summary}")
        out.print(f"{'':<26} source: {d.source}", style="dim")


def thread_order(scenario: Scenario, order: str) -> list[int]:
    names = [t.name for t in scenario.threads]
    tids = []
    for part in order.split(","):
        part = part.strip()
        if part not in names:
            raise UserError(f"--schedule names thread {shown(part)}: the threads are {', '.join(names)}")
        tids.append(names.index(part))
    return tids


@main.command("run")
@click.argument("scenario_path", metavar="SCENARIO")
@click.option("--design", "design_spec", default="v4.10", show_default=True,
              help="a design name, 'all', a comma-separated list, or a path to a design .py file")
@click.option("--schedule", "order", default=None,
              help="thread names in the order to run them (e.g. truncator,faulter), or a schedule string")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@audit_option
def run_cmd(scenario_path: str, design_spec: str, order: str | None, as_json: bool) -> None:
    """Run SCENARIO once (threads one after another by default) and print every outcome and counter.

    Exits 1 when an op's outcome differs from the one the file expects, or an invariant breaks."""
    from faultlab.execution import ModelExecution
    from faultlab.explore import interrupt
    from faultlab.explore.interrupt import handle_signals
    from faultlab.exploring import replay_design
    from faultlab.report.summary import add_replay, run_json
    from faultlab.scenario import load_scenario
    from faultlab.sched import SequentialChooser

    if order is not None and not order.strip():
        raise UserError(f"--schedule {shown(order)} is empty: expected thread names in order (e.g. "
                        "truncator,faulter) or a schedule string printed by explore")
    scenario = load_scenario(scenario_path)
    docs = []
    with handle_signals():  # a first Ctrl-C ends the command after the run, a second at once
        for design, arg in design_args(design_spec):
            if order is not None and order.startswith("fl"):
                result = replay_design(scenario, design, order)
            else:
                tids = thread_order(scenario, order) if order else None
                result = ModelExecution(scenario, design).run(SequentialChooser(tids))
            docs.append(run_json(scenario, design.name, result))
            add_replay(docs[-1], scenario, arg, result)
            if interrupt.requested():
                fail("interrupted", 130)
    if as_json:
        import json

        click.echo(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
    else:
        from faultlab.report.text import print_run

        out = console()
        for i, doc in enumerate(docs):
            if i:
                out.print()
            print_run(out, doc)
    failed = any(doc["violations"] or any(not op.get("matches", True) for op in doc["ops"]) for doc in docs)
    sys.exit(1 if failed else 0)


@main.command("explore")
@click.argument("scenario_path", metavar="SCENARIO")
@click.option("--design", "design_spec", default="all", show_default=True,
              help="a design name, 'all' (every design but the known bugs), a comma-separated list, or a .py file")
@click.option("--strategy", type=click.Choice(["dfs", "pct", "random"]), default="dfs", show_default=True,
              help="dfs: exhaustive, with DPOR and sleep sets; pct: probabilistic concurrency testing; "
              "random: random walks")
@click.option("--plain", is_flag=True, help="dfs without partial-order reduction (every interleaving)")
@click.option("--bound", type=Count(min=0), default=None, help="preemption bound (dfs)")
@click.option("--retry-bound", type=Count(min=0), default=2, show_default=True,
              help="how often one thread may go round one kernel retry loop in a run; a run needing more is cut, "
              "and the search is then not a proof")
@click.option("--crash", is_flag=True,
              help="also try a crash after every step of every schedule (durability, torn-metadata)")
@click.option("--depth", type=Count(min=1), default=3, show_default=True, help="PCT bug depth")
@click.option("--seed", type=Count(), default=0, show_default=True, help="seed for pct and random")
@click.option("--max-schedules", type=Count(min=1), default=None,
              help="stop after this many schedules (pct/random default: 1000)")
@click.option("--budget", type=Seconds(), default=None,
              help="stop each design's search after this many seconds (the result then says so)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option("--html", "html_path", metavar="FILE", default=None,
              help="also write a self-contained HTML report (verdicts, swim lanes of each counterexample)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--jobs", type=Count(min=1), default=None,
              help="worker processes for dfs (default: all cores; 1: one process); the result is the same")
@click.option("--engine", type=click.Choice(["process", "ray"]), default="process", show_default=True,
              help="where dfs's tasks run: local processes, or Ray workers (pip install 'faultlab[ray]')")
@click.option("--address", default=None, help="the Ray cluster to use (default: a local Ray started for the run)")
@click.option("--checkpoint", "checkpoint_path", metavar="FILE", default=None,
              help="save dfs's progress to FILE regularly and on SIGINT/SIGTERM")
@click.option("--resume", "resume_path", metavar="FILE", default=None,
              help="go on from a checkpoint FILE (and keep saving to it)")
@audit_option
def explore_cmd(scenario_path: str, design_spec: str, strategy: str, plain: bool, bound: int | None,
                retry_bound: int, crash: bool, depth: int, seed: int, max_schedules: int | None, budget: float | None,
                as_json: bool, html_path: str | None, quiet: bool, jobs: int | None, engine: str,
                address: str | None, checkpoint_path: str | None, resume_path: str | None) -> None:
    """Explore the interleavings of SCENARIO's threads under each design: a proof by exhaustion that
    no invariant breaks, or a minimal counterexample with the command that replays it.

    Exit status: 0 no violation, 1 a violation, 2 bad input, 130 interrupted (SIGINT/SIGTERM), 141 the
    output's reader went away (as with `| head`)."""
    from faultlab.explore.interrupt import handle_signals
    from faultlab.exploring import explore_design, inner_strategy, search_key, search_options
    from faultlab.exploring_cli import interrupted_message, make_search_options, timing_json
    from faultlab.scenario import load_scenario

    if strategy != "dfs" and (plain or bound is not None):
        raise UserError("--plain and --bound apply to --strategy dfs only")
    if html_path is not None:
        from faultlab.report.html import check_html_path

        check_html_path(html_path)
    options = make_search_options(jobs, engine, address, checkpoint_path, resume_path)
    scenario = load_scenario(scenario_path)
    designs = list(design_args(design_spec))
    if options.checkpoint is not None:
        if strategy != "dfs":
            raise UserError("--checkpoint and --resume apply to --strategy dfs only")
        inner = inner_strategy(strategy, plain)
        keys = [search_key(scenario, d, inner, bound, retry_bound, crash) for d, _ in designs]
        options.checkpoint.check_resumes(keys, scenario.digest())
    verdicts = []
    with handle_signals(), search_options(options):
        for design, arg in designs:
            with progress_bar(design.name, budget, enabled=not quiet and not as_json) as progress:
                verdicts.append(explore_design(
                    scenario, design, strategy=strategy, plain=plain, bound=bound, retry_bound=retry_bound,
                    crash=crash, depth=depth, seed=seed, max_schedules=max_schedules, budget_seconds=budget,
                    design_arg=arg, progress=progress.update,
                ))
            if verdicts[-1].interrupted:
                break
    how = strategy + (" (plain)" if plain else "")
    if as_json:
        import json

        doc = {"scenario": scenario.path, "title": scenario.title, "strategy": strategy,
               "designs": [v.json() for v in verdicts], "timing": timing_json(verdicts)}
        click.echo(json.dumps(doc, indent=2))
    else:
        from faultlab.report.explore_text import print_exploration

        print_exploration(console(), scenario.path, scenario.title, how, verdicts)
    if html_path is not None:
        from faultlab.report.html import explore_html, write_html

        write_html(html_path, explore_html(scenario, how, verdicts))
    if verdicts and verdicts[-1].interrupted:
        click.echo(interrupted_message(verdicts, options, sys.argv[1:]), err=True)
        sys.exit(130)
    sys.exit(0 if all(v.clean for v in verdicts) else 1)


@main.command("replay")
@click.argument("scenario_path", metavar="SCENARIO")
@click.option("--schedule", required=True, help="a schedule string printed by explore (fl1:...)")
@click.option("--design", "design_spec", default=None,
              help="the design (default: the one the schedule names); a name or a .py file")
@click.option("--crash", is_flag=True, help="check a crash after every step, as explore --crash does")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option("--html", "html_path", metavar="FILE", default=None,
              help="also write a self-contained HTML report (the run and its swim lanes)")
def replay_cmd(scenario_path: str, schedule: str, design_spec: str | None, crash: bool, as_json: bool,
               html_path: str | None) -> None:
    """Re-run one schedule exactly, refusing a schedule recorded against another scenario or design.

    Exits 1 when the replay breaks an invariant or an expected outcome."""
    from faultlab.designs import get_design
    from faultlab.explore import interrupt
    from faultlab.explore.interrupt import handle_signals
    from faultlab.explore.schedule import decode
    from faultlab.exploring import replay_design
    from faultlab.report.summary import run_json
    from faultlab.scenario import load_scenario

    if html_path is not None:
        from faultlab.report.html import check_html_path

        check_html_path(html_path)
    scenario = load_scenario(scenario_path)
    _digest, recorded, _tids = decode(schedule)
    if design_spec is not None and not design_spec.strip():
        raise UserError("--design '' is empty: expected a design name or a path to a .py file")
    design = get_design(design_spec or recorded)
    with handle_signals():  # a first Ctrl-C ends the command after the run, a second at once
        result = replay_design(scenario, design, schedule, crash)
    if interrupt.requested():
        fail("interrupted", 130)
    doc = run_json(scenario, design.name, result)
    if as_json:
        import json

        click.echo(json.dumps(doc, indent=2))
    else:
        from faultlab.report.explore_text import print_lanes
        from faultlab.report.text import print_run

        out = console()
        print_run(out, doc)
        print_lanes(out, result, result.violations[0].id if result.violations else None)
    if html_path is not None:
        from faultlab.report.html import replay_html, write_html

        command = f"faultlab replay {scenario.path} --design {design_spec or recorded} --schedule {schedule}" + (
            " --crash" if crash else "")
        write_html(html_path, replay_html(scenario, design.name, command, doc, result))
    sys.exit(1 if doc["violations"] else 0)


@main.command("compare")
@click.argument("scenario_paths", metavar="SCENARIO...", nargs=-1, required=True)
@click.option("--design", "design_spec", default="all", show_default=True,
              help="a design name, 'all' (every design but the known bugs), a comma-separated list, or a .py file")
@click.option("--bound", type=Count(min=0), default=None, help="preemption bound for the exploration")
@click.option("--max-schedules", type=Count(min=1), default=None,
              help="stop each exploration after this many schedules")
@click.option("--budget", type=Seconds(), default=None,
              help="stop each design's exploration after this many seconds (the verdict then says so)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option("--html", "html_path", metavar="FILE", default=None,
              help="also write a self-contained HTML report (the table, a chart of cost per design, swim lanes)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--jobs", type=Count(min=1), default=None,
              help="worker processes for each exploration (default: all cores); the result is the same")
def compare_cmd(scenario_paths: tuple[str, ...], design_spec: str, bound: int | None, max_schedules: int | None,
                budget: float | None, as_json: bool, html_path: str | None, quiet: bool, jobs: int | None) -> None:
    """Compare designs on SCENARIO...: a row per design and scenario with the faults by kind, bytes
    copied, pages zeroed and lock acquisitions (and longest holds) of a sequential run, next to the
    verdict of an exhaustive (dfs) exploration of the interleavings.

    Exit status: 0 (a comparison is a report, violations included), 2 bad input."""
    from faultlab.compare import Comparison, compare_one, print_comparison
    from faultlab.scenario import load_scenario

    if html_path is not None:
        from faultlab.report.html import check_html_path

        check_html_path(html_path)
    scenarios = [load_scenario(p) for p in scenario_paths]
    designs = design_args(design_spec)
    comparison = Comparison(scenarios, bound=bound, max_schedules=max_schedules, budget_seconds=budget)
    from faultlab.exploring import search_options
    from faultlab.exploring_cli import make_search_options

    with search_options(make_search_options(jobs, "process", None, None, None)):
        for scenario in scenarios:
            for design, arg in designs:
                label = design.name if len(scenarios) == 1 else f"{scenario.path}: {design.name}"
                with progress_bar(label, budget, enabled=not quiet and not as_json) as progress:
                    comparison.rows.append(compare_one(scenario, design, design_arg=arg, bound=bound,
                                                       max_schedules=max_schedules, budget_seconds=budget,
                                                       progress=progress.update))
    if as_json:
        import json

        click.echo(json.dumps(comparison.json(), indent=2))
    else:
        print_comparison(console(), comparison)
    if html_path is not None:
        from faultlab.report.html import compare_html, write_html

        write_html(html_path, compare_html(comparison))
