"""Translate a Scenario into the probe's input text, and the probe's output into a RunRecord.

The probe runs the scenario sequentially: the ``[setup]`` section's ops, then the threads one after
another in declaration order, each thread's ops in order (a forked child's in its own process,
which the probe forks at the parent's ``fork`` op: the child must be declared after its parent).
Files and mapping variables get probe-safe tokens (``f0``, ``m0``...); :class:`ProbeProgram` keeps
what is needed to map the probe's answers back to the scenario.
"""

from __future__ import annotations

from dataclasses import dataclass

from faultlab.oracle.errors import DaxNotActiveError, ProbeFailedError, UnsupportedScenarioError
from faultlab.results import FileState, OpRecord, RunRecord
from faultlab.scenario.model import PAGE_SIZE, SETUP, Op, Outcome, Scenario

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


PROBE_OP_KINDS = ("mmap", "munmap", "load", "store", "read", "write", "truncate", "msync", "fsync", "madvise",
                  "mprotect", "fallocate", "fork")
"""The ops the probe runs (``crash`` is a power failure: the crash checker's, not the probe's)."""


def check_probe_supports(scenario: Scenario) -> None:
    """Refuse what the probe cannot run (UnsupportedScenarioError), naming the first such op: an
    op kind it has no system call for (``crash``), and another thread's map that its maker mmaps
    more than once (the probe binds a variable made by one thread and used by another to one
    mapping; which of several the user sees depends on the interleaving), and a forked child
    declared before the thread that forks it (the probe reads the threads in declaration order)."""
    made: dict[tuple[str, str], int] = {}
    order = [t.name for t in scenario.threads]
    for t in scenario.threads:
        if t.forked_by and order.index(t.forked_by) > order.index(t.name):
            where = f"{t.loc.path}:{t.loc.line}" if t.loc.line else scenario.path
            raise UnsupportedScenarioError(
                f"{where}: thread {t.name} is forked by {t.forked_by}, declared after it: the probe reads the "
                "threads in declaration order (declare the child after its parent)"
            )
    for t in scenario.all_threads():
        for op in t.ops:
            if op.kind == "mmap":
                made[(t.name, op.var)] = made.get((t.name, op.var), 0) + 1
    for t in scenario.all_threads():
        for op in t.ops:
            where = f"{op.loc.path}:{op.loc.line}" if op.loc.line else scenario.path
            if op.kind not in PROBE_OP_KINDS:
                raise UnsupportedScenarioError(f"{where}: the probe does not run {op.kind}: `{op.text}`")
            if op.sync:
                raise UnsupportedScenarioError(f"{where}: the probe does not map with MAP_SYNC: `{op.text}`")
            if op.owner and made.get((op.owner, op.map), 0) > 1:
                raise UnsupportedScenarioError(
                    f"{where}: `{op.text}` uses map {op.map!r}, which {op.owner} mmaps more than once: the probe "
                    "binds another thread's map to one mapping"
                )
            if t.forked_by and op.map and not made.get((t.name, op.map)):
                for maker in (t.forked_by, SETUP):
                    if made.get((maker, op.map), 0) > 1:
                        raise UnsupportedScenarioError(
                            f"{where}: `{op.text}` uses map {op.map!r}, which {maker} mmaps more than once: "
                            "the probe binds a forked child's inherited map to one mapping"
                        )


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

    map_tokens: dict[tuple[str, str], str] = {}
    thread_index = {t.name: i for i, t in enumerate(scenario.threads)}
    inherited: set[tuple[str, str]] = set()  # a forked child's copies of its parent's (and set-up's) maps
    refs: list[ProbeOp] = []
    # the probe needs each op's thread in the concurrent mode, and to tell another thread's map
    # (a pointer that holds no address until its mmap returns) from the thread's own
    threaded = concurrent is not None or scenario.setup is not None or any(
        op.owner or op.kind == "fork" for t in scenario.threads for op in t.ops
    )
    if scenario.setup is not None and scenario.setup.ops:
        lines.append("setup")
        for op in scenario.setup.ops:
            lines.append(f"op {len(refs)} {_op_text(op, SETUP, file_tokens, map_tokens, scenario.path, inherited)}")
            refs.append(ProbeOp(thread=SETUP, op=op.text, line=op.loc.line))
    for t, thread in enumerate(scenario.threads):
        if threaded and thread.ops:
            lines.append(f"thread {t}")
        for op in thread.ops:
            index = len(refs)
            if op.kind == "fork":
                # the child's maps are the parent's at the fork (and the set-up's): the same tokens
                for (maker, var), token in list(map_tokens.items()):
                    if maker == SETUP and (op.child, var) not in map_tokens:
                        map_tokens[(op.child, var)] = token
                        inherited.add((op.child, var))
                for (maker, var), token in list(map_tokens.items()):
                    if maker == thread.name:
                        map_tokens[(op.child, var)] = token
                        inherited.add((op.child, var))
                lines.append(f"op {index} fork {thread_index[op.child]}")
            else:
                text = _op_text(op, thread.name, file_tokens, map_tokens, scenario.path, inherited)
                lines.append(f"op {index} {text}")
            refs.append(ProbeOp(thread=thread.name, op=op.text, line=op.loc.line))
    lines.append("end")
    return ProbeProgram(
        text="\n".join(lines) + "\n",
        ops=tuple(refs),
        files=tuple((file_tokens[f.name], f.name) for f in scenario.files),
    )


def _op_text(
    op: Op,
    thread: str,
    files: dict[str, str],
    maps: dict[tuple[str, str], str],
    path: str,
    inherited: set[tuple[str, str]],
) -> str:
    where = f"{op.loc.path}:{op.loc.line}" if op.loc.line else path

    def file_token() -> str:
        if op.file not in files:
            raise UnsupportedScenarioError(f"{where}: `{op.text}` names an undeclared file {op.file!r}")
        return files[op.file]

    def map_token() -> str:
        key = (op.owner or thread, op.map)
        if key not in maps and not op.owner:
            key = ("", op.map)  # an Op built by hand without its owner: the latest mmap of that name
        if key not in maps:
            raise UnsupportedScenarioError(
                f"{where}: `{op.text}` uses mapping {op.map!r} before any mmap defines it "
                "(the probe reads the set-up, then the threads in declaration order: declare the thread "
                "that makes it first)"
            )
        return maps[key]

    match op.kind:
        case "mmap":
            if (thread, op.var) in inherited:  # a forked child's own mapping: not the inherited one
                inherited.discard((thread, op.var))
                del maps[(thread, op.var)]
            token = maps.setdefault((thread, op.var), f"m{len({t for k, t in maps.items() if k[0]})}")
            maps[("", op.var)] = token
            kind = "shared" if op.shared else "private"
            prot = "rw" if op.writable else "ro"
            place = {"": "", "unaligned": " unaligned", "at": f" at {op.addr:#x}"}[op.placement]
            return f"mmap {token} {file_token()} {op.offset} {op.length} {kind} {prot}{place}"
        case "mprotect":
            return f"mprotect {map_token()} {'rw' if op.writable else 'ro'}"
        case "fallocate":
            if op.advice != "punch":
                raise UnsupportedScenarioError(f"{where}: the probe supports only fallocate punch")
            return f"fallocate {file_token()} punch {op.offset} {op.length}"
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
