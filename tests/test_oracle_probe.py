"""The real-kernel probe on this machine: what the kernel does, asserted through faultlab's oracle.

These build ``probe.c`` and run scenarios on host tmpfs (/dev/shm) and host ext4 (/var/tmp or
/tmp). Files are written in 4 KiB chunks and mappings sit at 2 MiB-aligned addresses, so the
fault counts are deterministic. They skip only when no C compiler exists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from faultlab.oracle.build import build_probe, cache_dir
from faultlab.oracle.errors import CompilerNotFoundError, DaxNotActiveError, OracleError
from faultlab.oracle.host import host_workdir, run_on_host, run_probe, time_faults_on_host
from faultlab.oracle.measure import FAULT_FACTS, measure_fact
from faultlab.oracle.measure import main as measure_main
from faultlab.oracle.program import parse_time_output, time_program
from faultlab.results import FileState, RunRecord
from faultlab.scenario import ScenarioBuilder
from faultlab.scenario.model import FileSpec, Loc, Op, Outcome, Scenario, ThreadSpec

P = 4096
FILESYSTEMS = ["tmpfs", "ext4"]


@pytest.fixture(scope="session", autouse=True)
def probe() -> Path:
    try:
        return build_probe()
    except CompilerNotFoundError as exc:
        pytest.skip(str(exc))


# -- building scenarios by hand ----------------------------------------------------------------

_line = 0


def _op(kind: str, text: str, **fields: object) -> Op:
    global _line
    _line += 1
    return Op(kind=kind, text=text, loc=Loc("<test>", _line), **fields)  # type: ignore[arg-type]


def mmap(var: str, file: str, offset: int, length: int, shared: bool, writable: bool = True) -> Op:
    how = f"{'shared' if shared else 'private'} {'rw' if writable else 'ro'}"
    return _op(
        "mmap",
        f"{var} = mmap {file} {offset} {length} {how}",
        var=var,
        file=file,
        offset=offset,
        length=length,
        shared=shared,
        writable=writable,
    )


def load(m: str, offset: int, length: int = 1) -> Op:
    return _op("load", f"load {m} {offset} {length}", map=m, offset=offset, length=length)


def store(m: str, offset: int, data: bytes) -> Op:
    return _op("store", f"store {m} {offset} {data!r}", map=m, offset=offset, data=data)


def truncate(file: str, size: int) -> Op:
    return _op("truncate", f"truncate {file} {size}", file=file, size=size)


def read(file: str, offset: int, length: int) -> Op:
    return _op("read", f"read {file} {offset} {length}", file=file, offset=offset, length=length)


def write(file: str, offset: int, data: bytes) -> Op:
    return _op("write", f"write {file} {offset} {data!r}", file=file, offset=offset, data=data)


def simple(kind: str, **fields: str) -> Op:
    return _op(kind, f"{kind} {' '.join(fields.values())}", **fields)


def run(fs: str, files: list[FileSpec], *ops: Op, threads: int = 1) -> RunRecord:
    per = -(-len(ops) // threads)
    specs = tuple(ThreadSpec(f"t{i}", tuple(ops[i * per : (i + 1) * per])) for i in range(threads))
    scenario = Scenario(title="probe test", fs=fs, files=tuple(files), threads=specs, path="<test>")
    return run_on_host(scenario, f"host-{fs}")


def faults(record: RunRecord) -> list[tuple[int, int]]:
    return [(r.minflt, r.majflt) for r in record.ops]


def data_file(pages: int = 8, fill: bytes = b"A", size: int | None = None) -> FileSpec:
    return FileSpec("data", pages * P if size is None else size, fill)


# -- fault counts (file written with 4 KiB write()s: order-0 folios) ----------------------------


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_private_write_first_takes_one_fault_and_leaves_the_file(fs: str) -> None:
    rec = run(
        fs,
        [data_file()],
        mmap("m", "data", 0, 8 * P, shared=False),
        store("m", 0, b"X"),
        store("m", P, b"Y"),  # write faults never fault-around
        load("m", 0, 2),
    )
    assert faults(rec) == [(0, 0), (1, 0), (1, 0), (0, 0)]
    assert rec.ops[3].outcome == Outcome.of_data(b"XA")
    assert rec.files["data"].contents == b"A" * 8 * P


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_private_read_then_write_takes_one_plus_one(fs: str) -> None:
    rec = run(
        fs,
        [data_file()],
        mmap("m", "data", 0, 8 * P, shared=False),
        load("m", 3 * P),
        store("m", 3 * P, b"Z"),
    )
    assert faults(rec)[1:] == [(1, 0), (1, 0)]
    assert rec.ops[1].outcome == Outcome.of_data(b"A")


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_shared_write_first_takes_one_fault_and_reaches_the_file(fs: str) -> None:
    rec = run(fs, [data_file()], mmap("m", "data", 0, 8 * P, shared=True), store("m", P + 5, b"S"))
    assert faults(rec)[1] == (1, 0)
    assert rec.files["data"].contents[P + 4 : P + 7] == b"ASA"


@pytest.mark.parametrize(("fs", "write_faults"), [("tmpfs", 0), ("ext4", 1)])
def test_shared_read_then_write_needs_page_mkwrite_only_on_ext4(fs: str, write_faults: int) -> None:
    rec = run(
        fs,
        [data_file()],
        mmap("m", "data", 0, 8 * P, shared=True),
        load("m", 0),
        store("m", 0, b"W"),
        store("m", 2 * P, b"N"),  # a neighbour mapped (read-only on ext4) by fault-around
    )
    assert faults(rec)[1:] == [(1, 0), (write_faults, 0), (write_faults, 0)]


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_sequential_read_of_64_pages_faults_at_16_page_window_starts(fs: str) -> None:
    rec = run(
        fs,
        [data_file(64)],
        mmap("m", "data", 0, 64 * P, shared=False, writable=False),
        *(load("m", i * P) for i in range(64)),
    )
    loads = rec.ops[1:]
    assert [i for i, r in enumerate(loads) if r.minflt] == [0, 16, 32, 48]
    assert sum(r.minflt for r in loads) == 4
    assert all(r.majflt == 0 for r in loads)


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_fault_around_window_is_clipped_to_the_vma(fs: str) -> None:
    # file offset 5 pages, 2 MiB-aligned VA: windows follow the virtual address, not the offset
    rec = run(
        fs,
        [data_file(64)],
        mmap("m", "data", 5 * P, 40 * P, shared=False, writable=False),
        *(load("m", i * P) for i in range(40)),
    )
    assert [i for i, r in enumerate(rec.ops[1:]) if r.minflt] == [0, 16, 32]


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_unaligned_and_at_mappings_clip_fault_around_like_the_model(fs: str) -> None:
    """Three pages below a 2 MiB boundary (``unaligned``, or ``at`` such an address): a read fault
    on page 1 maps pages 0-2 only, so page 3 faults again and page 4 does not (the model's
    tests/test_shared_maps.py counts the same window)."""
    for placement in (" unaligned", " at 0x7f0000ffd000"):
        sc = (ScenarioBuilder("t", fs=fs).file("data", "32p", "A")
              .thread("t", f"m = mmap data 0 32p shared r{placement}", "load m 1p", "load m 2p", "load m 0",
                      "load m 3p", "load m 4p").build())
        rec = run_on_host(sc, f"host-{fs}")
        assert [r.minflt for r in rec.ops] == [0, 1, 0, 0, 1, 0], placement


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_setup_at_mprotect_and_punch_sequentially(fs: str) -> None:
    sc = (ScenarioBuilder("t", fs=fs).file("data", "2p", "A")
          .setup("s = mmap data 0 2p shared rw")
          .thread("t", "m = mmap data 0 1p shared r at 0x50000000", "n = mmap data 0 1p shared r at 0x50000000",
                  "o = mmap data 0 1p shared r at 0x50000800", "load m 0",
                  "mprotect s r", "store s 0 X", "mprotect s rw", "store s 0 Y",
                  "fallocate data punch 1p 1p", "load s 1p", "munmap s", "mprotect s rw").build())
    rec = run_on_host(sc, f"host-{fs}")
    assert [str(r.outcome) for r in rec.ops] == [
        "ok", "ok", "EEXIST", "EINVAL", '"A"', "ok", "SIGSEGV", "ok", "ok", "ok", '"\\x00"', "ok", "ENOMEM"]
    assert rec.ops[0].thread == "[setup]"
    assert rec.files["data"].contents == b"Y" + b"A" * (P - 1) + b"\0" * P


# -- truncate and EOF ---------------------------------------------------------------------------


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_truncate_unmaps_a_cowed_private_page_so_a_load_gets_sigbus(fs: str) -> None:
    rec = run(
        fs,
        [data_file(2)],
        mmap("m", "data", 0, 2 * P, shared=False),
        store("m", P, b"C"),
        truncate("data", P),
        load("m", P),
        load("m", 0),
    )
    assert [r.outcome for r in rec.ops[2:]] == [Outcome.ok(), Outcome.signal("SIGBUS"), Outcome.of_data(b"A")]
    assert rec.files["data"].size == P


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_truncate_then_extend_loses_the_cow_data(fs: str) -> None:
    rec = run(
        fs,
        [data_file(2)],
        mmap("m", "data", 0, 2 * P, shared=False),
        store("m", P, b"C"),
        truncate("data", P),
        truncate("data", 2 * P),
        load("m", P, 2),
    )
    assert rec.ops[-1].outcome == Outcome.of_data(b"\0\0")


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_bytes_past_eof_in_the_last_page_read_as_zero(fs: str) -> None:
    rec = run(
        fs, [data_file(size=4196)], mmap("m", "data", 0, 2 * P, shared=True, writable=False), load("m", P, P)
    )
    assert rec.ops[1].outcome == Outcome.of_data(b"A" * 100 + b"\0" * (P - 100))


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_partial_truncate_zeroes_the_tail_of_the_mapped_last_page(fs: str) -> None:
    rec = run(
        fs,
        [data_file(2)],
        mmap("m", "data", 0, 2 * P, shared=True),
        load("m", P),
        truncate("data", 4196),
        load("m", 4190, 12),
    )
    assert rec.ops[-1].outcome == Outcome.of_data(b"A" * 6 + b"\0" * 6)


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_ltp_mmap13_store_past_eof_page_gets_sigbus(fs: str) -> None:
    # ftruncate to half a page, map 2 pages MAP_SHARED, write to addr + page + 1
    rec = run(
        fs,
        [data_file(1)],
        truncate("data", P // 2),
        mmap("m", "data", 0, 2 * P, shared=True),
        store("m", P + 1, b"x"),
        store("m", P // 2 + 10, b"q"),  # inside the last page, past EOF: allowed
    )
    assert [r.outcome for r in rec.ops] == [
        Outcome.ok(),
        Outcome.ok(),
        Outcome.signal("SIGBUS"),
        Outcome.ok(),
    ]
    assert rec.files["data"] == FileState(size=P // 2, contents=b"A" * (P // 2))


@pytest.mark.parametrize("fs", FILESYSTEMS)
def test_a_store_that_faults_part_way_keeps_the_bytes_before_the_fault(fs: str) -> None:
    rec = run(
        fs,
        [data_file(1)],
        mmap("m", "data", 0, 2 * P, shared=True),
        store("m", P - 2, b"XYZW"),
        load("m", P - 3, 3),
    )
    assert rec.ops[1].outcome == Outcome.signal("SIGBUS")
    assert rec.ops[2].outcome == Outcome.of_data(b"AXY")


# -- probe mechanics: syscalls, errnos, signals --------------------------------------------------


def test_syscall_outcomes_and_sequential_threads() -> None:
    rec = run(
        "tmpfs",
        [data_file(2), FileSpec("empty", 0, None), FileSpec("sparse", 2 * P, None, hole=True)],
        mmap("m", "data", 0, 2 * P, shared=True),
        mmap("bad", "data", 3, P, shared=False),  # unaligned offset
        read("data", 2 * P, 10),  # at EOF
        write("data", P - 1, b"pq"),
        read("data", P - 2, 4),
        simple("msync", map="m"),
        simple("fsync", file="data"),
        simple("madvise", map="m", advice="dontneed"),
        load("m", P - 1, 2),
        simple("munmap", map="m"),
        load("m", 0),
        simple("msync", map="m"),  # the range is unmapped now
        mmap("s", "sparse", 0, 2 * P, shared=False, writable=False),
        load("s", P, 2),
        threads=2,
    )
    outcomes = [r.outcome for r in rec.ops]
    assert outcomes == [
        Outcome.ok(),
        Outcome.errno("EINVAL"),
        Outcome.of_data(b""),
        Outcome.ok(),
        Outcome.of_data(b"Apq" + b"A"),
        Outcome.ok(),
        Outcome.ok(),
        Outcome.ok(),
        Outcome.of_data(b"pq"),
        Outcome.ok(),
        Outcome.signal("SIGSEGV"),
        Outcome.errno("ENOMEM"),
        Outcome.ok(),
        Outcome.of_data(b"\0\0"),
    ]
    assert [r.thread for r in rec.ops] == ["t0"] * 7 + ["t1"] * 7
    assert rec.ops[8].minflt == 1  # madvise(DONTNEED) dropped the PTE
    assert rec.files["empty"].size == 0 and rec.files["empty"].contents == b""
    assert rec.files["sparse"].contents == b"\0" * 2 * P


def test_require_dax_refuses_a_non_dax_file() -> None:
    with host_workdir("host-tmpfs") as wd:
        text = f"dir {wd}\nfile f0 4096 zero\nrequire-dax\nop 0 fsync f0\nend\n"
        with pytest.raises(DaxNotActiveError, match="dax-not-active f0"):
            run_probe(build_probe(), text)


def test_static_probe_builds_and_runs() -> None:
    binary = build_probe(static=True)
    assert binary.name.endswith("-static")
    with host_workdir("host-tmpfs") as wd:
        out = run_probe(binary, f"dir {wd}\nfile f0 5 fill 41\nend\n")
    assert out == "file f0 5 4141414141\n"


def test_build_is_cached_per_source_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = build_probe()
    assert first.parent == cache_dir() == tmp_path / "faultlab"
    mtime = os.stat(first).st_mtime_ns
    assert build_probe() == first and os.stat(first).st_mtime_ns == mtime


# -- timing mode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", FILESYSTEMS)
@pytest.mark.parametrize(("kind", "expected_faults"), [("read", 16), ("cow", 256), ("shared", 256)])
def test_time_mode_counts_faults_and_times_them(fs: str, kind: str, expected_faults: int) -> None:
    with host_workdir(f"host-{fs}") as wd:
        timing = parse_time_output(run_probe(build_probe(), time_program(str(wd), kind, 256, reps=3)))
        assert os.listdir(wd) == []  # the probe removed its file
    assert timing.kind == kind and timing.faults == expected_faults
    assert 10 < timing.ns_per_fault < 10_000_000


def test_time_faults_on_host_returns_ns_per_fault() -> None:
    # A COW fault allocates and copies one page: docs/benchmarks.md measured 1.6 us (tmpfs) on this
    # kind of machine. The range leaves room for a slow or loaded machine, not for a wrong unit
    # (seconds, or ns per run instead of per fault, would fall outside it).
    ns = time_faults_on_host("cow", 64, kernel="host-ext4", reps=1)
    assert 100 < ns < 1_000_000
    with pytest.raises(OracleError, match="time kind must be one of read, cow, shared, not 'write'"):
        time_faults_on_host("write", 64)
    with pytest.raises(OracleError, match="unknown host kernel 'dax-vm'"):
        time_faults_on_host("cow", 64, kernel="dax-vm")


# -- the measurement script behind docs/fidelity.md ----------------------------------------------


def test_measure_script_reproduces_a_documented_row(capsys: pytest.CaptureFixture[str]) -> None:
    row = next(f for f in FAULT_FACTS if f.label == "shared read, then write the same page")
    assert [measure_fact(row, k) for k in ("host-tmpfs", "host-ext4")] == ["1 + 0", "1 + 1"]
    assert measure_main(["--no-timing"]) == 0
    out = capsys.readouterr().out
    row64 = "| sequential read, 64 pages (pages that faulted) | " + ("0,16,32,48 (4 faults) | " * 2).rstrip()
    assert row64 in out


# -- fork ------------------------------------------------------------------------------------------


def test_a_forked_child_sees_the_parents_private_copy_and_its_own_store_stays_its_own() -> None:
    # Sequential: [setup], the parent, the child (after the fork), then another thread of the parent's
    # process, which must not see the child's store. The fork copied the COW page's PTE (the VMA has
    # an anon_vma), so the child's load takes no fault and its store copies the page (mapcount 2).
    sc = (ScenarioBuilder("fork", fs="tmpfs").file("f", "2p", "A")
          .setup("m = mmap f 0 2p private rw")
          .thread("parent", "store m 0 P", "fork child", "load m 0 2")
          .thread("child", "load m 0 2", "store m 1 C", "load m 0 2", "load m 1p", "read f 0 2",
                  "n = mmap f 0 1p shared rw", "store n 0 S")
          .thread("later", "load m 0 2", "load m 1p")
          .build())
    rec = run_on_host(sc, "host-tmpfs")
    assert [(r.thread, str(r.outcome)) for r in rec.ops] == [
        ("[setup]", "ok"), ("parent", "ok"), ("parent", "ok"), ("parent", '"PA"'),
        ("child", '"PA"'), ("child", "ok"), ("child", '"PC"'), ("child", '"A"'), ("child", '"AA"'),
        ("child", "ok"), ("child", "ok"),
        ("later", '"PA"'), ("later", '"A"'),
    ]
    child = [r for r in rec.ops if r.thread == "child"]
    assert [r.minflt for r in child[:3]] == [0, 1, 0]
    assert rec.files["f"].contents == b"S" + b"A" * (2 * P - 1)  # the child's shared store reached the file


@pytest.mark.parametrize("mm", ["shared", "per-thread"])
def test_a_forked_child_runs_concurrently_and_is_reaped_every_run(mm: str) -> None:
    from faultlab.oracle.concurrent import run_concurrent_on_host

    sc = (ScenarioBuilder("fork", fs="tmpfs", mm=mm).file("f", "1p", "A")
          .thread("parent", "m = mmap f 0 1p private rw", "store m 0 P", "fork child", "store m 1 Q",
                  "load m 0 2")
          .thread("child", "load m 0 2", "store m 1 C", "load m 0 2", "load m 1p")
          .build())
    result = run_concurrent_on_host(sc, "host-tmpfs", 300)
    assert result.workers == ("threads" if mm == "shared" else "processes")
    [(outcome, (runs, _first))] = result.outcomes.items()
    assert runs == 300
    assert [r for _t, _o, r in outcome.ops] == ["ok", "ok", "ok", "ok", '"PQ"', '"PA"', "ok", '"PC"', "SIGSEGV"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("thread 1\nop 0 fork 1\n", "the child must be a later thread (2..15)"),
        ("setup\nop 0 fork 1\n", "fork in the set-up"),
        ("op 0 fork 1\nop 1 fork 1\n", "thread 1 is forked twice"),
        ("op 0 fork 1\nthread 1\nop 1 fork 2\n", "a forked child cannot fork again"),
        ("thread 1\nop 0 read f0 0 1\nthread 0\nop 1 fork 1\n", "thread 1 has ops before its fork"),
    ],
)
def test_the_probe_refuses_a_fork_it_cannot_run(body: str, message: str) -> None:
    with host_workdir("host-tmpfs") as wd:
        with pytest.raises(OracleError, match=re.escape(message)):
            run_probe(build_probe(), f"dir {wd}\nfile f0 1 zero\n{body}end\n")


@pytest.mark.parametrize("mode", ["", "concurrent 20 0 threads 100000\n", "concurrent 20 0 processes 100000\n"])
def test_a_forked_child_without_ops_is_reaped(mode: str) -> None:
    with host_workdir("host-tmpfs") as wd:
        out = run_probe(build_probe(), f"dir {wd}\nfile f0 1 zero\n{mode}thread 0\nop 0 fork 1\nop 1 read f0 0 1\n"
                                       "thread 1\nend\n")
    assert ("res 0 ok\nres 1 data 00\n" if mode else "res 0 ok ") in out
