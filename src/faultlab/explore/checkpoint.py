"""Checkpoints: a search's progress in a file, to resume it later losing nothing and counting
nothing twice.

A checkpoint is taken only between two tasks of a split search (:mod:`faultlab.explore.parallel`),
where the committed state is exactly that of one process at that point: the coordinator's path
(each node's threads to explore, in order, and how far it got), the next branch to commit, the
counts and distinct final states so far, the first run of each violation, and the program's own
state (lockdep's dependencies).  Resuming rebuilds all of that and goes on with the next branch:
the runs of the first part and those of the second are exactly the runs of one uninterrupted
search.  Work done ahead of the commit point (tasks not yet committed) is simply done again.

The file holds one entry per search (a key naming the scenario, design and options), so that one
file serves ``--design all``; it is rewritten atomically (a temporary file, then a rename).  It is
a Python pickle: resume only files you wrote."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Any

from faultlab.errors import UserError

FORMAT = "faultlab-checkpoint-2"  # 2: nodes keep the threads the bound cut; the coverage counts
DEFAULT_INTERVAL = 10.0  # seconds between saves while a search runs (FAULTLAB_CHECKPOINT_INTERVAL)


class Checkpoint:
    """The checkpoint file of one command; ``key`` selects the search being run."""

    def __init__(self, path: str, *, resume: bool, interval: float | None = None) -> None:
        self.path = Path(path)
        if interval is None:
            try:
                interval = float(os.environ.get("FAULTLAB_CHECKPOINT_INTERVAL", DEFAULT_INTERVAL))
            except ValueError:
                raise UserError("FAULTLAB_CHECKPOINT_INTERVAL must be a number of seconds") from None
        self.interval = interval
        self.key = ""
        self.entries: dict[str, Any] = {}
        self.last_save = time.monotonic()
        if resume:
            self.entries = load_entries(self.path)
        else:
            parent = self.path.parent if str(self.path.parent) else Path(".")
            if not parent.is_dir():
                raise UserError(f"checkpoint {path}: directory {parent} does not exist")

    def for_search(self, key: str) -> Checkpoint:
        self.key = key
        return self

    def load(self) -> Any:
        """The saved state of the current search, or None."""
        return self.entries.get(self.key)

    def due(self) -> bool:
        return time.monotonic() - self.last_save >= self.interval

    def save(self, state: Any) -> None:
        self.entries[self.key] = state
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump({"format": FORMAT, "entries": self.entries}, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.last_save = time.monotonic()


def load_entries(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = pickle.load(f)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist") from None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as e:
        raise UserError(f"checkpoint {path} cannot be read: {e}") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if isinstance(fmt, str) and fmt.startswith("faultlab-checkpoint-") and fmt != FORMAT:
        raise UserError(f"checkpoint {path} is a {fmt} file, from another version of faultlab (this one reads "
                        f"{FORMAT}): run the search again with --checkpoint")
    if fmt != FORMAT:
        raise UserError(f"checkpoint {path} is not a {FORMAT} file")
    entries = doc.get("entries")
    if not isinstance(entries, dict):
        raise UserError(f"checkpoint {path} is damaged (no entries)")
    return entries
