"""A guard for the one kind of endless run the step limit cannot see: Python code that never reaches
a scheduling point (a design's ``while True: pass``).

The scheduler counts steps, so a run that loops *through* scheduling points ends deterministically
at :attr:`~faultlab.sched.core.Scheduler.step_limit`.  A loop between two points never gives the
scheduler control back; only another thread can stop it.  One daemon thread per process watches
the run in progress (:func:`guard`): when its step count has not moved for :data:`STEP_SECONDS`,
or for one poll once a search's time budget (:func:`deadline`) has run out, it raises
:class:`StepTimeout` in the thread running the model (``PyThreadState_SetAsyncExc``: the loop gets
it at its next backward jump).  It costs nothing per step: it reads the step count once per poll.

The verdict of such a run rests on the wall clock, unavoidably; every other run's does not (a run
that makes steps is never interrupted).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

STEP_SECONDS = 10.0
"""How long one step may run without reaching the next scheduling point (a model step takes
microseconds)."""

POLL_SECONDS = 0.5


class StepTimeout(BaseException):  # noqa: N818 - raised into a run, like KeyboardInterrupt
    """Raised into a run whose current step has not reached a scheduling point in time.

    A BaseException, so that a design's ``except Exception`` does not swallow it."""


class BudgetTimeout(StepTimeout):
    """Raised into a run whose current step was still running when the search's time budget ran
    out."""


class Watched(Protocol):
    """What the watchdog reads of a run: how far it got, and whether it is still running."""

    @property
    def progress(self) -> int: ...

    running: bool


class _Watch:
    def __init__(self, ident: int, run: Watched) -> None:
        self.ident = ident
        self.run = run
        self.last = run.progress
        self.since = time.monotonic()
        self.fired = False


_lock = threading.Lock()
_watches: dict[int, _Watch] = {}  # thread ident -> the run it executes
_deadline: list[float] = []  # monotonic deadlines of the enclosing searches (innermost last)
_thread: threading.Thread | None = None


def _raise_in(ident: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc) if exc else None)


def _poll() -> None:
    while True:
        time.sleep(POLL_SECONDS)
        now = time.monotonic()
        with _lock:
            late = bool(_deadline) and now >= _deadline[-1]
            for w in _watches.values():
                if not w.run.running:  # over (its guard is being left): never raise into what follows
                    continue
                n = w.run.progress
                if n != w.last:
                    w.last, w.since = n, now
                    continue
                if now - w.since >= STEP_SECONDS:
                    exc: type[StepTimeout] = StepTimeout
                elif late and now - w.since >= POLL_SECONDS:
                    exc = BudgetTimeout
                else:
                    continue
                w.fired = True
                w.since = now  # again after as long, should the run swallow it
                _raise_in(w.ident, exc)


def _start() -> None:
    global _thread
    if _thread is None or not _thread.is_alive():
        _thread = threading.Thread(target=_poll, name="faultlab-step-watchdog", daemon=True)
        _thread.start()


@contextmanager
def guard(run: Watched) -> Iterator[None]:
    """Watch ``run``, executed by the calling thread inside the block.  The watchdog raises only
    while ``run.running``; leaving the block cancels a StepTimeout not yet delivered.  (One
    delivered while the block is left, as the step ended just when the watchdog fired, reaches the
    caller: that step did run for STEP_SECONDS.)"""
    ident = threading.get_ident()
    with _lock:
        _start()
        _watches[ident] = _Watch(ident, run)
    try:
        yield
    finally:
        with _lock:
            w = _watches.pop(ident, None)
            if w is not None and w.fired:
                _raise_in(ident, None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, a step still running ``seconds`` from now is stopped after one poll
    (a search's time budget); None: no deadline."""
    if seconds is None:
        yield
        return
    with _lock:
        _deadline.append(time.monotonic() + seconds)
    try:
        yield
    finally:
        with _lock:
            _deadline.pop()
