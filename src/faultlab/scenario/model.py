"""The Scenario object: what the TOML parser and the builder API both produce.

Everything here is plain, immutable data, so a scenario can be hashed (to tag recorded schedules)
and handed to the model, the explorer and the real-kernel probe alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PAGE_SIZE = 4096

FS_KINDS = ("dax", "tmpfs", "ext4")
"""``dax``: a DAX filesystem on pmem; ``tmpfs``: shmem page cache (no write notification, no disk);
``ext4``: page cache over a disk, with ``page_mkwrite``."""

MM_KINDS = ("shared", "per-thread")
"""``shared``: the threads are threads of one process (one mm_struct, one mmap_sem, one page
table); ``per-thread``: each thread is a process with its own mm."""

OP_KINDS = ("mmap", "munmap", "load", "store", "read", "write", "truncate", "msync", "fsync", "madvise",
            "mprotect", "fallocate", "fork", "crash", "persist")

SETUP = "[setup]"
"""The thread name under which the ``[setup]`` section's ops are recorded (not a valid thread name,
so it cannot clash with one)."""


@dataclass(frozen=True, slots=True)
class Loc:
    """Where something was written: file path and 1-based line (0 when built in Python)."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an operation returned, as data.

    kind is one of ``ok``, ``data`` (bytes loaded or read), ``signal`` (value ``SIGBUS`` or
    ``SIGSEGV``) or ``errno`` (value such as ``EINVAL``)."""

    kind: str
    data: bytes = b""
    name: str = ""

    @staticmethod
    def ok() -> Outcome:
        return Outcome("ok")

    @staticmethod
    def of_data(data: bytes) -> Outcome:
        return Outcome("data", data=data)

    @staticmethod
    def signal(name: str) -> Outcome:
        return Outcome("signal", name=name)

    @staticmethod
    def errno(name: str) -> Outcome:
        return Outcome("errno", name=name)

    def __str__(self) -> str:
        if self.kind == "data":
            return format_bytes(self.data)
        if self.kind == "ok":
            return "ok"
        return self.name


def format_bytes(data: bytes) -> str:
    """Render bytes in the scenario grammar: runs of one byte as ``X*N``, the rest quoted."""
    if not data:
        return '""'
    parts: list[str] = []
    i = 0
    while i < len(data):
        j = i
        while j < len(data) and data[j] == data[i]:
            j += 1
        run = j - i
        if run >= 4:
            parts.append(f"{_byte_token(data[i])}*{run}")
            i = j
            continue
        k = i
        # gather a literal stretch until the next long run
        while k < len(data):
            m = k
            while m < len(data) and data[m] == data[k]:
                m += 1
            if m - k >= 4:
                break
            k = m
        parts.append('"' + "".join(_escape(b) for b in data[i:k]) + '"')
        i = k
    return " ".join(parts)


def _byte_token(b: int) -> str:
    if 0x21 <= b < 0x7F and chr(b) not in '"\\*':
        return chr(b)
    return f"\\x{b:02x}"


def _escape(b: int) -> str:
    if 0x20 <= b < 0x7F and chr(b) not in '"\\':
        return chr(b)
    return f"\\x{b:02x}"


@dataclass(frozen=True, slots=True)
class FileSpec:
    name: str
    size: int
    fill: bytes | None  # repeated pattern; None = zeros
    hole: bool = False  # True: no blocks allocated (DAX), not in the page cache (page cache)
    loc: Loc = Loc("<builder>", 0)


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a thread.

    Fields used by kind:
      mmap:     var, file, offset, length, shared, writable, sync (MAP_SHARED_VALIDATE|MAP_SYNC)
      munmap:   map
      load:     map, offset, length
      store:    map, offset, data
      read:     file, offset, length
      write:    file, offset, data
      truncate: file, size
      msync:    map
      fsync:    file
      madvise:  map, advice ("dontneed")
      crash:    (nothing: the machine loses power here)
      persist:  map, offset, length (user space: clwb of each line, then sfence)
      mprotect: map, writable
      fallocate: file, advice ("punch"), offset, length
      fork:     child (the thread that runs in the new process once the fork returns)

    ``placement`` (mmap) is ``""`` (the next 2 MiB-aligned slot), ``"at"`` (at ``addr``) or
    ``"unaligned"`` (three pages below a 2 MiB boundary).  ``owner`` (ops on a MAP) is ``""`` when
    the thread's own earlier mmap made the variable, :data:`SETUP` for the ``[setup]`` section, or
    the name of the other thread (``mm = "shared"``) whose mmap makes it.
    """

    kind: str
    text: str
    loc: Loc
    var: str = ""
    map: str = ""
    file: str = ""
    offset: int = 0
    length: int = 0
    size: int = 0
    data: bytes = b""
    shared: bool = False
    writable: bool = False
    advice: str = ""
    placement: str = ""
    addr: int = 0
    sync: bool = False
    owner: str = ""
    child: str = ""
    expect: Outcome | None = None


@dataclass(frozen=True, slots=True)
class ThreadSpec:
    """A thread's ops; ``forked_by`` names the thread whose ``fork NAME`` starts it (a child
    process with a copy of that thread's mm), empty for a thread that starts with the scenario."""

    name: str
    ops: tuple[Op, ...]
    loc: Loc = Loc("<builder>", 0)
    forked_by: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    title: str
    fs: str
    files: tuple[FileSpec, ...]
    threads: tuple[ThreadSpec, ...]
    path: str = "<builder>"
    memory_limit_pages: int | None = None  # memcg-like limit on allocated pages
    pmem_size: int = 1 << 30
    mm: str = "shared"
    setup: ThreadSpec | None = None  # the [setup] section's ops, run before the threads start
    pmem_align: str = "4k"  # "2m": 2 MiB-aligned extents, DAX faults try a PMD first

    def all_threads(self) -> tuple[ThreadSpec, ...]:
        """The ``[setup]`` section (named :data:`SETUP`) if any, then the threads."""
        return self.threads if self.setup is None else (self.setup, *self.threads)

    def digest(self) -> str:
        """A short stable hash of everything that affects execution (not the title or path)."""
        h = hashlib.sha256()
        h.update(self.fs.encode())
        h.update(self.mm.encode())
        h.update(repr(self.memory_limit_pages).encode())
        h.update(str(self.pmem_size).encode())
        if self.pmem_align != "4k":
            h.update(self.pmem_align.encode())
        for f in self.files:
            h.update(repr((f.name, f.size, f.fill, f.hole)).encode())
        for t in self.all_threads():
            h.update(t.name.encode())
            for op in t.ops:
                h.update(op.text.encode())
                h.update(b"\0")
        return h.hexdigest()[:16]
