"""Deliberately broken designs: each a small variant of a correct one reproducing a real Linux bug."""

from __future__ import annotations

from faultlab.designs.base import Design

KNOWN_BUGS: tuple[type[Design], ...] = ()
