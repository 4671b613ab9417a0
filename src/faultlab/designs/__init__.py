"""Fault-protocol designs, registered by name; a user's design is loaded from a Python file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from faultlab.designs import v4_0, v4_7, v4_10, v7, v7_insert, xip
from faultlab.designs.base import Design
from faultlab.designs.known_bugs import KNOWN_BUGS
from faultlab.errors import UserError

DESIGNS: dict[str, Design] = {d.name: d for d in (xip.DESIGN, v7.DESIGN, v7_insert.DESIGN, v4_0.DESIGN, v4_7.DESIGN,
                                                  v4_10.DESIGN)}
"""The designs of the seed's history, in historical order."""

ALL_DESIGNS: dict[str, Design] = {**DESIGNS, **{d.name: d for d in KNOWN_BUGS}}


def load_design_file(path: str) -> Design:
    """Import ``path`` and return the design it defines as ``DESIGN`` (see docs/designs.md)."""
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
        line = getattr(e, "lineno", None) or _traceback_line(e, str(p.resolve()))
        raise UserError(f"importing the design failed: {type(e).__name__}: {e}", where=f"{path}:{line}") from None
    design = getattr(module, "DESIGN", None)
    if not isinstance(design, Design):
        raise UserError("expected a module-level DESIGN = <a faultlab Design> (see docs/designs.md)", where=path)
    return design


def _traceback_line(e: BaseException, path: str) -> int:
    tb = e.__traceback__
    line = 0
    while tb is not None:
        if str(Path(tb.tb_frame.f_code.co_filename).resolve()) == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def get_design(name: str) -> Design:
    """A registered design by name, or a design file by path."""
    if name in ALL_DESIGNS:
        return ALL_DESIGNS[name]
    if name.endswith(".py") or "/" in name:
        return load_design_file(name)
    raise UserError(f"unknown design '{name}': expected one of {', '.join(ALL_DESIGNS)} or a path to a .py file")


def resolve_designs(spec: str) -> list[Design]:
    """``all`` (the six historical designs), a comma-separated list, or one name/path."""
    return [d for d, _arg in resolve_design_args(spec)]


def resolve_design_args(spec: str) -> list[tuple[Design, str]]:
    """``--design`` as (design, how a replay command names it): a design file by its path, a
    registered design by its name."""
    if spec == "all":
        return [(d, d.name) for d in DESIGNS.values()]
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            design = get_design(part)
            out.append((design, part if part.endswith(".py") or "/" in part else design.name))
    if not out:
        raise UserError(f"--design {spec!r} names no design: expected a design name, 'all', a comma-separated "
                        "list, or a path to a .py file")
    return out


__all__ = ["ALL_DESIGNS", "DESIGNS", "KNOWN_BUGS", "Design", "get_design", "load_design_file", "resolve_design_args",
           "resolve_designs"]
