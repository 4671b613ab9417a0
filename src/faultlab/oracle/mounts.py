"""Which filesystem a path lives on, from ``/proc/self/mountinfo`` (what ``findmnt -T`` reports)."""

from __future__ import annotations

import os
import re

_MOUNTINFO = "/proc/self/mountinfo"


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def fs_type(path: str | os.PathLike[str], mountinfo: str | None = None) -> str:
    """The filesystem type (``ext4``, ``tmpfs``, ...) of the mount holding ``path``.

    The mount is the one whose mount point is the longest prefix of the resolved path; of several
    mounts on the same point the last (topmost) wins. ``mountinfo`` overrides the file's text.
    """
    target = os.path.realpath(path)
    if mountinfo is None:
        with open(_MOUNTINFO, encoding="utf-8") as f:
            mountinfo = f.read()
    best_point = ""
    best_type = ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = _unescape(fields[4])
        fstype = line.split(" - ", 1)[1].split()[0]
        if not _contains(point, target):
            continue
        if len(point) >= len(best_point):
            best_point, best_type = point, fstype
    if not best_type:
        raise OSError(f"no mount found for {target} in {_MOUNTINFO}")
    return best_type


def _contains(point: str, target: str) -> bool:
    if point == "/":
        return True
    return target == point or target.startswith(point.rstrip("/") + "/")
