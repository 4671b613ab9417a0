"""Terminal rendering of explorations and replays."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from faultlab.execution import ModelRunResult
from faultlab.exploring import Counterexample, DesignVerdict
from faultlab.report.swimlanes import elide, lane_rows, swimlane_table


def verdict_line(v: DesignVerdict) -> Text:
    r = v.result
    how = f"{r.schedules} schedules"
    if r.bound is not None:
        how += f", preemption bound {r.bound}"
    if r.seed is not None:
        how += f", seed {r.seed}"
    if v.clean:
        done = "complete: proof by exhaustion" if r.complete else f"not complete ({r.why_incomplete()})"
        return Text.assemble((f"{v.design:<24}", "bold"), ("clean", "green"), f"  after {how}; {done}")
    ids = ", ".join(v.violation_ids)
    return Text.assemble((f"{v.design:<24}", "bold"), (f"VIOLATION {ids}", "bold red"), f"  after {how}")


def print_counterexample(out: Console, design: str, c: Counterexample) -> None:
    out.print()
    out.print(Text(f"{design}: {c.id}", style="bold red"))
    out.print(c.message, soft_wrap=True)
    out.print(f"minimal counterexample: {c.preemptions} preemption(s), {c.steps} steps")
    print_lanes(out, c.run, c.id)
    out.print("replay it with:")
    out.print(c.replay_command, soft_wrap=True)


def print_lanes(out: Console, run: ModelRunResult, vid: str | None) -> None:
    step = next((v.step for v in run.violations if v.id == vid), None) if vid else None
    out.print(swimlane_table(run.thread_names, elide(lane_rows(run.steps, run.events, step))))


def print_exploration(out: Console, scenario_path: str, title: str, strategy: str,
                      verdicts: list[DesignVerdict]) -> None:
    out.print(Text(f"{title}  [{scenario_path}]  strategy {strategy}", style="bold"), soft_wrap=True)
    for v in verdicts:
        out.print(verdict_line(v), soft_wrap=True)
        coverage = v.result.coverage_summary()
        if coverage is not None:
            out.print(Text(f"{'':<24}{coverage}", style="dim"), soft_wrap=True)
    for v in verdicts:
        for c in v.counterexamples:
            print_counterexample(out, v.design, c)
        for report in v.lock_order:
            out.print()
            out.print(Text(f"{v.design}: lock-order (lockdep, over all {v.result.schedules} schedules)",
                           style="bold red"))
            out.print(report)
