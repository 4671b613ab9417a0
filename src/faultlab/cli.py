"""The faultlab command line: run, explore, replay, designs (entry points only, no logic)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console

from faultlab.designs import DESIGNS, KNOWN_BUGS, resolve_designs
from faultlab.errors import UserError
from faultlab.execution import ModelExecution
from faultlab.report.summary import run_json
from faultlab.report.text import print_run
from faultlab.scenario import load_scenario
from faultlab.scenario.model import Scenario
from faultlab.sched import SequentialChooser

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

    return wrapper  # type: ignore[return-value]


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
        out.print(f"{d.name:<22} {d.summary}")
        out.print(f"{'':<22} source: {d.source}", style="dim")


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
@user_errors
def run_cmd(scenario_path: str, design_spec: str, order: str | None, as_json: bool) -> None:
    """Run SCENARIO once (threads one after another by default) and print every outcome and counter.

    Exits 1 when an op's outcome differs from the one the file expects, or an invariant breaks."""
    scenario = load_scenario(scenario_path)
    docs = []
    for design in resolve_designs(design_spec):
        execution = ModelExecution(scenario, design)
        if order is not None and order.startswith("fl"):
            from faultlab.explore.replay import replay_schedule_string

            result = replay_schedule_string(lambda: execution, scenario, design.name, order)
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
