"""``faultlab compare``: every design side by side on one or more scenarios.

A row per (scenario, design) holds what a sequential run of the scenario costs (faults by kind,
bytes copied, pages zeroed, lock acquisitions and the longest hold of each lock class) next to the
verdict of an exhaustive exploration of its interleavings (``strategy="dfs"``).  The seed's claim
reads straight off it: on ``scenarios/seed/cow-vs-truncate.toml`` xip and v7-insert take two
faults for the first private write, the other designs one, and only some of them are race free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from faultlab.designs.base import Design
from faultlab.execution import ModelExecution, ModelRunResult
from faultlab.explore.results import Stats
from faultlab.exploring import DesignVerdict, explore_design
from faultlab.report.summary import run_json
from faultlab.scenario.model import Scenario
from faultlab.sched import SequentialChooser

FAULT_COLUMNS = ("total", "major", "read", "cow", "shared", "wp-copy", "wp-reuse")
"""The fault counts a comparison shows, in this order (keys of run_json's ``counters.faults``)."""

LOCK_ORDER = (
    "&inode->i_rwsem",
    "&mm->mmap_sem",
    "&ei->i_mmap_sem",
    "page lock",
    "dax entry lock",
    "&mapping->i_mmap_mutex",
    "&mapping->i_mmap_rwsem",
    "xip_sparse_mutex",
    "&mapping->tree_lock",
    "ptlock",
)
"""Lock classes outermost first (the nesting the model's kernel takes them in); reports list locks
in this order, any other class after them alphabetically."""


def lock_sort_key(cls: str) -> tuple[int, str]:
    return (LOCK_ORDER.index(cls), "") if cls in LOCK_ORDER else (len(LOCK_ORDER), cls)


def short_lock(cls: str) -> str:
    """``&mapping->i_mmap_rwsem`` -> ``i_mmap_rwsem``; ext4's ``&ei->i_mmap_sem`` keeps its ``ei->``
    so it cannot be mistaken for the mapping's ``i_mmap`` lock."""
    name = cls.removeprefix("&")
    for prefix in ("mapping->", "inode->", "mm->"):
        name = name.removeprefix(prefix)
    return name


@dataclass
class CompareRow:
    """One design on one scenario: the sequential run's costs and the exploration's verdict."""

    scenario: Scenario
    design: str
    doc: dict[str, Any]  # run_json of the sequential run
    lock_hold_max: dict[str, int]
    verdict: DesignVerdict

    @property
    def faults(self) -> dict[str, int]:
        f = self.doc["counters"]["faults"]
        return {k: int(f[k]) for k in FAULT_COLUMNS}

    @property
    def bytes_copied(self) -> int:
        return int(self.doc["counters"]["bytes_copied"])

    @property
    def pages_zeroed(self) -> int:
        return int(self.doc["counters"]["pages_zeroed"])

    @property
    def locks(self) -> list[tuple[str, int, int]]:
        """(class, acquisitions, longest hold in steps), outermost class first."""
        counts: dict[str, int] = self.doc["counters"]["locks"]
        classes = sorted(set(counts) | set(self.lock_hold_max), key=lock_sort_key)
        return [(cls, counts.get(cls, 0), self.lock_hold_max.get(cls, 0)) for cls in classes]

    @property
    def run_violations(self) -> list[str]:
        return [v["id"] for v in self.doc["violations"]]

    def json(self) -> dict[str, Any]:
        locks = self.locks
        return {
            "scenario": self.scenario.path,
            "design": self.design,
            "faults": self.faults,
            "bytes_copied": self.bytes_copied,
            "pages_zeroed": self.pages_zeroed,
            "locks": {cls: n for cls, n, _ in locks},
            "lock_hold_max": {cls: hold for cls, _, hold in locks},
            "run_violations": self.run_violations,
            "verdict": "clean" if self.verdict.clean else self.verdict.counterexamples[0].id,
            "explore": self.verdict.json(),
        }


@dataclass
class Comparison:
    scenarios: list[Scenario]
    rows: list[CompareRow] = field(default_factory=list)
    bound: int | None = None
    max_schedules: int | None = None
    budget_seconds: float | None = None

    def rows_of(self, scenario: Scenario) -> list[CompareRow]:
        return [r for r in self.rows if r.scenario is scenario]

    def json(self) -> dict[str, Any]:
        return {
            "strategy": "dfs",
            "bound": self.bound,
            "max_schedules": self.max_schedules,
            "budget_seconds": self.budget_seconds,
            "scenarios": [{"path": s.path, "title": s.title} for s in self.scenarios],
            "rows": [r.json() for r in self.rows],
        }


def sequential_run(scenario: Scenario, design: Design) -> ModelRunResult:
    """The scenario's threads one after another, in file order: what the cost columns count."""
    return ModelExecution(scenario, design).run(SequentialChooser())


def compare_one(
    scenario: Scenario,
    design: Design,
    *,
    design_arg: str | None = None,
    bound: int | None = None,
    max_schedules: int | None = None,
    budget_seconds: float | None = None,
    progress: Callable[[Stats], None] | None = None,
) -> CompareRow:
    """Run ``scenario`` once under ``design`` and explore it exhaustively (dfs)."""
    result = sequential_run(scenario, design)
    verdict = explore_design(scenario, design, strategy="dfs", bound=bound, max_schedules=max_schedules,
                             budget_seconds=budget_seconds, design_arg=design_arg, progress=progress)
    return CompareRow(scenario, design.name, run_json(scenario, design.name, result), dict(result.lock_hold_max),
                      verdict)


def compare(
    scenarios: Sequence[Scenario],
    designs: Sequence[tuple[Design, str]],
    *,
    bound: int | None = None,
    max_schedules: int | None = None,
    budget_seconds: float | None = None,
) -> Comparison:
    """Every design of ``designs`` (class, the name or path the user gave) on every scenario."""
    c = Comparison(list(scenarios), bound=bound, max_schedules=max_schedules, budget_seconds=budget_seconds)
    for scenario in scenarios:
        for design, arg in designs:
            c.rows.append(compare_one(scenario, design, design_arg=arg, bound=bound, max_schedules=max_schedules,
                                      budget_seconds=budget_seconds))
    return c


def verdict_summary(v: DesignVerdict) -> tuple[str, str]:
    """(headline, detail): ``("clean", "12 schedules, complete")`` or
    ``("stale-pte-after-truncate", "found at schedule 16")``; the detail may hold a line break."""
    r = v.result
    how = f"{r.schedules} schedule{'s' if r.schedules != 1 else ''}"
    if r.bound is not None:
        how += f", bound {r.bound}"
    if v.clean:
        return "clean", how + (", complete" if r.complete else f", not complete\n({r.stop_reason})")
    first = v.counterexamples[0]
    return ", ".join(c.id for c in v.counterexamples), f"found at schedule {first.found_at}"


def locks_cell(row: CompareRow, width: int) -> str:
    """One line per lock class: its short name, acquisitions, longest hold (steps)."""
    return "\n".join(f"{short_lock(cls):<{width}} {n:>5} {hold:>4}" for cls, n, hold in row.locks)


def scenario_name(scenario: Scenario) -> str:
    return scenario.path.rsplit("/", 1)[-1].removesuffix(".toml")


def comparison_table(c: Comparison) -> Table:
    """One row per (scenario, design); with several scenarios each group is headed by the scenario's
    file name."""
    many = len(c.scenarios) > 1
    table = Table(show_edge=False, pad_edge=False, box=box.SIMPLE_HEAD, show_lines=True, collapse_padding=True)
    table.add_column("design", no_wrap=True)
    for kind in FAULT_COLUMNS:
        table.add_column("faults" if kind == "total" else kind, justify="right")
    table.add_column("copied", justify="right")
    table.add_column("zeroed", justify="right")
    width = max([len(short_lock(cls)) for r in c.rows for cls, _, _ in r.locks] + [len("locks")])
    table.add_column(f"{'locks':<{width}} {'taken':>5} {'held':>4}", no_wrap=True)
    table.add_column("verdict (dfs)", no_wrap=True)
    for scenario in c.scenarios:
        if many:
            table.add_row(Text(scenario_name(scenario), style="bold underline"))
        for row in c.rows_of(scenario):
            head, detail = verdict_summary(row.verdict)
            verdict = Text("clean" if row.verdict.clean else "VIOLATION",
                           style="green" if row.verdict.clean else "bold red")
            if not row.verdict.clean:
                verdict.append(f"\n{head}", style="red")
            verdict.append(f"\n{detail}")
            table.add_row(
                Text(("  " if many else "") + row.design, style="bold"),
                *(str(n) for n in row.faults.values()),
                str(row.bytes_copied),
                str(row.pages_zeroed),
                locks_cell(row, width),
                verdict,
            )
    return table


def print_comparison(out: Console, c: Comparison) -> None:
    for scenario in c.scenarios:
        out.print(Text(f"{scenario.title}  [{scenario.path}]", style="bold"), soft_wrap=True)
    how = "exhaustive dfs" if c.bound is None else f"dfs with preemption bound {c.bound}"
    limits = []
    if c.max_schedules is not None:
        limits.append(f"at most {c.max_schedules} schedules")
    if c.budget_seconds is not None:
        limits.append(f"{c.budget_seconds:g} s per design")
    out.print("costs: one sequential run, threads in file order; locks: acquisitions and longest hold, in scheduling "
              "steps", soft_wrap=True)
    out.print(f"verdict: {how}" + (f" ({', '.join(limits)})" if limits else ""), soft_wrap=True)
    table = comparison_table(c)
    # Never squeeze a column away: on a narrow terminal the table keeps its natural width (and the
    # terminal wraps its lines) rather than dropping numbers.
    natural = Measurement.get(out, out.options.update_width(1000), table).maximum
    if natural > out.width:
        wide = Console(file=out.file, width=natural, color_system=out.color_system,  # type: ignore[arg-type]
                       force_terminal=out.is_terminal, highlight=False)
        wide.on_broken_pipe = out.on_broken_pipe  # type: ignore[method-assign]
        out = wide
    out.print(table)
