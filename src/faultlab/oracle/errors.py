"""Errors of the real-kernel oracle. All are one-line user-facing messages (exit status 2 in the CLI)."""

from __future__ import annotations

from faultlab.errors import UserError


class OracleError(UserError):
    """The real-kernel probe cannot run, or cannot run this scenario here."""


class CompilerNotFoundError(OracleError):
    """No C compiler to build the probe; callers turn this into a skip or an exit-2 message."""


class ProbeBuildError(OracleError):
    """The compiler was found but building the probe failed."""


class UnsupportedScenarioError(OracleError):
    """The scenario asks for something the probe (or this machine) cannot reproduce."""


class ProbeFailedError(OracleError):
    """The probe ran but stopped with an ``error`` line or an unexpected exit status."""


class DaxNotActiveError(ProbeFailedError):
    """``require-dax`` found a file without STATX_ATTR_DAX (the filesystem is not mounted -o dax)."""
