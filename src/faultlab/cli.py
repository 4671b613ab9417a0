"""The faultlab command line: run, explore, replay, compare, designs, oracle (entry points only, no logic)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console

from faultlab.compare import Comparison, compare_one, print_comparison
from faultlab.designs import DESIGNS, KNOWN_BUGS, resolve_design_args, resolve_designs
from faultlab.errors import UserError
from faultlab.execution import ModelExecution
from faultlab.explore.interrupt import handle_signals
from faultlab.exploring import DEFAULT_RETRY_BOUND, explore_design, replay_design, search_options
from faultlab.exploring_cli import interrupted_message, make_search_options, timing_json
from faultlab.oracle.cli_oracle import oracle_cmd
from faultlab.report.explore_text import print_exploration, print_lanes
from faultlab.report.html import check_html_path, compare_html, explore_html, replay_html, write_html
from faultlab.report.progress import ExploreProgress
from faultlab.report.summary import run_json
from faultlab.report.text import print_run
from faultlab.scenario import load_scenario
from faultlab.scenario.model import Scenario
from faultlab.sched import SequentialChooser
from faultlab.sched.core import AuditError

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Bad input becomes one line on stderr and exit status 2, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            click.echo(f"faultlab: {e}", err=True)
            sys.exit(2)
        except AuditError as e:  # the model (or a design) reached state it did not announce
            click.echo(f"faultlab: audit: {e}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def audit_option(fn: F) -> F:
    """``--audit``: every run checks that each access to shared state was announced."""

    def set_audit(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if value:
            import faultlab.execution

            faultlab.execution.AUDIT = True
        return value

    return click.option("--audit", is_flag=True, expose_value=False, callback=set_audit,
                        help="fail at once on any access to shared state its step did not announce")(fn)


def console() -> Console:
    """Rich output; a fixed width when not on a terminal, so piped output is the same everywhere."""
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=140, color_system=None)
    return out


@click.group()
@click.version_option(package_name="faultlab")
def main() -> None:
    """An executable model of the Linux page-fault path for file-backed mappings (page cache and
    DAX), with every design from the 2014 "handler performs the COW" history."""


@main.command("designs")
def designs_cmd() -> None:
    """List the designs: the six of the seed's history, then the known bugs."""
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
            raise UserError(f"--schedule names thread '{part}': the threads are {', '.join(names)}")
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
@user_errors
def run_cmd(scenario_path: str, design_spec: str, order: str | None, as_json: bool) -> None:
    """Run SCENARIO once (threads one after another by default) and print every outcome and counter.

    Exits 1 when an op's outcome differs from the one the file expects, or an invariant breaks."""
    scenario = load_scenario(scenario_path)
    docs = []
    for design in resolve_designs(design_spec):
        execution = ModelExecution(scenario, design)
        if order is not None and order.startswith("fl"):
            result = replay_design(scenario, design, order)
        else:
            tids = thread_order(scenario, order) if order else None
            result = execution.run(SequentialChooser(tids))
        docs.append(run_json(scenario, design.name, result))
    if as_json:
        click.echo(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
    else:
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
              help="a design name, 'all' (the six historical designs), a comma-separated list, or a .py file")
@click.option("--strategy", type=click.Choice(["dfs", "pct", "random"]), default="dfs", show_default=True,
              help="dfs: exhaustive, with DPOR and sleep sets; pct: probabilistic concurrency testing; "
              "random: random walks")
@click.option("--plain", is_flag=True, help="dfs without partial-order reduction (every interleaving)")
@click.option("--bound", type=click.IntRange(min=0), default=None, help="preemption bound (dfs)")
@click.option("--retry-bound", type=click.IntRange(min=0), default=DEFAULT_RETRY_BOUND, show_default=True,
              help="how often one thread may go round one kernel retry loop in a run; a run needing more is cut, "
              "and the search is then not a proof")
@click.option("--depth", type=click.IntRange(min=1), default=3, show_default=True, help="PCT bug depth")
@click.option("--seed", type=int, default=0, show_default=True, help="seed for pct and random")
@click.option("--max-schedules", type=click.IntRange(min=1), default=None,
              help="stop after this many schedules (pct/random default: 1000)")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="stop each design's search after this many seconds (the result then says so)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option("--html", "html_path", metavar="FILE", default=None,
              help="also write a self-contained HTML report (verdicts, swim lanes of each counterexample)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="worker processes for dfs (default: all cores; 1: one process); the result is the same")
@click.option("--engine", type=click.Choice(["process", "ray"]), default="process", show_default=True,
              help="where dfs's tasks run: local processes, or Ray workers (pip install 'faultlab[ray]')")
@click.option("--address", default=None, help="the Ray cluster to use (default: a local Ray started for the run)")
@click.option("--checkpoint", "checkpoint_path", metavar="FILE", default=None,
              help="save dfs's progress to FILE regularly and on SIGINT/SIGTERM")
@click.option("--resume", "resume_path", metavar="FILE", default=None,
              help="go on from a checkpoint FILE (and keep saving to it)")
@audit_option
@user_errors
def explore_cmd(scenario_path: str, design_spec: str, strategy: str, plain: bool, bound: int | None,
                retry_bound: int, depth: int, seed: int, max_schedules: int | None, budget: float | None,
                as_json: bool, html_path: str | None, quiet: bool, jobs: int | None, engine: str,
                address: str | None, checkpoint_path: str | None, resume_path: str | None) -> None:
    """Explore the interleavings of SCENARIO's threads under each design: a proof by exhaustion that
    no invariant breaks, or a minimal counterexample with the command that replays it.

    Exit status: 0 no violation, 1 a violation, 2 bad input, 130 interrupted (SIGINT/SIGTERM)."""
    if strategy != "dfs" and (plain or bound is not None):
        raise UserError("--plain and --bound apply to --strategy dfs only")
    if html_path is not None:
        check_html_path(html_path)
    options = make_search_options(jobs, engine, address, checkpoint_path, resume_path)
    scenario = load_scenario(scenario_path)
    out = console()
    verdicts = []
    with handle_signals(), search_options(options):
        for design, arg in resolve_design_args(design_spec):
            with ExploreProgress(out, design.name, budget, enabled=not quiet and not as_json) as progress:
                verdicts.append(explore_design(
                    scenario, design, strategy=strategy, plain=plain, bound=bound, retry_bound=retry_bound, depth=depth,
                    seed=seed,
                    max_schedules=max_schedules, budget_seconds=budget, design_arg=arg, progress=progress.update,
                ))
            if verdicts[-1].interrupted:
                break
    if as_json:
        doc = {"scenario": scenario.path, "title": scenario.title, "strategy": strategy,
               "designs": [v.json() for v in verdicts], "timing": timing_json(verdicts)}
        click.echo(json.dumps(doc, indent=2))
    else:
        print_exploration(out, scenario.path, scenario.title, strategy + (" (plain)" if plain else ""), verdicts)
    if html_path is not None:
        write_html(html_path, explore_html(scenario, strategy + (" (plain)" if plain else ""), verdicts))
    if verdicts and verdicts[-1].interrupted:
        click.echo(interrupted_message(verdicts, options, sys.argv[1:]), err=True)
        sys.exit(130)
    sys.exit(0 if all(v.clean for v in verdicts) else 1)


@main.command("replay")
@click.argument("scenario_path", metavar="SCENARIO")
@click.option("--schedule", required=True, help="a schedule string printed by explore (fl1:...)")
@click.option("--design", "design_spec", default=None,
              help="the design (default: the one the schedule names); a name or a .py file")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option("--html", "html_path", metavar="FILE", default=None,
              help="also write a self-contained HTML report (the run and its swim lanes)")
@user_errors
def replay_cmd(scenario_path: str, schedule: str, design_spec: str | None, as_json: bool,
               html_path: str | None) -> None:
    """Re-run one schedule exactly, refusing a schedule recorded against another scenario or design.

    Exits 1 when the replay breaks an invariant or an expected outcome."""
    from faultlab.designs import get_design
    from faultlab.explore.schedule import decode

    if html_path is not None:
        check_html_path(html_path)
    scenario = load_scenario(scenario_path)
    _digest, recorded, _tids = decode(schedule)
    design = get_design(design_spec or recorded)
    result = replay_design(scenario, design, schedule)
    doc = run_json(scenario, design.name, result)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        out = console()
        print_run(out, doc)
        print_lanes(out, result, result.violations[0].id if result.violations else None)
    if html_path is not None:
        command = f"faultlab replay {scenario.path} --design {design_spec or recorded} --schedule {schedule}"
        write_html(html_path, replay_html(scenario, design.name, command, doc, result))
    sys.exit(1 if doc["violations"] else 0)


@main.command("compare")
@click.argument("scenario_paths", metavar="SCENARIO...", nargs=-1, required=True)
@click.option("--design", "design_spec", default="all", show_default=True,
              help="a design name, 'all' (the six historical designs), a comma-separated list, or a .py file")
@click.option("--bound", type=click.IntRange(min=0), default=None, help="preemption bound for the exploration")
@click.option("--max-schedules", type=click.IntRange(min=1), default=None,
              help="stop each exploration after this many schedules")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="stop each design's exploration after this many seconds (the verdict then says so)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.option("--html", "html_path", metavar="FILE", default=None,
              help="also write a self-contained HTML report (the table, a chart of cost per design, swim lanes)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="worker processes for each exploration (default: all cores); the result is the same")
@user_errors
def compare_cmd(scenario_paths: tuple[str, ...], design_spec: str, bound: int | None, max_schedules: int | None,
                budget: float | None, as_json: bool, html_path: str | None, quiet: bool, jobs: int | None) -> None:
    """Compare designs on SCENARIO...: a row per design and scenario with the faults by kind, bytes
    copied, pages zeroed and lock acquisitions (and longest holds) of a sequential run, next to the
    verdict of an exhaustive (dfs) exploration of the interleavings.

    Exit status: 0 (a comparison is a report, violations included), 2 bad input."""
    if html_path is not None:
        check_html_path(html_path)
    scenarios = [load_scenario(p) for p in scenario_paths]
    designs = resolve_design_args(design_spec)
    out = console()
    comparison = Comparison(scenarios, bound=bound, max_schedules=max_schedules, budget_seconds=budget)
    with search_options(make_search_options(jobs, "process", None, None, None)):
        for scenario in scenarios:
            for design, arg in designs:
                label = design.name if len(scenarios) == 1 else f"{scenario.path}: {design.name}"
                with ExploreProgress(out, label, budget, enabled=not quiet and not as_json) as progress:
                    comparison.rows.append(compare_one(scenario, design, design_arg=arg, bound=bound,
                                                       max_schedules=max_schedules, budget_seconds=budget,
                                                       progress=progress.update))
    if as_json:
        click.echo(json.dumps(comparison.json(), indent=2))
    else:
        print_comparison(out, comparison)
    if html_path is not None:
        write_html(html_path, compare_html(comparison))


main.add_command(oracle_cmd)

