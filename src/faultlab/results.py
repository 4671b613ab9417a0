"""What one sequential run observed, in the same shape for the model and the real kernel."""

from __future__ import annotations

from dataclasses import dataclass, field

from faultlab.scenario.model import Outcome


@dataclass(slots=True)
class OpRecord:
    thread: str
    op: str  # the op's text as written in the scenario, without the expectation
    outcome: Outcome
    minflt: int = 0  # minor faults taken by this op (getrusage ru_minflt delta)
    majflt: int = 0  # major faults taken by this op (ru_majflt delta)
    line: int = 0


@dataclass(slots=True)
class FileState:
    size: int
    contents: bytes | None  # None: too large to record (the model's snapshot limit)


@dataclass(slots=True)
class RunRecord:
    ops: list[OpRecord] = field(default_factory=list)
    files: dict[str, FileState] = field(default_factory=dict)
