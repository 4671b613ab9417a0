"""Translate a Scenario into the probe's input text, and the probe's output into a RunRecord.

The probe runs the scenario sequentially: threads one after another in declaration order, each
thread's ops in order. Files and mapping variables get probe-safe tokens (``f0``, ``m0``...);
:class:`ProbeProgram` keeps what is needed to map the probe's answers back to the scenario.
"""

from __future__ import annotations

from dataclasses import dataclass

from faultlab.oracle.errors import DaxNotActiveError, ProbeFailedError, UnsupportedScenarioError
from faultlab.results import FileState, OpRecord, RunRecord
from faultlab.scenario.model import PAGE_SIZE, Op, Outcome, Scenario

PROBE_PAGE_SIZE = 4096
"""The probe's page size; it equals the model's (``faultlab.scenario.model.PAGE_SIZE``)."""

assert PAGE_SIZE == PROBE_PAGE_SIZE, "the probe assumes 4 KiB pages, like the model"

TIME_KINDS = ("read", "cow", "shared")
SIGNALS = ("SIGBUS", "SIGSEGV")
MADVICE = ("dontneed",)


@dataclass(frozen=True, slots=True)
class ProbeOp:
    """Where probe op number ``i`` came from."""

    thread: str
    op: str  # the op's text as written in the scenario
    line: int


@dataclass(frozen=True, slots=True)
class ProbeProgram:
    text: str
    ops: tuple[ProbeOp, ...]
    files: tuple[tuple[str, str], ...]  # (probe token, scenario file name), in declaration order


@dataclass(frozen=True, slots=True)
class FaultTiming:
    kind: str  # read, cow or shared
    ns_per_fault: float
    faults: int


def _hex(data: bytes) -> str:
    return data.hex() if data else "-"


def _unhex(text: str, what: str) -> bytes:
    if text == "-":
        return b""
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ProbeFailedError(f"probe output: bad hex in {what}: {text[:40]!r}") from exc


def _check_token(text: str, what: str) -> None:
    if not text or any(c.isspace() for c in text):
        raise UnsupportedScenarioError(f"{what} {text!r} cannot be passed to the probe (empty or has spaces)")


def check_probe_supports(scenario: Scenario) -> None:
    """Refuse what the probe cannot run yet (UnsupportedScenarioError): a ``[setup]`` section,
    mmap placement, mprotect, fallocate, fork, and another thread's map in any op but load and store
    (the probe binds each variable to a fixed address, so a load or store before the other
    thread's mmap gets SIGSEGV, as in the model; its msync/munmap/madvise answers differ)."""
    if scenario.setup is not None:
        raise UnsupportedScenarioError(f"{scenario.setup.loc}: the probe does not run a [setup] section yet")
    for t in scenario.threads:
        for op in t.ops:
            where = f"{op.loc.path}:{op.loc.line}" if op.loc.line else scenario.path
            if op.placement:
                raise UnsupportedScenarioError(f"{where}: the probe places every mapping itself: `{op.text}`")
            if op.kind in ("mprotect", "fallocate", "fork"):
                raise UnsupportedScenarioError(f"{where}: the probe does not run {op.kind} yet: `{op.text}`")
            if op.owner and op.kind not in ("load", "store"):
                raise UnsupportedScenarioError(f"{where}: the probe runs another thread's map only in load and "
                                               f"store: `{op.text}`")


def to_probe_program(
    scenario: Scenario, workdir: str, *, require_dax: bool = False, concurrent: str | None = None
) -> ProbeProgram:
    """The probe input that runs ``scenario`` sequentially with its files in ``workdir``.

    ``require_dax=True`` makes the probe refuse to run unless every file has STATX_ATTR_DAX.
    ``concurrent`` is a probe ``concurrent ...`` directive (see
    :func:`faultlab.oracle.concurrent.concurrent_program`): the program then says which thread
    (0, 1, ... in declaration order) each op belongs to, and runs them concurrently.
    """
    _check_token(workdir, "working directory")
    check_probe_supports(scenario)
    if scenario.memory_limit_pages is not None:
        raise UnsupportedScenarioError(
            f"{scenario.path}: memory_limit_pages is not reproduced by the real-kernel probe"
        )
    lines = [f"dir {workdir}"]
    file_tokens: dict[str, str] = {}
    for i, spec in enumerate(scenario.files):
        token = f"f{i}"
        file_tokens[spec.name] = token
        if spec.hole:
            how = "hole"
        elif spec.fill:
            how = f"fill {spec.fill.hex()}"
        else:
            how = "zero"
        lines.append(f"file {token} {spec.size} {how}")
    if require_dax:
        lines.append("require-dax")
    if concurrent is not None:
        lines.append(concurrent)

    map_tokens: dict[str, str] = {}
    refs: list[ProbeOp] = []
    for t, thread in enumerate(scenario.threads):
        if concurrent is not None and thread.ops:
            lines.append(f"thread {t}")
        for op in thread.ops:
            index = len(refs)
            lines.append(f"op {index} {_op_text(op, file_tokens, map_tokens, scenario.path)}")
            refs.append(ProbeOp(thread=thread.name, op=op.text, line=op.loc.line))
    lines.append("end")
    return ProbeProgram(
        text="\n".join(lines) + "\n",
        ops=tuple(refs),
        files=tuple((file_tokens[f.name], f.name) for f in scenario.files),
    )


def _op_text(op: Op, files: dict[str, str], maps: dict[str, str], path: str) -> str:
    where = f"{op.loc.path}:{op.loc.line}" if op.loc.line else path

    def file_token() -> str:
        if op.file not in files:
            raise UnsupportedScenarioError(f"{where}: `{op.text}` names an undeclared file {op.file!r}")
        return files[op.file]

    def map_token() -> str:
        if op.map not in maps:
            raise UnsupportedScenarioError(
                f"{where}: `{op.text}` uses mapping {op.map!r} before any mmap defines it "
                "(the probe runs threads one after another in declaration order)"
            )
        return maps[op.map]

    match op.kind:
        case "mmap":
            token = maps.setdefault(op.var, f"m{len(maps)}")
            kind = "shared" if op.shared else "private"
            prot = "rw" if op.writable else "ro"
            return f"mmap {token} {file_token()} {op.offset} {op.length} {kind} {prot}"
        case "munmap" | "msync":
            return f"{op.kind} {map_token()}"
        case "madvise":
            if op.advice not in MADVICE:
                raise UnsupportedScenarioError(f"{where}: the probe supports only madvise dontneed")
            return f"madvise {map_token()} {op.advice}"
        case "load":
            return f"load {map_token()} {op.offset} {op.length}"
        case "store":
            return f"store {map_token()} {op.offset} {_hex(op.data)}"
        case "read":
            return f"read {file_token()} {op.offset} {op.length}"
        case "write":
            return f"write {file_token()} {op.offset} {_hex(op.data)}"
        case "truncate":
            return f"truncate {file_token()} {op.size}"
        case "fsync":
            return f"fsync {file_token()}"
    raise UnsupportedScenarioError(f"{where}: the probe does not know op kind {op.kind!r}")


def probe_error(line: str) -> ProbeFailedError:
    """The exception for one ``error ...`` line of the probe's output."""
    rest = line.removeprefix("error").strip()
    if rest.startswith("dax-not-active"):
        return DaxNotActiveError(f"the probe's file is not on an active DAX mount: {rest}")
    return ProbeFailedError(f"the probe stopped: error {rest}")


def outcome_from_words(words: list[str], line: str) -> Outcome:
    """The outcome a probe result line spells with ``words`` (``ok``, ``SIGBUS``, ``data 41``...)."""
    if words == ["ok"]:
        return Outcome.ok()
    if len(words) == 1 and words[0] in SIGNALS:
        return Outcome.signal(words[0])
    if len(words) == 2 and words[0] == "data":
        return Outcome.of_data(_unhex(words[1], "data"))
    if len(words) == 2 and words[0] == "errno":
        return Outcome.errno(words[1])
    raise ProbeFailedError(f"probe output: cannot read outcome in {line[:80]!r}")


def parse_probe_output(program: ProbeProgram, output: str) -> RunRecord:
    """The RunRecord described by the probe's stdout for ``program``."""
    record = RunRecord()
    names = dict(program.files)
    for line in output.splitlines():
        words = line.split()
        if not words:
            continue
        head = words[0]
        if head == "error":
            raise probe_error(line)
        if head == "res" and len(words) >= 5:
            index = int(words[1])
            if index != len(record.ops) or index >= len(program.ops):
                raise ProbeFailedError(f"probe output: unexpected result index in {line[:80]!r}")
            ref = program.ops[index]
            record.ops.append(
                OpRecord(
                    thread=ref.thread,
                    op=ref.op,
                    outcome=outcome_from_words(words[2:-2], line),
                    minflt=int(words[-2]),
                    majflt=int(words[-1]),
                    line=ref.line,
                )
            )
        elif head == "file" and len(words) == 4 and words[1] in names:
            contents = _unhex(words[3], f"file {words[1]}")
            record.files[names[words[1]]] = FileState(size=int(words[2]), contents=contents)
        elif line == "dax active":
            continue
        else:
            raise ProbeFailedError(f"probe output: unexpected line {line[:80]!r}")
    if len(record.ops) != len(program.ops) or len(record.files) != len(program.files):
        raise ProbeFailedError(
            f"probe output is incomplete: {len(record.ops)}/{len(program.ops)} op results, "
            f"{len(record.files)}/{len(program.files)} files"
        )
    return record


def time_program(workdir: str, kind: str, pages: int, reps: int = 7) -> str:
    """Probe input for timing mode: touch ``pages`` pages once per rep, median over ``reps``."""
    _check_token(workdir, "working directory")
    if kind not in TIME_KINDS:
        raise ValueError(f"time kind must be one of {', '.join(TIME_KINDS)}, not {kind!r}")
    if pages < 1 or reps < 1:
        raise ValueError("pages and reps must be positive")
    return f"dir {workdir}\ntime {kind} {pages} {reps}\nend\n"


def parse_time_output(output: str) -> FaultTiming:
    """The one ``time`` line of a timing-mode run."""
    for line in output.splitlines():
        words = line.split()
        if words[:1] == ["error"]:
            raise probe_error(line)
        if len(words) == 4 and words[0] == "time":
            return FaultTiming(kind=words[1], ns_per_fault=float(words[2]), faults=int(words[3]))
    raise ProbeFailedError(f"probe output has no time line: {output[:200]!r}")
