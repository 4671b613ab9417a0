"""Compare the model with a real kernel: what the model claims, per op and per file, and where the
two disagree.

* :data:`BASE_CLAIMS` and :data:`WAIVERS` are ``docs/fidelity.md`` written as data: every
  observable the model claims for each file kind, and every deliberate, explained exception.
* :func:`claims_for` works out, for one scenario run sequentially on one kernel, which observable
  of which op (and which bytes) the model claims.
* :func:`compare` lines up a model :class:`RunRecord` with a kernel one under those claims.
* :func:`run_oracle` runs scenarios on the model and on a kernel (``host-tmpfs``, ``host-ext4``,
  or ``dax-vm``: all scenarios in one boot) and compares them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from faultlab.designs import get_design
from faultlab.designs.base import Design
from faultlab.errors import UserError
from faultlab.execution import ModelExecution
from faultlab.oracle.errors import ProbeFailedError, UnsupportedScenarioError
from faultlab.results import FileState, OpRecord, RunRecord
from faultlab.scenario.model import PAGE_SIZE, Op, Outcome, Scenario, format_bytes
from faultlab.sched import SequentialChooser

KERNELS = ("host-tmpfs", "host-ext4", "dax-vm")
KERNEL_FS = {"host-tmpfs": "tmpfs", "host-ext4": "ext4", "dax-vm": "dax"}
FS_KERNEL = {fs: kernel for kernel, fs in KERNEL_FS.items()}

PMD_PAGES = 512  # pages in a 2 MiB PMD
OP_OBSERVABLES = ("outcome", "minflt", "majflt")
FILE_OBSERVABLES = ("size", "contents")
DAX_ACTIVE_NOTE = "DAX active (statx STATX_ATTR_DAX)"
GUEST_DIR = "/mnt/job"  # the probe's `dir` line; vm.run_jobs rewrites it to each job's own directory

BASE_CLAIMS: dict[str, tuple[str, ...]] = {
    # docs/fidelity.md, "Observables the model claims": per file kind, per op and per file.
    "tmpfs": ("outcome", "minflt", "majflt", "size", "contents"),
    "ext4": ("outcome", "minflt", "majflt", "size", "contents"),
    "dax": ("outcome", "minflt", "majflt", "size", "contents"),
}
"""What the model claims before any waiver: everything the probe reports. (Files are always
written in 4 KiB chunks by the probe, the condition under which ext4's counts are claimed.)"""


@dataclass(frozen=True, slots=True)
class Waiver:
    """A deliberate, documented difference: ``observables`` are not claimed where it applies."""

    id: str
    fs: tuple[str, ...]
    observables: tuple[str, ...]
    why: str
    until: tuple[int, int] | None = None
    """An era difference: it applies only to designs of a kernel older than this version (a
    design's ``version``); the designs of that kernel and later have the behaviour."""


WAIVERS: dict[str, Waiver] = {
    w.id: w
    for w in (
        Waiver(
            "ext4-readahead",
            ("ext4",),
            ("minflt", "majflt"),
            "readahead is not modelled: once an op touches an ext4 page that is not in the page "
            "cache (a hole, a page past the EOF the file was written to, a page dropped by "
            "truncate), the kernel reads it and its neighbours in, so from that op on the fault "
            "counts of ops on that file differ in their minor/major split and in fault-around",
        ),
        Waiver(
            "ext4-fault-past-eof",
            ("ext4",),
            ("minflt", "majflt"),
            "Linux 6.18's filemap_map_pages (after 'mm/memory: do not populate page table entries "
            "beyond i_size', 2025) skips filemap_map_pmd -- which also installs the preallocated PTE "
            "table -- when the first folio of the fault-around window is the file's last page and the "
            "file is not shmem; a fault past EOF that is the first in its 2 MiB range then maps "
            "nothing around it, where 4.x (the model) maps the cached page below EOF.  After an "
            "access past EOF through an ext4 mapping, the fault counts of later accesses through that "
            "mapping are not claimed (designs before v6.18)",
            until=(6, 18),
        ),
        Waiver(
            "post-eof-after-extend",
            ("tmpfs", "ext4", "dax"),
            ("bytes",),
            "bytes stored through a shared mapping past EOF in the last page and then exposed by "
            "extending the file (truncate up, write past EOF) are filesystem- and "
            "version-dependent: those bytes are not compared, in loads, reads and the final file",
        ),
        Waiver(
            "contents-not-recorded",
            ("tmpfs", "ext4", "dax"),
            ("contents",),
            "the model does not snapshot the final contents of a file larger than its limit "
            "(faultlab.kernel.snapshot.SNAPSHOT_LIMIT, 64 MiB): that file's size is compared, its "
            "contents are not",
        ),
        Waiver(
            "dax-shared-write-notify",
            ("dax",),
            ("minflt",),
            "Linux 4.x inserts a DAX pfn read-only on a shared write fault in a write-notify VMA "
            "(vm_insert_mixed with vm_page_prot), so the store faults again to make it writable "
            "(->pfn_mkwrite): one minor fault more than 4.15+ (vm_insert_mixed_mkwrite), which "
            "maps it writable at once; a store through a MAP_SHARED mapping of a DAX file has its "
            "minor fault count waived (major faults, block allocation, still claimed; designs before "
            "v6.1)",
            until=(4, 15),
        ),
        Waiver(
            "fork-own-pages",
            ("tmpfs", "ext4", "dax"),
            ("minflt", "majflt"),
            "fork write-protects every private page of the forking process, the probe's own stack "
            "and data among them, and the return from fork() writes to some of them: the kernel "
            "counts those copy-on-write faults in the fork op's window, the model counts none "
            "(the scenario's own pages fault later, in the ops that touch them, where they are "
            "claimed); the fork op's fault counts are waived",
        ),
        Waiver(
            "dax-pmd",
            ("dax",),
            ("minflt", "majflt"),
            "2 MiB DAX (PMD) faults are modelled only where the scenario says its extents are 2 MiB "
            "aligned (pmem_align = \"2m\"); elsewhere, where a whole 2 MiB-aligned block of the file "
            "lies inside a mapping at a 2 MiB-aligned file offset, the kernel may map it with one "
            "fault; fault counts of accesses there are waived",
        ),
        Waiver(
            "dax-truncate-unmaps",
            ("dax",),
            ("minflt", "majflt"),
            "since 4.18 (ext4_break_layouts -> dax_layout_busy_page) truncating a DAX file unmaps "
            "every page of it from every mapping, also below the new EOF; the 4.x model keeps "
            "those PTEs, so after a truncate of a DAX file the fault counts of accesses through "
            "the mappings made before it are waived (designs before v6.1)",
            until=(4, 18),
        ),
    )
}
"""docs/fidelity.md, "Known, deliberate differences", as data."""


# -- claims ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpClaim:
    """What the model claims about one op: a subset of :data:`OP_OBSERVABLES`, and which bytes of
    a data outcome are not compared (``masked``: indices into the returned bytes)."""

    observables: frozenset[str]
    masked: frozenset[int] = frozenset()
    waived: tuple[str, ...] = ()  # ids of the waivers that withdrew something


@dataclass(frozen=True, slots=True)
class FileClaim:
    observables: frozenset[str]
    masked: frozenset[int] = frozenset()  # file offsets not compared
    waived: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Claims:
    kernel: str
    fs: str
    ops: tuple[OpClaim, ...]  # one per op, in sequential order (threads in declaration order)
    files: dict[str, FileClaim]


@dataclass(slots=True)
class _File:
    size: int
    cached: set[int]  # ext4: pages in the page cache
    readahead: bool = False  # ext4: an uncached page was touched (waiver ext4-readahead)
    truncates: int = 0  # how many truncates so far (waiver dax-truncate-unmaps)
    pending: set[int] = field(default_factory=set)  # offsets stored past EOF through a shared map
    unclaimed: set[int] = field(default_factory=set)  # offsets exposed by an extend


@dataclass(slots=True)
class _Map:
    file: str
    pgoff: int
    length: int
    shared: bool
    writable: bool
    truncates: int  # the file's truncate count when the mapping was made
    mapped: bool = True
    faulted_past_eof: bool = False


def _pages(n: int) -> int:
    return (n + PAGE_SIZE - 1) // PAGE_SIZE


def _window_starts_at_last_page(m: _Map, f: _File, map_page: int) -> bool:
    """Whether the fault-around window of a fault at ``map_page`` of the mapping (16 pages aligned
    on the virtual address; the probe's mappings start 2 MiB-aligned), clipped to EOF, finds the
    file's last page as its first cached page: the case ``ext4-fault-past-eof`` describes."""
    start = m.pgoff + (map_page // 16) * 16
    last = _pages(f.size) - 1
    cached = [p for p in sorted(f.cached) if start <= p <= last]
    return bool(cached) and cached[0] == last


def _pmd_possible(m: _Map, f: _File, page: int) -> bool:
    """A 2 MiB DAX fault could map ``page``: the mapping's virtual and file offsets agree modulo
    2 MiB (mappings start 2 MiB-aligned) and the aligned 2 MiB block lies in the VMA and the file."""
    if m.pgoff % PMD_PAGES:
        return False
    block = page - page % PMD_PAGES
    return block + PMD_PAGES <= m.pgoff + _pages(m.length) and block + PMD_PAGES <= _pages(f.size)


class _ClaimsBuilder:
    """A sequential walk over the scenario that tracks just enough state to apply the waivers."""

    def __init__(self, scenario: Scenario, kernel: str, version: tuple[int, int]) -> None:
        self.fs = scenario.fs
        # pmem_align = "2m": the model has the PMD faults itself (and the DAX VM's ext4 is made
        # with a 2 MiB stripe, the probe fallocates whole 2 MiB files): their counts are claimed.
        self.pmd_modelled = scenario.pmem_align == "2m"
        self.kernel = kernel
        self.version = version
        self.base = frozenset(o for o in BASE_CLAIMS[self.fs] if o in OP_OBSERVABLES)
        self.files: dict[str, _File] = {}
        for spec in scenario.files:
            cached = set() if spec.hole else set(range(_pages(spec.size)))
            self.files[spec.name] = _File(spec.size, cached)
        self.maps: dict[tuple[str, str], _Map] = {}

    def _waive(self, waived: dict[str, None], waiver: str) -> None:
        w = WAIVERS[waiver]
        if self.fs in w.fs and (w.until is None or self.version < w.until):
            waived[waiver] = None

    def op(self, thread: str, op: Op) -> OpClaim:
        waived: dict[str, None] = {}
        masked: set[int] = set()
        if op.kind == "mmap":
            if op.offset % PAGE_SIZE == 0 and op.length > 0 and op.file in self.files:
                f = self.files[op.file]
                m = _Map(op.file, op.offset // PAGE_SIZE, op.length, op.shared, op.writable, f.truncates)
                self.maps[(thread, op.var)] = m
        elif op.kind in ("load", "store"):
            masked = self._access(thread, op, waived)
        elif op.kind in ("munmap", "msync", "madvise"):
            unmapped = self.maps.get((op.owner or thread, op.map))
            if op.kind == "munmap" and unmapped is not None:
                unmapped.mapped = False
        elif op.kind == "read":
            masked = self._read(op, waived)
        elif op.kind == "write":
            self._write(op)
        elif op.kind == "truncate":
            self._truncate(op)
        elif op.kind == "fork":
            self._waive(waived, "fork-own-pages")
        if masked:
            waived["post-eof-after-extend"] = None
        observables = set(self.base)
        for w in waived:
            observables -= set(WAIVERS[w].observables)
        return OpClaim(frozenset(observables), frozenset(masked), tuple(waived))

    def _access(self, thread: str, op: Op, waived: dict[str, None]) -> set[int]:
        m = self.maps.get((op.owner or thread, op.map))  # owner: the set-up's or another thread's map
        if m is None or not m.mapped:
            return set()
        f = self.files[m.file]
        length = len(op.data) if op.kind == "store" else op.length
        store = op.kind == "store"
        if f.readahead:
            self._waive(waived, "ext4-readahead")
        if f.truncates > m.truncates:
            self._waive(waived, "dax-truncate-unmaps")
        if store and m.shared and m.writable:
            self._waive(waived, "dax-shared-write-notify")
        if m.faulted_past_eof:
            self._waive(waived, "ext4-fault-past-eof")
        masked: set[int] = set()
        end_of_map = _pages(m.length) * PAGE_SIZE
        for i in range(length):
            at = op.offset + i
            if at >= end_of_map or (store and not m.writable):
                break  # SIGSEGV
            pos = m.pgoff * PAGE_SIZE + at
            if pos // PAGE_SIZE >= _pages(f.size):
                if self.fs == "ext4" and _window_starts_at_last_page(m, f, at // PAGE_SIZE):
                    m.faulted_past_eof = True
                break  # SIGBUS
            page = pos // PAGE_SIZE
            if self.fs == "dax" and not self.pmd_modelled and _pmd_possible(m, f, page):
                self._waive(waived, "dax-pmd")
            if self.fs == "ext4" and page not in f.cached:
                f.readahead = True
                f.cached.add(page)
                self._waive(waived, "ext4-readahead")
            if pos in f.unclaimed:
                if store and m.shared:
                    f.unclaimed.discard(pos)
                elif not store:
                    masked.add(i)
            if store and m.shared and pos >= f.size:
                f.pending.add(pos)
        return masked

    def _read(self, op: Op, waived: dict[str, None]) -> set[int]:
        f = self.files[op.file]
        end = min(op.offset + op.length, f.size)
        if self.fs == "ext4" and op.offset < end:
            touched = set(range(op.offset // PAGE_SIZE, _pages(end)))
            if touched - f.cached:
                f.readahead = True
                f.cached |= touched
        if f.readahead:
            self._waive(waived, "ext4-readahead")
        return {i for i in range(max(0, end - op.offset)) if op.offset + i in f.unclaimed}

    def _extend(self, f: _File, size: int) -> None:
        if size > f.size:
            f.unclaimed |= f.pending
            f.pending.clear()
            f.size = size

    def _write(self, op: Op) -> None:
        f = self.files[op.file]
        end = op.offset + len(op.data)
        self._extend(f, end)
        f.unclaimed -= set(range(op.offset, end))
        if self.fs == "ext4" and op.data:
            f.cached |= set(range(op.offset // PAGE_SIZE, _pages(end)))

    def _truncate(self, op: Op) -> None:
        f = self.files[op.file]
        if op.size < f.size:
            f.pending = {p for p in f.pending if p < op.size}
            f.size = op.size
            f.cached = {p for p in f.cached if p < _pages(op.size)}
        else:
            self._extend(f, op.size)
        f.truncates += 1

    def file_claims(self) -> dict[str, FileClaim]:
        out: dict[str, FileClaim] = {}
        observables = frozenset(o for o in BASE_CLAIMS[self.fs] if o in FILE_OBSERVABLES)
        for name, f in self.files.items():
            masked = frozenset(p for p in f.unclaimed if p < f.size)
            out[name] = FileClaim(observables, masked, ("post-eof-after-extend",) if masked else ())
        return out


def claims_for(scenario: Scenario, kernel: str, version: tuple[int, int] = (0, 0)) -> Claims:
    """What the model claims when ``scenario`` runs sequentially on ``kernel``, for a design of
    kernel ``version`` (era-difference waivers apply only to designs of older kernels; a user's
    design without a version gets them all)."""
    check_kernel(scenario, kernel)
    builder = _ClaimsBuilder(scenario, kernel, version)
    ops = tuple(builder.op(t.name, op) for t in scenario.all_threads() for op in t.ops)  # the set-up's first
    return Claims(kernel=kernel, fs=scenario.fs, ops=ops, files=builder.file_claims())


def check_kernel(scenario: Scenario, kernel: str) -> None:
    """Refuse a scenario whose ``fs`` is not the one ``kernel`` runs (no silent substitution)."""
    if kernel not in KERNELS:
        raise UserError(f"unknown kernel {kernel!r}: choose one of {', '.join(KERNELS)}")
    if KERNEL_FS[kernel] == scenario.fs:
        return
    right = FS_KERNEL[scenario.fs]
    if scenario.fs == "dax":
        why = "this host has no persistent memory; DAX runs only in the VM"
    elif kernel == "dax-vm":
        why = "the DAX VM runs only fs=dax scenarios"
    else:
        why = f"{kernel} runs files on {KERNEL_FS[kernel]}, and tmpfs and ext4 fault differently"
    raise UnsupportedScenarioError(
        f"{scenario.path}: the scenario is fs={scenario.fs} but --kernel {kernel} was asked for ({why}); "
        f"use --kernel {right}"
    )


# -- comparison -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpRow:
    index: int
    thread: str
    op: str
    line: int
    model: OpRecord | None
    kernel: OpRecord | None
    claim: OpClaim
    differs: tuple[str, ...]  # the claimed observables that differ


@dataclass(frozen=True, slots=True)
class FileRow:
    name: str
    model: FileState | None
    kernel: FileState | None
    claim: FileClaim
    differs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    kernel: str
    design: str
    rows: tuple[OpRow, ...]
    files: tuple[FileRow, ...]
    notes: tuple[str, ...] = ()  # e.g. DAX_ACTIVE_NOTE
    model_error: str | None = None  # the model raised instead of finishing the run

    @property
    def differences(self) -> list[OpRow | FileRow]:
        """The op and file rows where an observable the model claims differs."""
        return [r for r in self.rows if r.differs] + [f for f in self.files if f.differs]

    @property
    def ok(self) -> bool:
        return not self.differences and self.model_error is None


def _masked_equal(a: Outcome, b: Outcome, masked: frozenset[int]) -> bool:
    if not masked or a.kind != "data" or b.kind != "data" or len(a.data) != len(b.data):
        return a == b
    return all(x == y for i, (x, y) in enumerate(zip(a.data, b.data, strict=True)) if i not in masked)


def _op_differs(m: OpRecord | None, k: OpRecord | None, claim: OpClaim) -> tuple[str, ...]:
    if m is None or k is None:
        return ("missing",)
    out = []
    if "outcome" in claim.observables and not _masked_equal(m.outcome, k.outcome, claim.masked):
        out.append("outcome")
    if "minflt" in claim.observables and m.minflt != k.minflt:
        out.append("minflt")
    if "majflt" in claim.observables and m.majflt != k.majflt:
        out.append("majflt")
    return tuple(out)


def _file_differs(m: FileState | None, k: FileState | None, claim: FileClaim) -> tuple[str, ...]:
    if m is None or k is None:
        return ("missing",)
    out = []
    if "size" in claim.observables and m.size != k.size:
        out.append("size")
    a, b = m.contents, k.contents
    if "contents" in claim.observables and a is not None and b is not None:
        if len(a) != len(b) or any(
            x != y for i, (x, y) in enumerate(zip(a, b, strict=True)) if i not in claim.masked
        ):
            out.append("contents")
    return tuple(out)


def compare(model: RunRecord, kernel: RunRecord, claims: Claims, *, design: str = "") -> Comparison:
    """Line up the model's and the kernel's records op by op (same sequential order) and file by
    file; a row differs where an observable ``claims`` names differs."""
    rows = []
    for i, claim in enumerate(claims.ops):
        m = model.ops[i] if i < len(model.ops) else None
        k = kernel.ops[i] if i < len(kernel.ops) else None
        ref = k or m
        if m is not None and k is not None and (m.thread, m.op) != (k.thread, k.op):
            raise ValueError(f"records do not line up at op {i}: model {m.op!r}, kernel {k.op!r}")
        rows.append(
            OpRow(
                index=i,
                thread=ref.thread if ref else "?",
                op=ref.op if ref else "?",
                line=ref.line if ref else 0,
                model=m,
                kernel=k,
                claim=claim,
                differs=_op_differs(m, k, claim),
            )
        )
    files = []
    for name in sorted(set(model.files) | set(kernel.files) | set(claims.files)):
        fclaim = claims.files.get(name, FileClaim(frozenset(FILE_OBSERVABLES)))
        mf, kf = model.files.get(name), kernel.files.get(name)
        if (mf is not None and mf.contents is None) or (kf is not None and kf.contents is None):
            fclaim = replace(
                fclaim,
                observables=fclaim.observables - {"contents"},
                waived=(*fclaim.waived, "contents-not-recorded"),
            )
        files.append(FileRow(name, mf, kf, fclaim, _file_differs(mf, kf, fclaim)))
    return Comparison(kernel=claims.kernel, design=design, rows=tuple(rows), files=tuple(files))


# -- JSON -----------------------------------------------------------------------------------------------


def _op_json(r: OpRecord | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"outcome": str(r.outcome), "minflt": r.minflt, "majflt": r.majflt}


def _file_json(f: FileState | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {"size": f.size, "contents": None if f.contents is None else format_bytes(f.contents)}


def comparison_json(scenario: Scenario, c: Comparison) -> dict[str, Any]:
    return {
        "scenario": scenario.path,
        "title": scenario.title,
        "fs": scenario.fs,
        "kernel": c.kernel,
        "design": c.design,
        "notes": list(c.notes),
        "model_error": c.model_error,
        "ops": [
            {
                "thread": r.thread,
                "line": r.line,
                "op": r.op,
                "model": _op_json(r.model),
                "kernel": _op_json(r.kernel),
                "claimed": sorted(r.claim.observables),
                "masked_bytes": sorted(r.claim.masked),
                "waived": list(r.claim.waived),
                "differs": list(r.differs),
            }
            for r in c.rows
        ],
        "files": [
            {
                "name": f.name,
                "model": _file_json(f.model),
                "kernel": _file_json(f.kernel),
                "claimed": sorted(f.claim.observables),
                "masked_offsets": sorted(f.claim.masked),
                "waived": list(f.claim.waived),
                "differs": list(f.differs),
            }
            for f in c.files
        ],
        "differences": len(c.differences) + (c.model_error is not None),
    }


# -- running ----------------------------------------------------------------------------------------------


def run_model(scenario: Scenario, design: Design) -> tuple[RunRecord, str | None]:
    """The model's sequential run (threads in declaration order) and its model error, if any."""
    result = ModelExecution(scenario, design).run(SequentialChooser())
    errors = [v.message for v in result.violations if v.id == "model-error"]
    return result.record, (errors[0] if errors else None)


def kernel_for(scenario: Scenario, kernel: str | None) -> str:
    chosen = kernel or FS_KERNEL[scenario.fs]
    check_kernel(scenario, chosen)
    return chosen


def run_kernel(
    scenarios: Sequence[Scenario], kernel: str, log: Callable[[str], None] | None = None
) -> list[tuple[RunRecord, tuple[str, ...]]]:
    """Each scenario's kernel record (and notes) on ``kernel``; ``dax-vm`` boots once for all
    (``log`` sees the VM setup's progress messages)."""
    for s in scenarios:
        check_kernel(s, kernel)
    if kernel == "dax-vm":
        return _run_dax_vm(scenarios, log)
    from faultlab.oracle.host import run_on_host

    return [(run_on_host(s, kernel), ()) for s in scenarios]


def _run_dax_vm(
    scenarios: Sequence[Scenario], log: Callable[[str], None] | None = None
) -> list[tuple[RunRecord, tuple[str, ...]]]:
    from faultlab.oracle import vm
    from faultlab.oracle.build import build_probe
    from faultlab.oracle.program import parse_probe_output, probe_error, to_probe_program

    if not scenarios:
        return []
    programs = [to_probe_program(s, GUEST_DIR, require_dax=True) for s in scenarios]
    assets = vm.setup(log=log or (lambda _msg: None))
    probe = build_probe(static=True)
    names = [f"s{i:04d}" for i in range(len(scenarios))]
    outputs = vm.run_jobs(assets, probe, [(n, p.text) for n, p in zip(names, programs, strict=True)])
    out: list[tuple[RunRecord, tuple[str, ...]]] = []
    for scenario, name, program in zip(scenarios, names, programs, strict=True):
        text = outputs[name]
        lines = text.splitlines()
        errors = [line for line in lines if line.startswith("error ")]
        if errors:
            raise probe_error(errors[-1])
        if text.exit_code != 0:
            detail = (text.stderr.strip().splitlines() or ["no message"])[-1]
            raise ProbeFailedError(
                f"{scenario.path}: the probe exited with status {text.exit_code} in the VM: {detail}"
            )
        if "dax active" not in lines:
            raise ProbeFailedError(f"{scenario.path}: the probe in the VM did not report `dax active`")
        out.append((parse_probe_output(program, text), (DAX_ACTIVE_NOTE,)))
    return out


DEFAULT_DESIGNS = {"host-tmpfs": "v6.18", "host-ext4": "v6.18", "dax-vm": "v6.1"}
"""The design that models the kernel each runner boots: this machine's (6.18) and the DAX VM's (6.1)."""


def resolve_design(design: str | Design) -> Design:
    return get_design(design) if isinstance(design, str) else design


def run_oracle(
    scenarios: Sequence[Scenario],
    kernel: str | None = None,
    design: str | Design | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> list[tuple[Scenario, Comparison]]:
    """Run every scenario sequentially on the model (``design``; None: the design of the kernel
    it runs on, :data:`DEFAULT_DESIGNS`) and on ``kernel`` (``None``: the kernel that matches each
    scenario's fs) and compare them. Host kernels run one probe per scenario; all ``dax-vm``
    scenarios run in one VM boot, with DAX required and reported active.  Every scenario is
    checked before anything runs."""
    retargeted = [s.fs for s in scenarios]
    if kernel is not None:
        # An explicit kernel runs every scenario on that kernel's file kind, model and kernel alike;
        # the report says so for each scenario written for another one.
        scenarios = [replace(s, fs=KERNEL_FS[kernel]) if kernel in KERNEL_FS else s for s in scenarios]
    chosen = [kernel_for(s, kernel) for s in scenarios]
    records: dict[int, tuple[RunRecord, tuple[str, ...]]] = {}
    for k in KERNELS:
        indices = [i for i, c in enumerate(chosen) if c == k]
        for i, rec in zip(indices, run_kernel([scenarios[i] for i in indices], k, log), strict=True):
            records[i] = rec
    out = []
    for i, scenario in enumerate(scenarios):
        design_cls = resolve_design(DEFAULT_DESIGNS[chosen[i]] if design is None else design)
        model, error = run_model(scenario, design_cls)
        kernel_record, notes = records[i]
        if retargeted[i] != scenario.fs:
            notes = (f"written for fs={retargeted[i]}, run as fs={scenario.fs} (--kernel {kernel})", *notes)
        claims = claims_for(scenario, chosen[i], design_cls.version)
        c = compare(model, kernel_record, claims, design=design_cls.name)
        out.append((scenario, replace(c, notes=notes, model_error=error)))
    return out


# -- plain-text summary -----------------------------------------------------------------------------------


def _show(r: OpRecord | None, what: str) -> str:
    if r is None:
        return "(missing)"
    if what == "outcome":
        text = str(r.outcome)
        return text if len(text) <= 60 else text[:57] + "..."
    return str(getattr(r, what))


def describe_differences(c: Comparison) -> str:
    """One line per difference in a claimed observable (for test failures and logs)."""
    head = f"model (design {c.design}) vs kernel {c.kernel}"
    lines = [f"{head}: {len(c.differences)} difference(s) in claimed observables"]
    if c.model_error:
        lines.append(f"  the model raised: {c.model_error}")
    for d in c.differences:
        if isinstance(d, OpRow):
            parts = [
                f"{w}: model {_show(d.model, w)}, kernel {_show(d.kernel, w)}"
                for w in d.differs
                if w != "missing"
            ]
            where = f"op {d.index + 1} ({d.thread}" + (f", line {d.line})" if d.line else ")")
            lines.append(f"  {where} `{d.op}`: " + ("; ".join(parts) or "missing"))
        else:
            parts = []
            for w in d.differs:
                if w == "size":
                    parts.append(
                        f"size: model {d.model.size if d.model else '-'}, "
                        f"kernel {d.kernel.size if d.kernel else '-'}"
                    )
                elif w == "contents" and d.model and d.kernel and d.model.contents is not None:
                    parts.append(
                        _contents_difference(d.model.contents, d.kernel.contents or b"", d.claim.masked)
                    )
                else:
                    parts.append(w)
            lines.append(f"  file {d.name}: " + "; ".join(parts))
    return "\n".join(lines)


def _contents_difference(model: bytes, kernel: bytes, masked: frozenset[int]) -> str:
    """Where two file contents first differ (outside ``masked``), with 16 bytes from there."""
    at = next(
        (
            i
            for i in range(max(len(model), len(kernel)))
            if i not in masked and model[i : i + 1] != kernel[i : i + 1]
        ),
        min(len(model), len(kernel)),
    )
    return (
        f"contents differ from byte {at} (of {len(model)} in the model, {len(kernel)} in the kernel): "
        f"model {format_bytes(model[at : at + 16])}, kernel {format_bytes(kernel[at : at + 16])}"
    )
