"""What a design is: an era's generic fault code plus the file systems it installs.

A design names its era (:mod:`faultlab.kernel.eras`), the file system type for each kind of file
(``tmpfs``, ``ext4``, ``dax``) and, when it has one, its kernel's fs/dax.c.  A variant -- a known
bug, a user's experiment -- is a design with one or more functions replaced; :meth:`Design.variant`
makes one.  :meth:`Design.image` links the design's own copy of the model (cached), so a variant
never changes what another design runs (see :mod:`faultlab.kernel.image`).
"""

from __future__ import annotations

import hashlib
import marshal
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from faultlab.fs import ext4, shmem
from faultlab.fs.ops import FileSystemType
from faultlab.kernel import syscalls
from faultlab.kernel.image import KernelImage, link, record_functions

PAGE_CACHE: dict[str, FileSystemType] = {"tmpfs": shmem.FS, "ext4": ext4.FS}
"""The page-cache file kinds of the 3.15-4.4 kernels."""
PAGE_CACHE_4_5: dict[str, FileSystemType] = {"tmpfs": shmem.FS, "ext4": ext4.FS_4_5}
"""From 4.5, ext4 serialises page faults against truncate with i_mmap_sem."""


@dataclass(frozen=True, eq=False)
class Design:
    name: str
    summary: str
    source: str
    era: types.ModuleType
    filesystems: Mapping[str, FileSystemType]
    dax: types.ModuleType | None = None
    version: tuple[int, int] = (0, 0)  # the kernel release it models; (0, 0) for a user's design
    replaced: tuple[tuple[Callable[..., Any], Callable[..., Any]], ...] = ()
    # For a known bug: the scenario that exposes it, the design that fixes it, what breaks.
    scenario: str = ""
    fixed_by: str = ""
    expected_violation: str = ""
    _images: dict[bool, KernelImage] = field(default_factory=dict, repr=False, compare=False)

    def variant(self, name: str, summary: str, source: str,
                replace_functions: Mapping[Callable[..., Any], Callable[..., Any]], *, scenario: str = "",
                fixed_by: str = "", expected_violation: str = "") -> Design:
        """This design with functions replaced: ``{original: replacement}``.  The replacement runs
        in the original's module, calling the design's own versions of everything else.  A known
        bug names the scenario that exposes it, the design that fixes it and what it breaks."""
        return replace(self, name=name, summary=summary, source=source,
                       replaced=(*self.replaced, *replace_functions.items()), _images={}, scenario=scenario,
                       fixed_by=fixed_by, expected_violation=expected_violation)

    def image(self, trace: bool = False) -> KernelImage:
        """The design's linked kernel (``trace``: functions report entry and exit as events)."""
        got = self._images.get(trace)
        if got is None:
            got = self._images[trace] = link(self.name, self.era, dict(self.filesystems), self.dax, [syscalls],
                                             dict(self.replaced), trace=trace)
        return got

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to a Ray worker) without its linked images: an image's modules would travel by
        name and come back as faultlab's unlinked modules, losing every replacement.  The worker
        links its own."""
        state = dict(self.__dict__)
        state["_images"] = {}
        return state

    @cached_property  # (read by every execution)
    def user_code(self) -> list[str]:
        """The modules of this design's code that are not faultlab's own (a design file, a variant a
        test builds): every run of such a design is audited (see :class:`faultlab.execution.ModelExecution`),
        since nothing else checks that its code announces what it touches."""
        mods = {self.era.__name__, *(fn.__module__ for fn in self._functions())}
        if self.dax is not None:
            mods.add(self.dax.__name__)
        return sorted(m for m in mods if m != "faultlab" and not m.startswith("faultlab."))

    def _functions(self) -> list[Any]:
        """Its replacements and its file systems' ops (the functions it names besides its modules)."""
        out: list[Any] = [new for _, new in self.replaced]
        for fs in self.filesystems.values():
            out += record_functions(fs)
        return out

    @cached_property
    def code_digest(self) -> str:
        """A digest of :attr:`user_code` ('' for none): its replacements' code and the source
        files of its code, so that a checkpoint is resumed only by the code that wrote it."""
        if not self.user_code:
            return ""
        h = hashlib.sha256()
        files: set[str] = set()
        user = set(self.user_code)
        for fn in self._functions():
            code = getattr(fn, "__code__", None)
            if code is not None and getattr(fn, "__module__", None) in user:
                h.update(marshal.dumps(code))
                files.add(code.co_filename)
        for mod in (self.era, self.dax):
            source = getattr(mod, "__file__", None)
            if mod is not None and mod.__name__ in user and source:
                files.add(source)
        for name in sorted(files):
            try:
                h.update(Path(name).read_bytes())
            except OSError:  # (code with no file: its code objects are in the digest)
                h.update(name.encode())
        return h.hexdigest()[:16]

    @property
    def is_known_bug(self) -> bool:
        return bool(self.expected_violation)
