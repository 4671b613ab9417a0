"""The oracle's Python side without running the probe: program text, output parsing, errors."""

from __future__ import annotations

import pytest

from faultlab.errors import UserError
from faultlab.oracle.build import find_compiler
from faultlab.oracle.errors import (
    CompilerNotFoundError,
    DaxNotActiveError,
    ProbeFailedError,
    UnsupportedScenarioError,
)
from faultlab.oracle.host import run_on_host
from faultlab.oracle.mounts import fs_type
from faultlab.oracle.program import parse_probe_output, parse_time_output, time_program, to_probe_program
from faultlab.results import FileState
from faultlab.scenario.model import FileSpec, Loc, Op, Outcome, Scenario, ThreadSpec


def op(kind: str, text: str, line: int, **fields: object) -> Op:
    return Op(kind=kind, text=text, loc=Loc("s.toml", line), **fields)  # type: ignore[arg-type]


def scenario(fs: str = "tmpfs", **kw: object) -> Scenario:
    t1 = ThreadSpec(
        "writer",
        (
            op(
                "mmap",
                "m = mmap data 0 8192 private rw",
                10,
                var="m",
                file="data",
                length=8192,
                writable=True,
            ),
            op("store", 'store m 4096 "ZZ"', 11, map="m", offset=4096, data=b"ZZ"),
            op("write", 'write data 0 ""', 12, file="data", data=b""),
        ),
    )
    t2 = ThreadSpec(
        "truncator",
        (
            op("truncate", "truncate data 4096", 20, file="data", size=4096),
            op("load", "load m 4096 1", 21, map="m", offset=4096, length=1, owner="writer"),
            op("madvise", "madvise m dontneed", 22, map="m", advice="dontneed", owner="writer"),
            op("read", "read hole 0 3", 23, file="hole", length=3),
        ),
    )
    files = (FileSpec("data", 8192, b"AB"), FileSpec("hole", 100, None, hole=True), FileSpec("z", 3, None))
    return Scenario(title="t", fs=fs, files=files, threads=(t1, t2), path="s.toml", **kw)  # type: ignore[arg-type]


def test_program_text_runs_threads_in_declaration_order() -> None:
    prog = to_probe_program(scenario(), "/dev/shm/x")
    assert prog.text.splitlines() == [
        "dir /dev/shm/x",
        "file f0 8192 fill 4142",
        "file f1 100 hole",
        "file f2 3 zero",
        "thread 0",
        "op 0 mmap m0 f0 0 8192 private rw",
        "op 1 store m0 4096 5a5a",
        "op 2 write f0 0 -",
        "thread 1",
        "op 3 truncate f0 4096",
        "op 4 load m0 4096 1",
        "op 5 madvise m0 dontneed",
        "op 6 read f1 0 3",
        "end",
    ]
    assert [(r.thread, r.line) for r in prog.ops] == [("writer", 10), ("writer", 11), ("writer", 12)] + [
        ("truncator", n) for n in (20, 21, 22, 23)
    ]
    assert prog.files == (("f0", "data"), ("f1", "hole"), ("f2", "z"))
    assert "require-dax" in to_probe_program(scenario(), "/mnt/x", require_dax=True).text


def test_output_becomes_a_run_record() -> None:
    prog = to_probe_program(scenario(), "/d")
    out = "\n".join(
        [
            "res 0 ok 0 0",
            "res 1 ok 1 0",
            "res 2 errno EFBIG 0 0",
            "res 3 ok 0 0",
            "res 4 SIGBUS 0 0",
            "res 5 data 00ff 2 1",
            "res 6 data - 0 0",
            "file f0 4096 4142",
            "file f1 100 -",
            "file f2 3 000000",
        ]
    )
    rec = parse_probe_output(prog, out)
    assert [r.outcome for r in rec.ops] == [
        Outcome.ok(),
        Outcome.ok(),
        Outcome.errno("EFBIG"),
        Outcome.ok(),
        Outcome.signal("SIGBUS"),
        Outcome.of_data(b"\x00\xff"),
        Outcome.of_data(b""),
    ]
    assert (rec.ops[5].minflt, rec.ops[5].majflt) == (2, 1)
    assert (rec.ops[4].thread, rec.ops[4].op, rec.ops[4].line) == ("truncator", "load m 4096 1", 21)
    assert rec.files == {
        "data": FileState(4096, b"AB"),
        "hole": FileState(100, b""),
        "z": FileState(3, b"\0\0\0"),
    }


def test_probe_errors_and_truncated_output_raise() -> None:
    prog = to_probe_program(scenario(), "/d")
    with pytest.raises(DaxNotActiveError, match="f0"):
        parse_probe_output(prog, "error dax-not-active f0\n")
    with pytest.raises(ProbeFailedError, match="incomplete"):
        parse_probe_output(prog, "res 0 ok 0 0\n")
    with pytest.raises(ProbeFailedError, match="unexpected result index"):
        parse_probe_output(prog, "res 1 ok 0 0\n")
    with pytest.raises(ProbeFailedError, match="unexpected line"):
        parse_probe_output(prog, "hello\n")


def test_time_program_and_output() -> None:
    assert time_program("/dev/shm/t", "cow", 16, 3) == "dir /dev/shm/t\ntime cow 16 3\nend\n"
    timing = parse_time_output("time read 5123.4 64\n")
    assert (timing.kind, timing.ns_per_fault, timing.faults) == ("read", 5123.4, 64)
    with pytest.raises(ValueError):
        time_program("/d", "write", 16)


def test_use_before_mmap_and_unsupported_features_are_refused() -> None:
    late = Scenario(
        title="t",
        fs="tmpfs",
        files=(FileSpec("data", 4096, None),),
        threads=(
            ThreadSpec("a", (op("load", "load m 0 1", 5, map="m", length=1),)),
            ThreadSpec(
                "b", (op("mmap", "m = mmap data 0 4096 shared ro", 6, var="m", file="data", length=4096),)
            ),
        ),
    )
    with pytest.raises(UnsupportedScenarioError, match="s.toml:5: .*before any mmap"):
        to_probe_program(late, "/d")
    with pytest.raises(UnsupportedScenarioError, match="memory_limit_pages"):
        to_probe_program(scenario(memory_limit_pages=4), "/d")
    with pytest.raises(UnsupportedScenarioError, match="spaces"):
        to_probe_program(scenario(), "/dir with space")


def test_dax_scenarios_and_mismatched_kernels_are_refused_on_the_host() -> None:
    with pytest.raises(UnsupportedScenarioError, match="--kernel dax-vm") as info:
        run_on_host(scenario("dax"), "host-ext4")
    assert isinstance(info.value, UserError)
    with pytest.raises(UnsupportedScenarioError, match="use --kernel host-ext4"):
        run_on_host(scenario("ext4"), "host-tmpfs")


def test_missing_compiler_names_what_was_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-cc")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CompilerNotFoundError) as info:
        find_compiler()
    message = str(info.value)
    assert "$CC=no-such-cc" in message and "cc, gcc, clang" in message
    assert "apt-get install gcc" in message


MOUNTINFO = r"""22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:25 / /dev/shm rw - tmpfs tmpfs rw
31 30 0:26 / /dev/shm rw - tmpfs tmpfs rw,size=1k
40 22 0:27 / /mnt/my\040disk rw - xfs /dev/vdb rw
"""


def test_fs_type_picks_the_longest_and_topmost_mount() -> None:
    assert fs_type("/dev/shm/faultlab-1", MOUNTINFO) == "tmpfs"
    assert fs_type("/dev/shmx", MOUNTINFO) == "ext4"
    assert fs_type("/mnt/my disk/f", MOUNTINFO) == "xfs"
    assert fs_type("/var/tmp", MOUNTINFO) == "ext4"
