"""Greenlet threads, scheduling points and the controlled scheduler."""

from faultlab.sched.core import (
    EVERYTHING,
    Access,
    Chooser,
    Deadlock,
    ModelThread,
    Scheduler,
    SchedulerError,
    SequentialChooser,
    Step,
    WaitQueue,
)

__all__ = [
    "Access",
    "Chooser",
    "EVERYTHING",
    "Deadlock",
    "ModelThread",
    "Scheduler",
    "SchedulerError",
    "SequentialChooser",
    "Step",
    "WaitQueue",
]
