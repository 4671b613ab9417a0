"""Schedules: the thread chosen at every step, and their versioned, compact text form.

The text form is ``fl1:<scenario-digest>:<design>:<choices>`` where ``<choices>`` is the run-length
encoded list of thread ids, ``.``-separated: ``0x5.1x3.0x12`` is five steps of thread 0, three of
thread 1, twelve of thread 0.  A run of one may be written without ``x1`` (``0.1.0``).  An empty
schedule (replay the default order) is written as ``-``.

A recorded schedule only means something against the scenario and design it was recorded with, so
both are part of the string, and :func:`check_matches` refuses to replay it against anything else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from faultlab.errors import UserError, shown
from faultlab.limits import MAX_DIGITS, MAX_SCHEDULE_STEPS

VERSION = "fl1"
MAX_STEPS = MAX_SCHEDULE_STEPS  # refuse to expand a (corrupt or hostile) string beyond this many steps

_SHAPE = f"{VERSION}:<digest>:<design>:<choices>"
_TOKEN = re.compile(r"([0-9]+)(?:x([0-9]+))?\Z")
_FIELD = re.compile(r"[^\s:]+\Z")


def encode_choices(tids: Sequence[int]) -> str:
    """Run-length encode a list of thread ids: ``[0, 0, 1]`` -> ``0x2.1``; ``[]`` -> ``-``."""
    if not tids:
        return "-"
    out: list[str] = []
    cur = tids[0]
    n = 0
    for t in tids:
        if t == cur:
            n += 1
            continue
        out.append(f"{cur}x{n}" if n > 1 else str(cur))
        cur, n = t, 1
    out.append(f"{cur}x{n}" if n > 1 else str(cur))
    return ".".join(out)


def decode_choices(text: str) -> list[int]:
    """Inverse of :func:`encode_choices`; raises UserError on a malformed list."""
    if text == "-":
        return []
    if not text:
        raise UserError("schedule has an empty choice list (write '-' for no choices)")
    tids: list[int] = []
    for pos, token in enumerate(text.split("."), 1):
        m = _TOKEN.match(token)
        if m is None:
            raise UserError(f"schedule choice {pos} is {shown(token)}: expected THREAD or THREADxCOUNT (e.g. 0x5)")
        if max(len(m.group(1)), len(m.group(2) or "")) > MAX_DIGITS:
            raise UserError(f"schedule choice {pos} is {shown(token)}: expected numbers of at most {MAX_DIGITS} "
                            "digits")
        tid = int(m.group(1))
        count = int(m.group(2)) if m.group(2) is not None else 1
        if count == 0:
            raise UserError(f"schedule choice {pos} is {shown(token)}: a count must be at least 1")
        if len(tids) + count > MAX_STEPS:
            raise UserError(f"schedule is longer than {MAX_STEPS} steps: refusing to expand it")
        tids.extend([tid] * count)
    return tids


def encode(tids: Sequence[int], scenario_digest: str, design: str) -> str:
    """The text form of a schedule recorded against ``scenario_digest`` and ``design``."""
    for what, value in (("scenario digest", scenario_digest), ("design name", design)):
        if not _FIELD.match(value):
            raise UserError(f"cannot encode a schedule: {what} {value!r} is empty or contains ':' or spaces")
    return f"{VERSION}:{scenario_digest}:{design}:{encode_choices(tids)}"


def decode(s: str) -> tuple[str, str, list[int]]:
    """Parse a schedule string into ``(scenario_digest, design, tids)``; raises UserError if malformed
    or written in a format version this faultlab does not read."""
    text = s.strip()
    parts = text.split(":")
    if len(parts) != 4 or not parts[0]:
        raise UserError(f"not a faultlab schedule: expected '{_SHAPE}', got {shown(text)}")
    version, digest, design, choices = parts
    if version != VERSION:
        if re.fullmatch(r"fl[0-9]+", version):
            raise UserError(
                f"schedule format {shown(version)} is not supported by this faultlab (it reads {VERSION!r})"
            )
        raise UserError(f"not a faultlab schedule: expected '{_SHAPE}', got {shown(text)}")
    if not digest or not design:
        raise UserError(f"schedule {shown(text)} has an empty scenario digest or design name")
    return digest, design, decode_choices(choices)


def check_matches(digest: str, design: str, *, scenario_digest: str, current_design: str) -> None:
    """Refuse (UserError) to replay a schedule recorded against another scenario or design."""
    if digest != scenario_digest:
        raise UserError(
            f"schedule was recorded against scenario digest {digest} (design {design}); this scenario is "
            f"{scenario_digest}: refusing to replay a changed scenario"
        )
    if design != current_design:
        raise UserError(
            f"schedule was recorded against design {design}; the current design is {current_design}: "
            "refusing to replay it against another design"
        )
