"""Turn a run's result into plain data (the JSON document and the source of the text report)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from faultlab.execution import ModelRunResult
from faultlab.scenario.model import Outcome, Scenario, format_bytes

FAULT_KINDS = ("read", "cow", "shared", "wp-copy", "wp-reuse", "retries")


def outcome_json(o: Outcome) -> dict[str, str]:
    if o.kind == "data":
        return {"kind": "data", "value": format_bytes(o.data)}
    return {"kind": o.kind, "value": str(o)}


def counters_json(counters: Counter[str], lock_counts: Counter[str]) -> dict[str, Any]:
    faults: dict[str, int] = {"total": counters["faults"], "major": counters["faults.major"]}
    for kind in FAULT_KINDS:
        faults[kind] = counters[f"fault.{kind}"]
    if counters["fault.pmd"] or counters["thp_fault_fallback"]:  # only runs that tried PMD faults
        faults["pmd"] = counters["fault.pmd"]  # a huge PMD mapped (the rest of "total" were PTE faults)
        faults["pmd-fallback"] = counters["thp_fault_fallback"]  # THP_FAULT_FALLBACK
    return {
        "faults": faults,
        "fault_around_pages": counters["fault_around_pages"],
        "bytes_copied": counters["bytes_copied"],
        "pages_zeroed": counters["pages_zeroed"],
        "blocks_allocated": counters["blocks_allocated"],
        "blocks_freed": counters["blocks_freed"],
        "locks": {cls: lock_counts[cls] for cls in sorted(lock_counts)},
    }


CRASHES = ("livelock", "design-error", "model-error")
"""Violations that end a run early: a run that shows one says how to replay it."""


def add_replay(doc: dict[str, Any], scenario: Scenario, design_arg: str, result: ModelRunResult) -> None:
    """Give a run's document the command that replays it, when the run ended early (CRASHES)."""
    if not any(v.id in CRASHES for v in result.violations):
        return
    from faultlab.explore.schedule import encode

    schedule = encode([s.tid for s in result.steps], scenario.digest(), doc["design"])
    doc["replay"] = f"faultlab replay {scenario.path} --design {design_arg} --schedule {schedule}"


def run_json(scenario: Scenario, design: str, result: ModelRunResult) -> dict[str, Any]:
    expected = {(t.name, i): op.expect for t in scenario.all_threads() for i, op in enumerate(t.ops)}
    seen: dict[str, int] = {}
    ops = []
    for r in result.record.ops:
        i = seen.get(r.thread, 0)
        seen[r.thread] = i + 1
        entry: dict[str, Any] = {
            "thread": r.thread,
            "op": r.op,
            "line": r.line,
            "outcome": outcome_json(r.outcome),
            "minflt": r.minflt,
            "majflt": r.majflt,
        }
        exp = expected.get((r.thread, i))
        if exp is not None:
            entry["expected"] = outcome_json(exp)
            entry["matches"] = exp == r.outcome
        ops.append(entry)
    return {
        "scenario": scenario.path,
        "title": scenario.title,
        "design": design,
        "ops": ops,
        "counters": counters_json(result.counters, result.lock_counts),
        "files": {
            name: {"size": f.size,
                   "contents": "(not recorded: too large)" if f.contents is None else format_bytes(f.contents)}
            for name, f in sorted(result.record.files.items())
        },
        "violations": [{"id": v.id, "message": v.message, "step": v.step} for v in result.violations],
        "steps": len(result.steps),
    }
