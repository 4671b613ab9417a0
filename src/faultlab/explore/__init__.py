"""The interleaving explorer: strategies (DPOR, plain DFS, PCT, random), replay, minimisation.

The front door is :func:`explore`; a program is anything following :mod:`faultlab.explore.program`.
"""

from faultlab.explore.explorer import STRATEGIES, explore
from faultlab.explore.minimise import Minimised, minimise
from faultlab.explore.program import (
    Execution,
    NondeterminismError,
    Program,
    RunResult,
    RunResultLike,
    ScheduleError,
    Violation,
    ViolationLike,
    deadlock_violation,
)
from faultlab.explore.replay import ReplayChooser, replay, replay_schedule, replay_traced
from faultlab.explore.results import ExploreResult, FoundViolation, Stats
from faultlab.explore.schedule import check_matches, decode, encode
from faultlab.explore.split import split

__all__ = [
    "STRATEGIES",
    "Execution",
    "ExploreResult",
    "FoundViolation",
    "Minimised",
    "NondeterminismError",
    "Program",
    "ReplayChooser",
    "RunResult",
    "RunResultLike",
    "ScheduleError",
    "Stats",
    "Violation",
    "ViolationLike",
    "check_matches",
    "deadlock_violation",
    "decode",
    "encode",
    "explore",
    "minimise",
    "replay",
    "replay_schedule",
    "replay_traced",
    "split",
]
