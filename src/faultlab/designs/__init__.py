"""Fault-protocol designs, registered by name; a user's design is loaded from a Python file."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from faultlab.designs.base import Design
from faultlab.designs.known_bugs import KNOWN_BUGS
from faultlab.designs.v4_0 import V40
from faultlab.designs.v4_7 import V47
from faultlab.designs.v4_10 import V410
from faultlab.designs.v7 import V7
from faultlab.designs.v7_insert import V7Insert
from faultlab.designs.xip import Xip
from faultlab.errors import UserError

DESIGNS: dict[str, type[Design]] = {d.name: d for d in (Xip, V7, V7Insert, V40, V47, V410)}
"""The designs of the seed's history, in historical order."""

ALL_DESIGNS: dict[str, type[Design]] = {**DESIGNS, **{d.name: d for d in KNOWN_BUGS}}


def load_design_file(path: str) -> type[Design]:
    """Import ``path`` and return the one Design subclass it defines (see docs/designs.md)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no such design file (expected a design name or a .py file): {path}", where=path)
    spec = importlib.util.spec_from_file_location(f"faultlab_user_design_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise UserError("cannot import this file as Python", where=path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - a user's file: report, don't trace back
        line = getattr(e, "lineno", None) or _traceback_line(e, str(p))
        raise UserError(f"importing the design failed: {type(e).__name__}: {e}", where=f"{path}:{line}") from None
    found = [
        obj for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Design) and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise UserError(f"expected exactly one subclass of faultlab.designs.base.Design, found {len(found)}",
                        where=path)
    cls = found[0]
    if not cls.name:
        raise UserError(f"design class {cls.__name__} sets no 'name'", where=path)
    return cls


def _traceback_line(e: BaseException, path: str) -> int:
    tb = e.__traceback__
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def get_design(name: str) -> type[Design]:
    """A registered design by name, or a design file by path."""
    if name in ALL_DESIGNS:
        return ALL_DESIGNS[name]
    if name.endswith(".py") or "/" in name:
        return load_design_file(name)
    raise UserError(f"unknown design '{name}': expected one of {', '.join(ALL_DESIGNS)} or a path to a .py file")


def resolve_designs(spec: str) -> list[type[Design]]:
    """``all`` (the six historical designs), a comma-separated list, or one name/path."""
    if spec == "all":
        return list(DESIGNS.values())
    return [get_design(part.strip()) for part in spec.split(",") if part.strip()]


def resolve_design_args(spec: str) -> list[tuple[type[Design], str]]:
    """``--design`` as (class, how a replay command names it): a design file by its path, a
    registered design by its name."""
    if spec == "all":
        return [(d, d.name) for d in DESIGNS.values()]
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            design = get_design(part)
            out.append((design, part if part.endswith(".py") or "/" in part else design.name))
    return out


__all__ = ["ALL_DESIGNS", "DESIGNS", "KNOWN_BUGS", "Design", "get_design", "load_design_file", "resolve_design_args",
           "resolve_designs"]
