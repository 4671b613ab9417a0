"""Fault-protocol designs, registered by name; a user's design is loaded from a Python file."""

from __future__ import annotations

from faultlab.designs import v4_0, v4_7, v4_10, v6_1, v6_18, v7, v7_insert, xip
from faultlab.designs.base import Design
from faultlab.designs.known_bugs import KNOWN_BUGS
from faultlab.designs.loader import load_design_file
from faultlab.errors import UserError

DESIGNS: dict[str, Design] = {d.name: d for d in (xip.DESIGN, v7.DESIGN, v7_insert.DESIGN, v4_0.DESIGN, v4_7.DESIGN,
                                                  v4_10.DESIGN, v6_1.DESIGN, v6_18.DESIGN)}
"""The designs of the seed's history, in historical order, and today's kernels."""

ALL_DESIGNS: dict[str, Design] = {**DESIGNS, **{d.name: d for d in KNOWN_BUGS}}


def get_design(name: str) -> Design:
    """A registered design by name, or a design file by path."""
    if name in ALL_DESIGNS:
        return ALL_DESIGNS[name]
    if name.endswith(".py") or "/" in name:
        return load_design_file(name)
    raise UserError(f"unknown design '{name}': expected one of {', '.join(ALL_DESIGNS)} or a path to a .py file")


def resolve_designs(spec: str) -> list[Design]:
    """``all`` (every registered design but the known bugs), a comma-separated list, or one name/path."""
    return [d for d, _arg in resolve_design_args(spec)]


def resolve_design_args(spec: str) -> list[tuple[Design, str]]:
    """``--design`` as (design, how a replay command names it): a design file by its path, a
    registered design by its name."""
    if spec == "all":
        return [(d, d.name) for d in DESIGNS.values()]
    out: list[tuple[Design, str]] = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            design = get_design(part)
            same = next((arg for d, arg in out if d.name == design.name), None)
            if same is not None:  # one name, two rows of the report and one of the JSON timing
                raise UserError(f"--design names the design {design.name!r} twice ({same} and {part}): expected "
                                "designs of different names")
            out.append((design, part if part.endswith(".py") or "/" in part else design.name))
    if not out:
        raise UserError(f"--design {spec!r} names no design: expected a design name, 'all', a comma-separated "
                        "list, or a path to a .py file")
    return out


__all__ = ["ALL_DESIGNS", "DESIGNS", "KNOWN_BUGS", "Design", "get_design", "load_design_file", "resolve_design_args",
           "resolve_designs"]
