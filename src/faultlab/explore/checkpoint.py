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

import hashlib
import os
import pickle
import time
from pathlib import Path
from typing import Any

from faultlab.errors import UserError

FORMAT = "faultlab-checkpoint-3"  # 2: nodes keep the threads the bound cut; the coverage counts. 3: a digest
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
        self.resuming = resume
        if resume:
            self.entries = load_entries(self.path)
        else:
            parent = self.path.parent if str(self.path.parent) else Path(".")
            if not parent.is_dir():
                raise UserError(f"checkpoint {path}: directory {parent} does not exist")

    def check_resumes(self, keys: list[str], scenario_digest: str) -> None:
        """Resuming: UserError unless the file has progress for one of ``keys`` (the searches the
        command runs), rather than silently starting them all again."""
        if not self.resuming or any(k in self.entries for k in keys):
            return
        held = "; ".join(sorted({describe_key(k, scenario_digest) for k in self.entries})) or "nothing"
        raise UserError(f"checkpoint {self.path} holds no progress of this command's searches (it holds: {held}): "
                        "resume with the options that wrote it, or start again with --checkpoint")

    def for_search(self, key: str) -> Checkpoint:
        self.key = key
        return self

    def load(self) -> Any:
        """The saved state of the current search, or None."""
        return self.entries.get(self.key)

    def damaged(self, why: str) -> UserError:
        """The error for a saved state that cannot be resumed (a file made or changed by hand)."""
        return UserError(f"checkpoint {self.path} is damaged ({why})")

    def due(self) -> bool:
        return time.monotonic() - self.last_save >= self.interval

    def save(self, state: Any) -> None:
        self.entries[self.key] = state
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = pickle.dumps(self.entries, protocol=pickle.HIGHEST_PROTOCOL)
        with open(tmp, "wb") as f:
            pickle.dump({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(), "entries": payload}, f,
                        protocol=pickle.HIGHEST_PROTOCOL)
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
    payload = doc.get("entries")
    if not isinstance(payload, bytes) or doc.get("sha256") != hashlib.sha256(payload).hexdigest():
        raise UserError(f"checkpoint {path} is damaged (its contents do not match their digest)")
    try:
        entries = pickle.loads(payload)
    except Exception as e:  # noqa: BLE001 - whatever the damage, one line
        raise UserError(f"checkpoint {path} is damaged: {e}") from None
    if not isinstance(entries, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in entries.items()):
        raise UserError(f"checkpoint {path} is damaged (its entries are not searches)")
    return entries


def describe_key(key: str, scenario_digest: str) -> str:
    """A search's key (faultlab.exploring.search_key) as a user reads it."""
    digest, design, strategy, bound, retry, *rest = key.split(":") + ["", "", "", ""]
    what = f"{design} ({strategy}"
    what += f", bound {bound}" if bound not in ("None", "") else ""
    what += f", retry bound {retry}" if retry not in ("None", "") else ""
    what += ", crash" if "crash" in rest else ""
    what += "".join(f", code digest {r[5:]}" for r in rest if r.startswith("code="))
    return what + (")" if digest == scenario_digest else ", another scenario)")
