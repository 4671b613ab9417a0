"""Build a Scenario from Python, with the same op lines and checks as scenario files.

    sc = (ScenarioBuilder("title", fs="dax")
          .file("data", size="2p", fill="A")
          .thread("faulter", "m = mmap data 0 2p private rw", "store m 1p B")
          .thread("truncator", "truncate data 1p")
          .build())

Files and threads may be added in any order; everything is checked by :meth:`ScenarioBuilder.build`,
which raises ScenarioError located as ``<builder>:thread faulter op 2`` (ops count from 1).
"""

from __future__ import annotations

from typing import Self

from faultlab.errors import ScenarioError
from faultlab.scenario.model import Loc, Scenario
from faultlab.scenario.parse import DEFAULT_PMEM_SIZE, KeyPath, compile_document

BUILDER_PATH = "<builder>"


class _BuilderWhere:
    """Error locations for builder input: ``<builder>:file data``, ``<builder>:thread t op 2``."""

    def where(self, path: KeyPath) -> str:
        match path:
            case ("files", name, *_):
                return f"{BUILDER_PATH}:file {name}"
            case ("threads", name, "ops", int(index)):
                return f"{BUILDER_PATH}:thread {name} op {index + 1}"
            case ("threads", name, *_):
                return f"{BUILDER_PATH}:thread {name}"
            case ("setup", "ops", int(index)):
                return f"{BUILDER_PATH}:setup op {index + 1}"
            case ("setup", *_):
                return f"{BUILDER_PATH}:setup"
            case _:
                return BUILDER_PATH

    def loc(self, path: KeyPath) -> Loc:
        return Loc(BUILDER_PATH, 0)


class ScenarioBuilder:
    """Collects a scenario's parts; :meth:`build` compiles them exactly as a scenario file would be.

    Sizes are ints (bytes) or size strings (``"2p"``, ``"1p+100"``). ``fill`` is a str (characters
    as latin-1 bytes, or ``"hole"``), raw bytes, or None for zeros."""

    def __init__(
        self,
        title: str,
        fs: str,
        *,
        memory_limit: int | str | None = None,
        pmem_size: int | str = DEFAULT_PMEM_SIZE,
        mm: str = "shared",
        pmem_align: str | None = None,
    ) -> None:
        self._doc: dict[str, object] = {"title": title, "fs": fs, "pmem_size": pmem_size, "mm": mm}
        if memory_limit is not None:
            self._doc["memory_limit"] = memory_limit
        if pmem_align is not None:
            self._doc["pmem_align"] = pmem_align
        self._files: dict[str, dict[str, object]] = {}
        self._threads: dict[str, dict[str, object]] = {}

    def file(self, name: str, size: int | str, fill: str | bytes | None = None) -> Self:
        if name in self._files:
            raise ScenarioError(f"file '{name}' is declared twice", f"{BUILDER_PATH}:file {name}")
        spec: dict[str, object] = {"size": size}
        if fill is not None:
            spec["fill"] = fill
        self._files[name] = spec
        return self

    def thread(self, name: str, *ops: str) -> Self:
        if name in self._threads:
            raise ScenarioError(f"thread '{name}' is declared twice", f"{BUILDER_PATH}:thread {name}")
        self._threads[name] = {"ops": list(ops)}
        return self

    def setup(self, *ops: str) -> Self:
        """The ``[setup]`` section: ops run by one thread before the threads start."""
        if "setup" in self._doc:
            raise ScenarioError("the setup section is given twice", f"{BUILDER_PATH}:setup")
        self._doc["setup"] = {"ops": list(ops)}
        return self

    def build(self) -> Scenario:
        doc = dict(self._doc, files=self._files, threads=self._threads)
        return compile_document(doc, _BuilderWhere(), BUILDER_PATH)
