"""User-facing errors: one line, naming where and what was expected; the CLI exits 2 on them."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (scenario file, design name, schedule string, option)."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class ScenarioError(UserError):
    """A scenario file (or builder call) that cannot be compiled; ``where`` is ``path:line``."""
