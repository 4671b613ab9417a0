"""Loading a user's design from a Python file (docs/designs.md, "Writing your own").

A design file is the user's code, run in faultlab's process. Whatever it does wrong at import or
when its kernel is linked (any exception, ``SystemExit`` and ``KeyboardInterrupt`` included, no
``DESIGN``, a ``DESIGN`` that is not a design, a name that is not a string, a replaced function
that is not the model's) is reported as bad input: one line ``path:line: ...`` naming the line of
the file that failed.
"""

from __future__ import annotations

import os
import re
from types import ModuleType, TracebackType

from faultlab.designs.base import Design
from faultlab.errors import UserError, shown
from faultlab.errors import describe_exception as _describe

_NAME = re.compile(r"[^\s:]+")
"""A design name appears in schedule strings (``fl1:<digest>:<design>:<choices>``)."""


def load_design_file(path: str) -> Design:
    """Import ``path``, take its design (:func:`find_design`), check its name and link its kernel
    once, as every run will; raises UserError located at the failing line of the file."""
    try:
        is_file = os.path.isfile(path)
    except ValueError:  # a NUL byte in the path
        is_file = False
    if not is_file:
        raise UserError(f"no such design file (expected a design name or a .py file): {shown(path)}", where=path)
    p = os.path.realpath(path)  # tracebacks name the file however it was reached: compare real paths
    module = _import(path, p)
    where = f"{path}:{_assignment_line(p)}"
    design = find_design(module, where)
    _check_design(design, where)
    return design


def find_design(module: ModuleType, where: str = "") -> Design:
    """The discovery rule of the design API: the file binds ``DESIGN`` to a
    :class:`faultlab.designs.base.Design` (usually ``SOME_DESIGN.variant(...)``)."""
    if "DESIGN" not in vars(module):
        raise UserError("no DESIGN in this file: expected a module-level DESIGN = <design>.variant(...) "
                        "(docs/designs.md)", where=where)
    design = vars(module)["DESIGN"]
    kind = type(design)  # not isinstance(), which would run a user's metaclass code
    if issubclass(kind, Design):
        return design
    what = f"the class {type.__getattribute__(design, '__name__')}" if issubclass(kind, type) else f"a {kind.__name__}"
    raise UserError(f"DESIGN is {what}: expected a faultlab Design, e.g. "
                    "faultlab.designs.v4_0.DESIGN.variant(...)", where=where)


def _check_design(design: Design, where: str) -> None:
    """Its name appears in schedule strings; its kernel links (every replaced function is one of
    the model's, every replacement a function)."""
    name = design.name
    if not isinstance(name, str):
        raise UserError(f"DESIGN's name is {shown(name)}: expected a string", where=where)
    if not name:
        raise UserError("DESIGN has an empty name: expected e.g. \"my-design\"", where=where)
    if not _NAME.fullmatch(name):
        raise UserError(f"DESIGN's name is {shown(name)}: expected no spaces or ':'", where=where)
    from faultlab.designs import ALL_DESIGNS  # (the registry imports this module)

    shipped = ALL_DESIGNS.get(name)
    if shipped is not None and shipped is not design:  # its schedules would replay the shipped one
        raise UserError(f"DESIGN's name {shown(name)} is a shipped design's: expected a name of its own "
                        "(schedules and reports name designs by name)", where=where)
    try:
        design.image()
    except UserError as e:
        raise UserError(e.message, where=where) from None
    except BaseException as e:  # noqa: BLE001 - a user's replacement may misbehave while it is linked
        raise UserError(f"linking the design raised {_describe(e)}", where=where) from None


def _import(path: str, p: str) -> ModuleType:
    import importlib.util  # only when a design file is loaded (start-up of every other command)

    stem = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f"faultlab_user_design_{stem}", os.path.abspath(path))
    if spec is None or spec.loader is None:
        raise UserError("cannot import this file as Python: expected a .py file", where=f"{path}:1")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # noqa: BLE001 - a user's file: report whatever it raises, don't trace back
        raise UserError(f"importing the design raised {_describe(e)}", where=f"{path}:{_error_line(e, p)}") from None
    return module


def _same_file(filename: object, p: str) -> bool:
    if not isinstance(filename, str):
        return False
    try:
        return os.path.realpath(filename) == p
    except (OSError, ValueError):
        return False


def _error_line(e: BaseException, p: str, default: int = 1) -> int:
    """The line of the design file where ``e`` was raised: a syntax error's own line, else the last
    frame of the traceback that is in the file (an import, a call into other code, a raise)."""
    if isinstance(e, SyntaxError) and isinstance(e.lineno, int) and _same_file(e.filename, p):
        return e.lineno
    line = 0
    tb: TracebackType | None = e.__traceback__
    while tb is not None:
        if _same_file(tb.tb_frame.f_code.co_filename, p):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line or default


def _assignment_line(p: str) -> int:
    """The line of ``DESIGN = ...`` in the file (1 if there is none)."""
    pattern = re.compile(r"DESIGN\s*(:[^=]*)?=[^=]")
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            for number, text in enumerate(f, 1):
                if pattern.match(text):
                    return number
    except OSError:
        pass
    return 1
