"""What ended a run early, as a violation: ``livelock``, ``design-error`` or ``model-error``.

* ``livelock``: the run went past its step limit (a loop through scheduling points that never
  ends: deterministic), or one step ran :data:`~faultlab.sched.watchdog.STEP_SECONDS` without
  reaching a scheduling point (a ``while True: pass``; only this one rests on the clock).
* ``design-error``: an exception escaped from the design's own code, the functions a variant
  replaced (and everything else in a design file), or a replacement returned a value of the wrong
  type (:class:`faultlab.kernel.image.WrongReturnType`).  The message names the design's file and
  line.
* ``model-error``: any other exception, which is faultlab's bug.

Each message names the thread and the step; the run's schedule (``faultlab replay``) reaches it.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterator

from faultlab.designs.base import Design
from faultlab.errors import describe_exception
from faultlab.kernel.image import WrongReturnType
from faultlab.sched import watchdog
from faultlab.sched.core import Scheduler, StepLimitExceeded
from faultlab.sched.watchdog import BudgetTimeout, StepTimeout

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class DesignCode:
    """The code a design brings of its own: its replacement functions, and every line of a
    design file outside faultlab."""

    def __init__(self, design: Design) -> None:
        self.codes: set[types.CodeType] = set()
        self.files: set[str] = set()
        for _old, new in design.replaced:
            code = getattr(new, "__code__", None)
            if isinstance(code, types.CodeType):
                self._add(code)
                if not os.path.abspath(code.co_filename).startswith(_PACKAGE):
                    self.files.add(code.co_filename)

    def _add(self, code: types.CodeType) -> None:
        self.codes.add(code)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self._add(const)

    def owns(self, code: types.CodeType) -> bool:
        return code in self.codes or code.co_filename in self.files


def _frames(e: BaseException) -> Iterator[tuple[types.CodeType, int]]:
    tb = e.__traceback__
    while tb is not None:
        yield tb.tb_frame.f_code, tb.tb_lineno
        tb = tb.tb_next


def _where(code: types.CodeType, line: int) -> str:
    path = code.co_filename
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    return f"{code.co_name}() at {rel if not rel.startswith('..') else path}:{line}"


def _model_frame(e: BaseException) -> tuple[types.CodeType, int] | None:
    """The innermost frame of model code (not the scheduler's, not the state layer's)."""
    found = None
    sched = os.path.join(_PACKAGE, "sched") + os.sep
    state = os.path.join(_PACKAGE, "kernel", "state") + os.sep
    for code, line in _frames(e):
        path = os.path.abspath(code.co_filename)
        if not path.startswith((sched, state)):
            found = (code, line)
    return found


def _step_of(sched: Scheduler) -> str:
    t = sched.last_thread
    if t is None and sched.setup_points:
        return "in the set-up"
    who = f"thread {t.name}, " if t is not None else ""
    return f"{who}step {max(sched.nsteps - 1, 0)}"


def classify(e: BaseException, design: Design, sched: Scheduler) -> tuple[str, str]:
    """The violation id and message for exception ``e`` that ended a run of ``design``."""
    step = _step_of(sched)
    if isinstance(e, StepLimitExceeded):
        at = _innermost(e, design)
        return "livelock", (f"the run went past its limit of {sched.step_limit} steps ({step}, in {at}): "
                            "it does not terminate")
    if isinstance(e, WrongReturnType):
        return "design-error", f"{e} (in {_where(e.code, e.code.co_firstlineno)}, {step})"
    code = DesignCode(design)
    mine = [(c, n) for c, n in _frames(e) if code.owns(c)]
    if isinstance(e, StepTimeout):
        at = _innermost(e, design)
        how = ("was still running when the time budget ran out" if isinstance(e, BudgetTimeout)
               else f"ran for {watchdog.STEP_SECONDS:g} s")
        return "livelock", f"a step {how} without reaching a scheduling point ({step}, in {at})"
    if mine:
        return "design-error", f"{describe_exception(e)}, raised in {_where(*mine[-1])} ({step})"
    model = _model_frame(e)
    where = f", raised in {_where(*model)}" if model is not None else ""
    return "model-error", f"{describe_exception(e)}{where} ({step})"


def _innermost(e: BaseException, design: Design) -> str:
    """Where a livelocked thread was: the design's innermost frame, else the model's."""
    code = DesignCode(design)
    mine = [(c, n) for c, n in _frames(e) if code.owns(c)]
    if mine:
        return _where(*mine[-1])
    model = _model_frame(e)
    return _where(*model) if model is not None else "?"
