"""Fault-protocol designs, registered by name; a user's design is loaded from a Python file."""

from __future__ import annotations

from faultlab.designs.base import Design
from faultlab.designs.known_bugs import KNOWN_BUGS
from faultlab.designs.loader import load_design_file
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
