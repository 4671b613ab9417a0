"""Greenlet threads, scheduling points and the controlled scheduler."""

from faultlab.sched.core import (
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
    "Deadlock",
    "ModelThread",
    "Scheduler",
    "SchedulerError",
    "SequentialChooser",
    "Step",
    "WaitQueue",
]
