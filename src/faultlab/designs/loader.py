"""Loading a user's design from a Python file (docs/designs.md, "Writing your own").

A design file is the user's code, run in faultlab's process. Whatever it does wrong at import or
when its class is created (any exception, ``SystemExit`` and ``KeyboardInterrupt`` included, a
class that needs constructor arguments, a ``name`` that is not a string) is reported as bad input:
one line ``path:line: ...`` naming the line of the file that failed.
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


def load_design_file(path: str) -> type[Design]:
    """Import ``path``, find its design class (:func:`find_design_class`) and create it once to
    check it; raises UserError located at the failing line of the file."""
    try:
        is_file = os.path.isfile(path)
    except ValueError:  # a NUL byte in the path
        is_file = False
    if not is_file:
        raise UserError(f"no such design file (expected a design name or a .py file): {shown(path)}", where=path)
    p = os.path.realpath(path)  # tracebacks name the file however it was reached: compare real paths
    module = _import(path, p)
    try:
        cls = find_design_class(module)
    except UserError as e:
        raise UserError(e.message, where=f"{path}:1") from None
    except BaseException as e:  # noqa: BLE001 - a user's classes may misbehave even when inspected
        raise UserError(f"looking for the design class raised {_describe(e)}",
                        where=f"{path}:{_error_line(e, p)}") from None
    _check_design_class(cls, path, p)
    return cls


def find_design_class(module: ModuleType) -> type[Design]:
    """The discovery rule of the design API: the file defines exactly one subclass of
    :class:`faultlab.designs.base.Design` (it may import others)."""
    found = [
        obj for obj in list(vars(module).values())
        if isinstance(obj, type) and issubclass(obj, Design) and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = f" ({', '.join(c.__name__ for c in found)})" if found else ""
        raise UserError(f"expected exactly one subclass of faultlab.designs.base.Design, found {len(found)}{names}")
    return found[0]


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


def _check_design_class(cls: type[Design], path: str, p: str) -> None:
    """Create the class once, as every run will, and check its name."""
    where = f"{path}:{_class_line(cls, p)}"
    try:
        design = cls()
    except BaseException as e:  # noqa: BLE001 - the user's __init__, or arguments it requires
        line = _error_line(e, p, default=0)
        raise UserError(f"creating the design, {cls.__name__}(), raised {_describe(e)}: expected a class that "
                        "takes no arguments", where=f"{path}:{line}" if line else where) from None
    try:
        name = design.name
    except BaseException as e:  # noqa: BLE001 - a property of the user's
        raise UserError(f"reading the name of design class {cls.__name__} raised {_describe(e)}",
                        where=f"{path}:{_error_line(e, p, default=_class_line(cls, p))}") from None
    if name is None or name == "":
        raise UserError(f"design class {cls.__name__} sets no 'name': expected name = \"my-design\"", where=where)
    if not isinstance(name, str):
        raise UserError(f"design class {cls.__name__} sets name to {shown(name)}: expected a string", where=where)
    if not _NAME.fullmatch(name):
        raise UserError(f"design class {cls.__name__} sets name to {shown(name)}: expected no spaces or ':'",
                        where=where)


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


def _class_line(cls: type, p: str) -> int:
    """The line of ``class Name`` in the file (1 if it cannot be found)."""
    pattern = re.compile(rf"\s*class\s+{re.escape(cls.__name__)}\b")
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            for number, text in enumerate(f, 1):
                if pattern.match(text):
                    return number
    except OSError:
        pass
    return 1
