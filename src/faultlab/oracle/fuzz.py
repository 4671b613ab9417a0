"""Random sequential scenarios for comparing the model with a real kernel.

* :func:`scenarios` is a hypothesis strategy: one thread, 1-2 files of 1-4 pages (a fill pattern,
  zeros or a hole, sometimes a partial last page), and ops drawn from mmap (private/shared, r/rw),
  loads and stores inside and beyond EOF and beyond the mapping, read/write of at most 4 KiB,
  truncate down and up, munmap, msync, fsync and madvise dontneed.
* :func:`sample_scenarios` draws a fixed, reproducible list of them (for one VM boot).
* :func:`scenario_toml` writes a scenario as a scenario file (docs/scenarios.md grammar), so a
  difference can be pasted into ``faultlab oracle`` or ``faultlab run``.
* :func:`shrink_batched` minimises a failing scenario when every check is expensive (one VM boot
  per round: all candidates of a round run in the same boot).

``FAULTLAB_FUZZ_EXAMPLES`` (default 300) sets how many examples each host fuzz test runs, and
``FAULTLAB_FUZZ_VM_EXAMPLES`` (default 100) how many scenarios the DAX VM fuzz test runs in its boot.
This module needs hypothesis (the ``test`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from faultlab.errors import ScenarioError
from faultlab.oracle.compare import Comparison, describe_differences
from faultlab.scenario import ScenarioBuilder
from faultlab.scenario.model import PAGE_SIZE, Scenario, format_bytes

P = PAGE_SIZE
EXAMPLES_ENV = "FAULTLAB_FUZZ_EXAMPLES"
VM_EXAMPLES_ENV = "FAULTLAB_FUZZ_VM_EXAMPLES"
DEFAULT_EXAMPLES = 300
DEFAULT_VM_EXAMPLES = 100
THREAD = "t"

FILLS: tuple[str | None, ...] = ("A", "hole", None, "ab", "xyz\n")
SIZE_CUTS = (0, 0, 0, 1, 100, 2048, 4095)  # bytes short of whole pages: a partial last page
IN_PAGE = (0, 1, 100, 2047, 4095)
ACCESS_LENGTHS = (1, 1, 2, 16, 4096)
IO_LENGTHS = (1, 16, 4096)
STORE_BYTES = "BCDE"


def fuzz_examples(default: int = DEFAULT_EXAMPLES, env: str = EXAMPLES_ENV) -> int:
    """How many examples a fuzz test runs: ``$FAULTLAB_FUZZ_EXAMPLES`` (or ``env``), else ``default``."""
    value = os.environ.get(env, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${env} must be a positive number of examples, not {value!r}")
    return int(value)


# -- abstract choices (what hypothesis draws and shrinks) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileChoice:
    pages: int  # 1..4
    cut: int  # bytes short of ``pages`` whole pages
    fill: str | None  # a pattern, "hole", or None for zeros


@dataclass(frozen=True, slots=True)
class OpChoice:
    kind: str
    target: int  # which file or mapping (modulo how many exist)
    a: int = 0
    b: int = 0
    c: int = 0
    flag1: bool = False
    flag2: bool = False


_pos = st.tuples(st.integers(0, 5), st.sampled_from(IN_PAGE)).map(lambda t: t[0] * P + t[1])
_target = st.integers(0, 3)
_mmap = st.builds(
    OpChoice,
    kind=st.just("mmap"),
    target=_target,
    a=st.integers(0, 3),  # first page
    b=st.integers(1, 5),  # pages
    flag1=st.booleans(),  # shared
    flag2=st.booleans() | st.just(True),  # writable (more often)
)


def _access(kind: str) -> st.SearchStrategy[OpChoice]:
    return st.builds(
        OpChoice,
        kind=st.just(kind),
        target=_target,
        a=_pos,
        b=st.sampled_from(ACCESS_LENGTHS),
        c=st.integers(0, len(STORE_BYTES) - 1),
    )


def _io(kind: str) -> st.SearchStrategy[OpChoice]:
    return st.builds(
        OpChoice,
        kind=st.just(kind),
        target=_target,
        a=_pos,
        b=st.sampled_from(IO_LENGTHS),
        c=st.integers(0, len(STORE_BYTES) - 1),
    )


_truncate = st.builds(
    OpChoice,
    kind=st.just("truncate"),
    target=_target,
    a=st.tuples(st.integers(0, 5), st.sampled_from((0, 0, 1, 100, 4095))).map(lambda t: t[0] * P + t[1]),
)


def _on_map(kind: str) -> st.SearchStrategy[OpChoice]:
    return st.builds(OpChoice, kind=st.just(kind), target=_target)


OP_CHOICES: st.SearchStrategy[OpChoice] = st.one_of(
    _access("load"),
    _access("store"),
    _mmap,
    _truncate,
    _io("read"),
    _io("write"),
    _on_map("munmap"),
    _on_map("msync"),
    _on_map("madvise"),
    st.builds(OpChoice, kind=st.just("fsync"), target=_target),
)

FILE_CHOICES: st.SearchStrategy[FileChoice] = st.builds(
    FileChoice, pages=st.integers(1, 4), cut=st.sampled_from(SIZE_CUTS), fill=st.sampled_from(FILLS)
)


def op_lines(files: Sequence[str], choices: Sequence[OpChoice]) -> list[str]:
    """Resolve abstract choices into op lines; map ops before any mmap are dropped."""
    maps: list[str] = []
    lines = []
    for ch in choices:
        if ch.kind == "mmap":
            var = f"m{len(maps)}"
            maps.append(var)
            how = f"{'shared' if ch.flag1 else 'private'} {'rw' if ch.flag2 else 'r'}"
            lines.append(f"{var} = mmap {files[ch.target % len(files)]} {ch.a}p {ch.b}p {how}")
            continue
        if ch.kind in ("load", "store", "munmap", "msync", "madvise"):
            if not maps:
                continue
            m = maps[ch.target % len(maps)]
            if ch.kind == "load":
                lines.append(f"load {m} {ch.a} {ch.b}")
            elif ch.kind == "store":
                lines.append(f"store {m} {ch.a} {format_bytes(STORE_BYTES[ch.c].encode() * ch.b)}")
            elif ch.kind == "madvise":
                lines.append(f"madvise {m} dontneed")
            else:
                lines.append(f"{ch.kind} {m}")
            continue
        f = files[ch.target % len(files)]
        if ch.kind == "read":
            lines.append(f"read {f} {ch.a} {ch.b}")
        elif ch.kind == "write":
            lines.append(f"write {f} {ch.a} {format_bytes(STORE_BYTES[ch.c].lower().encode() * ch.b)}")
        elif ch.kind == "truncate":
            lines.append(f"truncate {f} {ch.a}")
        else:
            lines.append(f"fsync {f}")
    return lines


def build(fs: str, files: Sequence[FileChoice], lines: Sequence[str], title: str = "fuzz") -> Scenario:
    b = ScenarioBuilder(title, fs=fs)
    for i, f in enumerate(files):
        b.file(f"f{i}", size=max(1, f.pages * P - f.cut), fill=f.fill)
    return b.thread(THREAD, *lines).build()


@st.composite
def scenarios(draw: st.DrawFn, fs: str) -> Scenario:
    """A random sequential scenario on ``fs`` (see the module docstring)."""
    files = draw(st.lists(FILE_CHOICES, min_size=1, max_size=2))
    first = draw(_mmap)
    rest = draw(st.lists(OP_CHOICES, min_size=1, max_size=12))
    names = [f"f{i}" for i in range(len(files))]
    return build(fs, files, op_lines(names, [first, *rest]))


class FuzzCase:
    """A generated scenario whose repr is its scenario file, so that hypothesis' "Falsifying
    example" line reads as the file rather than as nested dataclasses."""

    __slots__ = ("scenario",)

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario

    def __repr__(self) -> str:
        return "FuzzCase(scenario file:\n" + scenario_toml(self.scenario) + ")"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """What hypothesis' pretty printer calls (it would otherwise expand the Scenario)."""
        p.text(repr(self))


def cases(fs: str) -> st.SearchStrategy[FuzzCase]:
    """:func:`scenarios`, wrapped in :class:`FuzzCase`."""
    return scenarios(fs).map(FuzzCase)


def sample_scenarios(fs: str, n: int, seed: int = 20240607) -> list[Scenario]:
    """``n`` distinct scenarios drawn from :func:`scenarios` with a fixed seed: the same list on
    every run (hypothesis' generation phase only, no database)."""
    out: dict[str, Scenario] = {}
    attempt = 0
    while len(out) < n:

        @settings(
            max_examples=2 * n,
            phases=[Phase.generate],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis_seed(seed + attempt)
        @given(scenarios(fs))
        def collect(s: Scenario) -> None:
            if len(out) < n:
                out.setdefault(s.digest(), s)

        collect()
        attempt += 1
    return list(out.values())


# -- scenario files -------------------------------------------------------------------------------------


def _basic(text: str) -> str:
    """A TOML basic string: each character of ``text`` (latin-1 for fills) escaped as needed."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def _op_string(text: str) -> str:
    if "'" not in text and all(0x20 <= ord(c) < 0x7F for c in text):
        return f"'{text}'"
    return _basic(text)


def scenario_toml(scenario: Scenario, comparison: Comparison | None = None) -> str:
    """``scenario`` as a scenario file (docs/scenarios.md). With ``comparison``, each op whose
    outcome the model fully claims carries the kernel's outcome as its expectation (``-> ...``),
    so that ``faultlab run`` on the file shows where the model disagrees with the kernel."""
    lines = [f"title = {_basic(scenario.title)}", f"fs = {_basic(scenario.fs)}"]
    mm = getattr(scenario, "mm", "shared")
    if mm != "shared":
        lines.append(f"mm = {_basic(mm)}")
    if scenario.memory_limit_pages is not None:
        lines.append(f'memory_limit = "{scenario.memory_limit_pages}p"')
    if scenario.pmem_size != 1 << 30:
        lines.append(f"pmem_size = {scenario.pmem_size}")
    for f in scenario.files:
        lines += ["", f"[files.{f.name}]", f"size = {f.size}"]
        if f.hole:
            lines.append('fill = "hole"')
        elif f.fill:
            lines.append(f"fill = {_basic(f.fill.decode('latin-1'))}")
    index = 0
    for t in scenario.threads:
        lines += ["", f"[threads.{t.name}]", "ops = ["]
        for op in t.ops:
            text = op.text
            row = comparison.rows[index] if comparison is not None and index < len(comparison.rows) else None
            if row is not None and row.kernel is not None:
                if "outcome" in row.claim.observables and not row.claim.masked:
                    text += f" -> {row.kernel.outcome}"
            elif op.expect is not None:
                text += f" -> {op.expect}"
            lines.append(f"  {_op_string(text)},")
            index += 1
        lines.append("]")
    return "\n".join(lines) + "\n"


def failure_report(scenario: Scenario, comparison: Comparison) -> str:
    """What a failing fuzz example prints: the differences, then the scenario file."""
    return (
        describe_differences(comparison)
        + "\n\nscenario file (each expectation is the kernel's outcome):\n\n"
        + scenario_toml(scenario, comparison)
    )


# -- shrinking when every check costs a VM boot -----------------------------------------------------------


def _ops_text(scenario: Scenario) -> list[str]:
    return [op.text for t in scenario.threads for op in t.ops]


def _rebuild(scenario: Scenario, lines: Sequence[str], files: Sequence[str] | None = None) -> Scenario | None:
    keep = [f for f in scenario.files if files is None or f.name in files]
    b = ScenarioBuilder(scenario.title, fs=scenario.fs)
    for f in keep:
        b.file(f.name, size=f.size, fill="hole" if f.hole else f.fill)
    try:
        return b.thread(scenario.threads[0].name, *lines).build()
    except ScenarioError:
        return None


def shrink_candidates(scenario: Scenario) -> list[Scenario]:
    """Smaller variants of a one-thread scenario, largest cuts first: each half, quarter... of the
    ops removed (where the rest still parses), then each single op, then each file no op uses."""
    if len(scenario.threads) != 1:
        return []
    lines = _ops_text(scenario)
    cuts: list[tuple[int, int]] = []
    size = len(lines) // 2
    while size >= 2:
        cuts += [(i, min(i + size, len(lines))) for i in range(0, len(lines), size)]
        size //= 2
    cuts += [(i, i + 1) for i in range(len(lines))]
    out: list[Scenario] = []
    seen: set[str] = set()
    for lo, hi in cuts:
        rest = lines[:lo] + lines[hi:]
        cand = _rebuild(scenario, rest) if rest else None
        if cand is not None and cand.digest() not in seen:
            seen.add(cand.digest())
            out.append(cand)
    if len(scenario.files) > 1:
        for f in scenario.files:
            cand = _rebuild(scenario, lines, [g.name for g in scenario.files if g.name != f.name])
            if cand is not None:
                out.append(cand)
    return out


def _size(scenario: Scenario) -> tuple[int, int]:
    return (sum(len(t.ops) for t in scenario.threads), len(scenario.files))


def _without(scenario: Scenario, drop: set[int]) -> Scenario | None:
    lines = [t for i, t in enumerate(_ops_text(scenario)) if i not in drop]
    return _rebuild(scenario, lines) if lines else None


def shrink_batched(
    scenario: Scenario, fails: Callable[[Sequence[Scenario]], list[bool]], max_rounds: int = 8
) -> Scenario:
    """Greedy minimisation for expensive checks: each round evaluates, in one call of ``fails``
    (one VM boot), every candidate of :func:`shrink_candidates` plus the previous round's
    scenario without *all* the ops whose single removal still failed, and moves to the smallest
    candidate that still fails. It stops when none fails or after ``max_rounds`` rounds."""
    current = scenario
    combo: Scenario | None = None
    for _ in range(max_rounds):
        cands = shrink_candidates(current)
        if len(current.threads) != 1 or not cands:
            break
        batch = cands + ([combo] if combo is not None else [])
        verdicts = fails(batch)
        failing = [c for c, bad in zip(batch, verdicts, strict=True) if bad]
        if not failing:
            break
        removable = {
            i for i in range(_size(current)[0]) if _dropped_one(current, i) in {c.digest() for c in failing}
        }
        combo = _without(current, removable) if len(removable) > 1 else None
        current = min(failing, key=_size)
    return current


def _dropped_one(scenario: Scenario, index: int) -> str:
    cand = _without(scenario, {index})
    return cand.digest() if cand is not None else ""
