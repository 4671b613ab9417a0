"""User-facing errors: one line, naming where and what was expected; the CLI exits 2 on them."""

from __future__ import annotations

# What str.splitlines() splits on: none of these may appear in a one-line message.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in _LINE_BREAKS})


def one_line(text: str) -> str:
    """``text`` with every line break escaped as Python writes it (``\\n``), so it stays one line."""
    return text.translate(_ESCAPE_BREAKS)


def shown(value: object, limit: int = 60) -> str:
    """A user's value for an error message: its repr (quoted, escaped, so a newline in it cannot
    break the message), cut after ``limit`` characters of a long string."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + "..."
    text = repr(value)
    return text if len(text) <= limit + 2 else text[:limit] + "..."


def describe_exception(e: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an exception raised by a user's code, which may not even print."""
    try:
        text = str(e)
    except BaseException:  # noqa: BLE001 - its __str__ is the user's code too
        text = "(the exception cannot be printed)"
    if len(text) > limit:
        text = text[:limit] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class UserError(Exception):
    """Bad input from the user (scenario file, design name, schedule string, option).

    The message and the location are kept on one line whatever they contain."""

    def __init__(self, message: str, where: str = "") -> None:
        self.where = one_line(where)
        self.message = one_line(message)
        super().__init__(f"{self.where}: {self.message}" if self.where else self.message)


class ScenarioError(UserError):
    """A scenario file (or builder call) that cannot be compiled; ``where`` is ``path:line``."""


class AuditError(Exception):
    """A model thread touched shared state its current step did not announce (audit mode): a
    defect of the model or of a design, reported as ``faultlab: audit: ...`` with exit status 1."""
