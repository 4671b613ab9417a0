"""Scenarios: the data model, the TOML scenario-file parser and the Python builder API."""

from faultlab.scenario.builder import ScenarioBuilder
from faultlab.scenario.model import (
    FS_KINDS,
    OP_KINDS,
    PAGE_SIZE,
    FileSpec,
    Loc,
    Op,
    Outcome,
    Scenario,
    ThreadSpec,
    format_bytes,
)
from faultlab.scenario.parse import load_scenario, parse_bytes, parse_op, parse_scenario, parse_size

__all__ = [
    "FS_KINDS",
    "OP_KINDS",
    "PAGE_SIZE",
    "FileSpec",
    "Loc",
    "Op",
    "Outcome",
    "Scenario",
    "ScenarioBuilder",
    "ThreadSpec",
    "format_bytes",
    "load_scenario",
    "parse_bytes",
    "parse_op",
    "parse_scenario",
    "parse_size",
]
