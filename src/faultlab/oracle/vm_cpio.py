"""A minimal writer for the cpio "newc" format that the Linux initramfs loader reads.

Written in Python rather than driving ``cpio(1)`` so that archives need no staging tree, every
entry is owned by root whoever builds it, ``/dev/console`` can be created without privileges and
the output is byte-for-byte reproducible (all mtimes are 0).
"""

from __future__ import annotations

import gzip
import stat
from pathlib import PurePosixPath

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


class CpioWriter:
    """Collects entries in memory; :meth:`finish` returns the archive bytes.

    Paths are given relative to the archive root (a leading ``/`` is dropped). Missing parent
    directories are added automatically (mode 0755) before their first child, as the kernel's
    loader does not create them.
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._names: set[str] = set()
        self._dirs: set[str] = set()
        self._ino = 1
        self._finished = False

    @staticmethod
    def _norm(path: str) -> str:
        p = PurePosixPath("/", path)
        if ".." in p.parts:
            raise ValueError(f"cpio path must not contain '..': {path!r}")
        rel = str(p.relative_to("/"))
        if rel in ("", "."):
            raise ValueError("cpio path must name something below the root")
        return rel

    def _entry(
        self, name: str, mode: int, data: bytes = b"", nlink: int = 1, rdev: tuple[int, int] = (0, 0)
    ) -> None:
        if self._finished:
            raise RuntimeError("archive already finished")
        raw_name = name.encode() + b"\0"
        fields = (
            self._ino,
            mode,
            0,  # uid
            0,  # gid
            nlink,
            0,  # mtime
            len(data),
            0,  # devmajor
            0,  # devminor
            rdev[0],
            rdev[1],
            len(raw_name),
            0,  # check
        )
        self._ino += 1
        header = _MAGIC + b"".join(b"%08X" % f for f in fields)
        self._chunks.append(header + raw_name + _pad4(len(header) + len(raw_name)))
        self._chunks.append(data + _pad4(len(data)))

    def _parents(self, rel: str) -> None:
        for parent in reversed(PurePosixPath(rel).parents):
            p = str(parent)
            if p != "." and p not in self._dirs:
                self.add_dir(p)

    def _claim(self, rel: str) -> None:
        if rel in self._names:
            raise ValueError(f"duplicate cpio entry: {rel}")
        self._names.add(rel)

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        rel = self._norm(path)
        if rel in self._dirs:
            return
        self._parents(rel)
        self._claim(rel)
        self._dirs.add(rel)
        self._entry(rel, stat.S_IFDIR | mode, nlink=2)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        rel = self._norm(path)
        self._parents(rel)
        self._claim(rel)
        self._entry(rel, stat.S_IFREG | mode, data)

    def add_symlink(self, path: str, target: str) -> None:
        rel = self._norm(path)
        self._parents(rel)
        self._claim(rel)
        self._entry(rel, stat.S_IFLNK | 0o777, target.encode())

    def add_chardev(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        rel = self._norm(path)
        self._parents(rel)
        self._claim(rel)
        self._entry(rel, stat.S_IFCHR | mode, rdev=(major, minor))

    def __contains__(self, path: str) -> bool:
        return self._norm(path) in self._names

    def finish(self) -> bytes:
        """Append the trailer and return the uncompressed archive."""
        if not self._finished:
            self._entry(_TRAILER, 0)
            self._finished = True
        return b"".join(self._chunks)

    def finish_gzip(self) -> bytes:
        """Like :meth:`finish`, gzip-compressed (mtime 0, so reproducible)."""
        return gzip.compress(self.finish(), compresslevel=6, mtime=0)


def read_newc(data: bytes) -> list[tuple[str, int, bytes]]:
    """Parse one uncompressed newc archive into (name, mode, data) tuples, trailer excluded.

    Only used to check archives (tests, diagnostics); not a general-purpose reader.
    """
    out: list[tuple[str, int, bytes]] = []
    pos = 0
    while True:
        if data[pos : pos + 6] != _MAGIC:
            raise ValueError(f"bad cpio magic at offset {pos}")
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        body = name_start + namesize + (-(110 + namesize) % 4)
        content = data[body : body + filesize]
        pos = body + filesize + (-filesize % 4)
        if name == _TRAILER:
            return out
        out.append((name, mode, content))
