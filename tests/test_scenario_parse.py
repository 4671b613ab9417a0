"""The scenario grammar: TOML files and the builder API to Scenario objects, and their errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faultlab.errors import ScenarioError
from faultlab.scenario import (
    FileSpec,
    Loc,
    Op,
    Outcome,
    Scenario,
    ScenarioBuilder,
    ThreadSpec,
    format_bytes,
    load_scenario,
    parse_bytes,
    parse_scenario,
    parse_size,
)

SEED = Path(__file__).resolve().parents[1] / "scenarios" / "seed" / "cow-vs-truncate.toml"
P = "s.toml"


HEADER = (
    'title = "t"\n'  # 1
    'fs = "dax"\n'  # 2
    '[files.data]\nsize = "2p"\n'  # 3-4
    "[files.log]\nsize = 10\n"  # 5-6
    "[threads.t]\nops = [\n"  # 7-8
    '  "m = mmap data 0 2p shared rw",\n'  # 9
)


def toml_str(op: str) -> str:
    """``op`` as a TOML literal string (no escapes processed), or a basic string if it holds a '."""
    if "'" not in op:
        return f"'{op}'"
    return '"' + op.replace("\\", "\\\\").replace('"', '\\"') + '"'


def scenario_with_ops(*ops: str) -> str:
    """Files ``data`` (2 pages) and ``log`` (10 bytes); thread ``t`` maps ``m``, then ``ops`` from line 10."""
    return HEADER + "".join(f"  {toml_str(op)},\n" for op in ops) + "]\n"


def parse_ops(*ops: str) -> tuple[Op, ...]:
    return parse_scenario(scenario_with_ops(*ops), P).threads[0].ops[1:]


def parse_op_line(op: str) -> Op:
    return parse_ops(op)[0]


def error_of(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, P)
    return info.value


def op_error(op: str) -> tuple[str, str]:
    """(where, message) of the error for ``op`` placed at line 10."""
    e = error_of(scenario_with_ops(op))
    return e.where, e.message


# --------------------------------------------------------------------------------------------------
# the seed file


def test_seed_file_exact_objects() -> None:
    path = str(SEED)
    sc = load_scenario(path)
    assert sc == Scenario(
        title="A private write fault on a DAX file races with truncate",
        fs="dax",
        files=(FileSpec(name="data", size=8192, fill=b"A", hole=False, loc=Loc(path, 4)),),
        threads=(
            ThreadSpec(
                name="faulter",
                ops=(
                    Op(
                        kind="mmap",
                        text="m = mmap data 0 2p private rw",
                        loc=Loc(path, 10),
                        var="m",
                        file="data",
                        offset=0,
                        length=8192,
                        shared=False,
                        writable=True,
                    ),
                    Op(kind="store", text="store m 1p B", loc=Loc(path, 11), map="m", offset=4096, data=b"B"),
                ),
                loc=Loc(path, 8),
            ),
            ThreadSpec(
                name="truncator",
                ops=(
                    Op(kind="truncate", text="truncate data 1p", loc=Loc(path, 15), file="data", size=4096),
                ),
                loc=Loc(path, 14),
            ),
        ),
        path=path,
        memory_limit_pages=None,
        pmem_size=1 << 30,
    )
    # locations are part of equality: check them explicitly too
    assert [op.loc.line for t in sc.threads for op in t.ops] == [10, 11, 15]


def test_seed_file_builder_equivalent() -> None:
    built = (
        ScenarioBuilder("A private write fault on a DAX file races with truncate", fs="dax")
        .file("data", size="2p", fill="A")
        .thread("faulter", "m = mmap data 0 2p private rw", "store m 1p B")
        .thread("truncator", "truncate data 1p")
        .build()
    )
    loaded = load_scenario(str(SEED))
    assert built.digest() == loaded.digest()
    assert built.path == "<builder>"
    assert all(op.loc == Loc("<builder>", 0) for t in built.threads for op in t.ops)
    assert strip_locs(built) == strip_locs(dataclasses.replace(loaded, path="<builder>"))


def strip_locs(sc: Scenario) -> Scenario:
    nowhere = Loc("", 0)
    files = tuple(dataclasses.replace(f, loc=nowhere) for f in sc.files)
    threads = tuple(
        dataclasses.replace(t, loc=nowhere, ops=tuple(dataclasses.replace(o, loc=nowhere) for o in t.ops))
        for t in sc.threads
    )
    return dataclasses.replace(sc, files=files, threads=threads)


# --------------------------------------------------------------------------------------------------
# every op kind


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (
            "n = mmap log 1p 3p private r",
            dict(
                kind="mmap", var="n", file="log", offset=4096, length=3 * 4096, shared=False, writable=False
            ),
        ),
        (
            "n = mmap data 0 8192 shared rw",
            dict(kind="mmap", var="n", file="data", offset=0, length=8192, shared=True, writable=True),
        ),
        ("munmap m", dict(kind="munmap", map="m")),
        ("load m 1p", dict(kind="load", map="m", offset=4096, length=1)),
        ("load m 1p+100 12", dict(kind="load", map="m", offset=4196, length=12)),
        ("store m 4097 XYZ", dict(kind="store", map="m", offset=4097, data=b"XYZ")),
        ("read log 0 12", dict(kind="read", file="log", offset=0, length=12)),
        ("write log 2 hi", dict(kind="write", file="log", offset=2, data=b"hi")),
        ("truncate data 5120", dict(kind="truncate", file="data", size=5120)),
        ("msync m", dict(kind="msync", map="m")),
        ("fsync data", dict(kind="fsync", file="data")),
        ("madvise m dontneed", dict(kind="madvise", map="m", advice="dontneed")),
    ],
)
def test_every_op_kind(line: str, fields: dict[str, object]) -> None:
    op = parse_op_line(line)
    expected = Op(text=line, loc=Loc(P, 10), **fields)  # type: ignore[arg-type]
    assert op == expected


def test_op_text_is_whitespace_normalised_without_expectation() -> None:
    op = parse_op_line('  store   m\t0   "a  b"   C   -> ok ')
    assert op.text == 'store m 0 "a  b" C'
    assert op.data == b"a  bC"
    assert op.expect == Outcome.ok()
    assert parse_op_line("n=mmap data 0 1p private r").text == "n = mmap data 0 1p private r"


def test_ops_keep_their_lines_and_thread_order() -> None:
    text = """title = "t"
fs = "tmpfs"
[threads.zeta]
ops = ["truncate f 0"]   # declared before the file: fine

[files.f]
size = 0
fill = "hole"

[threads.alpha]
ops = [
  # a comment with "quotes" and a ] bracket
  '''m = mmap f 0 1p shared r''', "load m 0",

  "load m 0",
]
"""
    sc = parse_scenario(text, P)
    assert [t.name for t in sc.threads] == ["zeta", "alpha"]
    assert [t.loc.line for t in sc.threads] == [3, 10]
    assert [op.loc.line for op in sc.threads[1].ops] == [13, 13, 15]
    assert sc.files == (FileSpec("f", 0, None, hole=True, loc=Loc(P, 6)),)


def test_map_var_may_be_remapped_and_used_after_munmap() -> None:
    ops = parse_ops("munmap m", "store m 0 A -> SIGSEGV", "m = mmap log 0 1p private r", "load m 0")
    assert [op.kind for op in ops] == ["munmap", "store", "mmap", "load"]
    assert ops[1].expect == Outcome.signal("SIGSEGV")


def test_maps_are_per_process() -> None:
    """With mm = "per-thread" each thread is a process: another thread's map is unknown."""
    text = 'mm = "per-thread"\n' + scenario_with_ops("load m 0") + '[threads.other]\nops = ["load m 0"]\n'
    e = error_of(text)
    assert (e.where, e.message) == (f"{P}:14", "unknown map 'm': no earlier 'm = mmap ...' in thread 'other' "
                                    '(threads share maps only with mm = "shared")')


def test_threads_of_one_mm_name_each_others_maps() -> None:
    text = scenario_with_ops("load m 0") + '[threads.other]\nops = ["load m 0", "m = mmap data 0 1p shared r", ' \
        '"load m 0"]\n'
    other = parse_scenario(text, P).threads[1].ops
    assert [op.owner for op in other] == ["t", "", ""]


# --------------------------------------------------------------------------------------------------
# sizes


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 0),
        (4096, 4096),
        ("123", 123),
        ("2p", 8192),
        ("1k", 1024),
        ("3m", 3 << 20),
        ("1g", 1 << 30),
        ("4K", 4096),
        ("1p+100", 4196),
        ("1p+1k+1", 4096 + 1024 + 1),
    ],
)
def test_sizes(value: int | str, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["3x", "", "p", "-1", -1, "1.5p", "1p+", "+1", "0x10", 2.5, True, " 1"])
def test_bad_sizes(value: object) -> None:
    with pytest.raises(
        ScenarioError, match=r"^bad size .*: expected bytes or a number with suffix p, k, m or g$"
    ):
        parse_size(value)


def test_top_level_sizes() -> None:
    text = 'title = "t"\nfs = "ext4"\nmemory_limit = "10p+5"\npmem_size = 65536\n[threads.t]\nops = []\n'
    sc = parse_scenario(text, P)
    assert (sc.memory_limit_pages, sc.pmem_size, sc.files) == (10, 65536, ())
    assert sc.threads == (ThreadSpec("t", (), Loc(P, 5)),)


# --------------------------------------------------------------------------------------------------
# byte literals


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("XYZ", b"XYZ"),
        ('"hello world\\n"', b"hello world\n"),
        ("a b  c", b"abc"),
        (r"\n\t\0\\\"", b'\n\t\0\\"'),
        (r"\x00\xff\x2A", b"\x00\xff*"),
        (r"\0*4084", b"\0" * 4084),
        ("Z*3072", b"Z" * 3072),
        ('"ab"*2', b"abab"),
        ("A*1p", b"A" * 4096),
        ("ab*0", b""),
        ('""', b""),
        ('"" "x"*3', b"xxx"),
        ('"a*b -> c"', b"a*b -> c"),
        (r"\x2a*2", b"**"),
        ("A*1p+2", b"A" * 4098),
    ],
)
def test_byte_literals(text: str, data: bytes) -> None:
    assert parse_bytes(text) == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the bad input is echoed as Python's repr(), which doubles a backslash
        (r"\q", r"bad escape '\\q' in '\\q': expected \n, \t, \0, \\, \" or \xHH"),
        (r"a\x4", r"bad escape '\\x4' in 'a\\x4': \x needs two hex digits"),
        ("*3", r"bad bytes '*3': nothing to repeat before '*' (write \x2a for a literal star)"),
        ("A*3x", "bad repeat count '3x' in 'A*3x': expected a count such as 4, 1p or 2k"),
        ("A*2*2", "bad repeat count '2*2' in 'A*2*2': expected a count such as 4, 1p or 2k"),
        ('ab"cd"', r"""bad bytes 'ab"cd"': a quote may only start a token (write \" for a literal quote)"""),
        ('"ab"x', """bad bytes '"ab"x': expected '*N' or a space after the closing quote"""),
        ('"abc', """unterminated string '"abc': expected a closing double quote"""),
        ("é", r"non-ASCII character 'é' in bytes 'é': write it as \xHH"),
    ],
)
def test_bad_byte_literals(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_bytes(text)
    assert info.value.message == message


@given(st.binary(max_size=200))
def test_format_bytes_round_trips(data: bytes) -> None:
    assert parse_bytes(format_bytes(data)) == data


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=3), st.integers(1, 12)), max_size=8))
def test_format_bytes_round_trips_runs(runs: list[tuple[bytes, int]]) -> None:
    data = b"".join(chunk * n for chunk, n in runs)
    assert parse_bytes(format_bytes(data)) == data


@given(st.binary(min_size=1, max_size=40))
def test_outcome_text_round_trips_as_expectation(data: bytes) -> None:
    op = parse_op_line(f"load m 0 {len(data)} -> {Outcome.of_data(data)}")
    assert op.expect == Outcome.of_data(data)


# --------------------------------------------------------------------------------------------------
# fill


@pytest.mark.parametrize(
    ("fill", "expected"),
    [
        (None, (None, False)),
        ('"A"', (b"A", False)),
        ('"hello world\\n"', (b"hello world\n", False)),
        ("'\\x41'", (b"\\x41", False)),
        ('"\\u00ff\\u0000"', (b"\xff\x00", False)),
        ('"hole"', (None, True)),
    ],
)
def test_fill(fill: str | None, expected: tuple[bytes | None, bool]) -> None:
    text = scenario_with_ops()
    if fill is not None:
        text = text.replace('size = "2p"\n', f'size = "2p"\nfill = {fill}\n')
    f = parse_scenario(text, P).files[0]
    assert (f.fill, f.hole) == expected


# --------------------------------------------------------------------------------------------------
# expectations


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        ("load m 2p -> SIGBUS", Outcome.signal("SIGBUS")),
        ("store m 2p Q -> SIGSEGV", Outcome.signal("SIGSEGV")),
        ("truncate data 0 -> ok", Outcome.ok()),
        ("n = mmap data 1 1p private r -> EINVAL", Outcome.errno("EINVAL")),
        ("msync m -> ENOMEM", Outcome.errno("ENOMEM")),
        ("write log 0 x -> E2BIG", Outcome.errno("E2BIG")),
        ("load m 0 -> A", Outcome.of_data(b"A")),
        ('load m 0 4 -> "ok"*2', Outcome.of_data(b"okok")),
        ('load m 0 6 -> "SIGBUS"', Outcome.of_data(b"SIGBUS")),
        (r"load m 0 3 -> \0*3", Outcome.of_data(b"\0\0\0")),
        ('read log 0 12 -> "hello world\\n"', Outcome.of_data(b"hello world\n")),
        ("read log 0 12 -> hel lo", Outcome.of_data(b"hello")),
        ('read log 20 1 -> ""', Outcome.of_data(b"")),
        ("read log 0 1 -> EFAULT", Outcome.errno("EFAULT")),
        ('load m 0 2 -> "->"', Outcome.of_data(b"->")),
    ],
)
def test_expectations(line: str, outcome: Outcome) -> None:
    op = parse_op_line(line)
    assert op.expect == outcome
    assert op.text == line.split(" -> ")[0]


def test_no_expectation_is_none() -> None:
    assert parse_op_line("load m 0").expect is None


# --------------------------------------------------------------------------------------------------
# bad input: exact location and message


KINDS = ("mmap, munmap, load, store, read, write, truncate, msync, fsync, madvise, mprotect, fallocate, fork, "
         "crash, persist")


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ("stor m 0 A", f"unknown op 'stor': expected one of {KINDS}"),
        ("", f"empty op: expected one of {KINDS}"),
        ("read dat 0 1", "unknown file 'dat': files are data, log"),
        ("store q 1p B", "unknown map 'q': no earlier 'q = mmap ...' in thread 't'"),
        ("load m 3x", "bad size '3x': expected bytes or a number with suffix p, k, m or g"),
        ("store m 0", "store takes MAP OFFSET BYTES (3 arguments), got 2"),
        ("load m", "load takes MAP OFFSET [LEN] (2 or 3 arguments), got 1"),
        ("load m 0 1 2", "load takes MAP OFFSET [LEN] (2 or 3 arguments), got 4"),
        ("munmap", "munmap takes MAP (1 argument), got 0"),
        (
            "n = mmap data 0 1p private",
            "mmap takes FILE OFFSET LENGTH private|shared r|rw (5 arguments), got 4",
        ),
        ("truncate data 1 2", "truncate takes FILE SIZE (2 arguments), got 3"),
        (
            "mmap data 0 1p private r",
            "mmap needs a variable: write 'VAR = mmap FILE OFFSET LENGTH private|shared r|rw'",
        ),
        ("x = load m 0", "only mmap assigns a variable, got 'x = load ...'"),
        (
            "1x = mmap data 0 1p private r",
            "bad variable name '1x': expected letters, digits, _ and -, starting with a letter or _",
        ),
        ("n = mmap data 0 1p priv r", "bad sharing 'priv': expected private or shared"),
        ("n = mmap data 0 1p private w", "bad protection 'w': expected r or rw"),
        ("madvise m willneed", "bad advice 'willneed': expected dontneed"),
        ('store m 0 "abc', """unterminated string '"abc': expected a closing double quote"""),
    ],
)
def test_bad_ops(op: str, message: str) -> None:
    assert op_error(op) == (f"{P}:10", message)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (
            "load m 0 ->",
            "nothing after '->': expected SIGBUS, SIGSEGV, ok, an errno name such as EINVAL, or bytes",
        ),
        ("load m 0 -> A -> B", "more than one '->': expected at most one expectation per op"),
        (
            "store m 0 A -> B",
            "bad expectation 'B' for store: expected SIGBUS, SIGSEGV, ok or an errno name "
            "(bytes only after load or read)",
        ),
        ("load m 0 2 -> A", "load of 2 bytes expects 2 bytes after '->', got 1"),
        ("read log 0 2 -> ABC", "read of 2 bytes returns at most 2 bytes, got 3 after '->'"),
        ("load m 0 -> ok", "load returns data: expected the bytes after '->', not ok"),
        ("read log 0 1 -> ok", "read returns data: expected the bytes after '->', not ok"),
        (
            "load m 0 -> EINVAL",
            "load cannot return an errno (EINVAL): it succeeds or raises SIGBUS or SIGSEGV "
            "(quote it to mean bytes)",
        ),
        (
            "store m 0 A -> EFAULT",
            "store cannot return an errno (EFAULT): it succeeds or raises SIGBUS or SIGSEGV",
        ),
        (
            "load m 0 -> SIGKILL",
            "unknown signal 'SIGKILL': expected SIGBUS or SIGSEGV (quote it to mean bytes)",
        ),
        ("truncate data 0 -> SIGBUS", "truncate cannot raise SIGBUS: only load and store touch the mapping"),
    ],
)
def test_bad_expectations(op: str, message: str) -> None:
    assert op_error(op) == (f"{P}:10", message)


def test_toml_syntax_error() -> None:
    e = error_of('title = "t"\nfs = "dax"\n[files.data]\nsize = 2p\n')
    assert (e.where, e.message) == (
        f"{P}:4",
        "TOML syntax error: expected newline or end of document after a statement (column 9)",
    )


def test_toml_syntax_error_at_end() -> None:
    e = error_of('title = "t"\nops = [\n  "load m 0",\n')
    assert (e.where, e.message) == (f"{P}:3", "TOML syntax error: invalid value at the end of the file")


def test_toml_bad_escape_in_basic_string() -> None:
    e = error_of('title = "t"\nfs = "dax"\n[threads.t]\nops = ["store m 0 \\x41"]\n')
    assert e.where == f"{P}:4"
    assert e.message.startswith("TOML syntax error: unescaped '\\' in a string (column ")


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            'title = "t"\nfs = "dax"\ntimeout = 3\n[threads.t]\nops = []\n',
            3,
            "unknown key 'timeout': expected one of title, fs, mm, memory_limit, pmem_size, pmem_align, files, setup, "
            "threads",
        ),
        (
            'title = "t"\nfs = "dax"\n[files.d]\nsize = 1\n\nsise = 2\n[threads.t]\nops = []\n',
            6,
            "unknown key 'sise' in [files.d]: expected size or fill",
        ),
        (
            'title = "t"\nfs = "dax"\n[threads.t]\nops = []\nop = "x"\n',
            5,
            "unknown key 'op' in [threads.t]: expected ops",
        ),
        (
            'title = "t"\nfs = "xfs"\n[threads.t]\nops = []\n',
            2,
            "unknown fs 'xfs': expected one of dax, tmpfs, ext4",
        ),
        ('title = "t"\nfs = 1\n[threads.t]\nops = []\n', 2, "unknown fs 1: expected one of dax, tmpfs, ext4"),
        ('title = "t"\n[threads.t]\nops = []\n', 1, "missing key 'fs': expected one of dax, tmpfs, ext4"),
        ('fs = "dax"\n[threads.t]\nops = []\n', 1, "missing key 'title': expected a title string at the top"),
        ('title = 3\nfs = "dax"\n[threads.t]\nops = []\n', 1, "title must be a string, got integer"),
        ('title = "t"\nfs = "dax"\n', 1, "no threads: expected at least one [threads.NAME] table"),
        (
            'title = "t"\nfs = "dax"\nthreads = {}\n',
            3,
            "no threads: expected at least one [threads.NAME] table",
        ),
        (
            'title = "t"\nfs = "dax"\n\n[files.d]\n[threads.t]\nops = []\n',
            4,
            "missing key 'size' in [files.d]: expected a size such as 2p",
        ),
        (
            'title = "t"\nfs = "dax"\n[files.d]\nsize = "3x"\n[threads.t]\nops = []\n',
            4,
            "bad size '3x': expected bytes or a number with suffix p, k, m or g",
        ),
        (
            'title = "t"\nfs = "dax"\nmemory_limit = -4\n[threads.t]\nops = []\n',
            3,
            "bad size -4: expected bytes or a number with suffix p, k, m or g",
        ),
        (
            'title = "t"\nfs = "dax"\n[files.d]\nsize = 1\nfill = ""\n[threads.t]\nops = []\n',
            5,
            'empty fill: omit fill for zeros, or use "hole" for an unallocated file',
        ),
        (
            'title = "t"\nfs = "dax"\n[files.d]\nsize = 1\nfill = 65\n[threads.t]\nops = []\n',
            5,
            "fill must be a string, got integer",
        ),
        (
            'title = "t"\nfs = "dax"\n[files.d]\nsize = 1\nfill = "\u20ac"\n[threads.t]\nops = []\n',
            5,
            "bad fill: characters beyond \\u00ff do not fit in a byte",
        ),
        (
            'title = "t"\nfs = "dax"\nfiles = 3\n[threads.t]\nops = []\n',
            3,
            "files must be a table, got integer",
        ),
        (
            'title = "t"\nfs = "dax"\n[files]\nd = "1p"\n[threads.t]\nops = []\n',
            4,
            "[files.d] must be a table, got string",
        ),
        (
            'title = "t"\nfs = "dax"\n[files."my file"]\nsize = 1\n[threads.t]\nops = []\n',
            3,
            "bad file name 'my file': expected letters, digits, _ and -, starting with a letter or _",
        ),
        (
            'title = "t"\nfs = "dax"\n[threads.t]\n',
            3,
            "missing key 'ops' in [threads.t]: expected an array of op strings",
        ),
        (
            'title = "t"\nfs = "dax"\n[threads.t]\nops = "load m 0"\n',
            4,
            "ops must be an array of strings, got string",
        ),
        (
            'title = "t"\nfs = "dax"\n[threads.t]\nops = [\n\n  3,\n]\n',
            6,
            "an op must be a string, got integer",
        ),
        (
            'title = "t"\nfs = "dax"\n[threads.t]\nops = ["fsync x"]\n',
            4,
            "unknown file 'x': no files are declared",
        ),
    ],
)
def test_bad_documents(text: str, where: int, message: str) -> None:
    e = error_of(text)
    assert (e.where, e.message) == (f"{P}:{where}", message)


def test_error_str_is_one_line_with_location() -> None:
    e = error_of(scenario_with_ops("stor m 0 A"))
    assert str(e).startswith(f"{P}:10: unknown op 'stor'")
    assert "\n" not in str(e)


def test_load_scenario_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert (info.value.where, info.value.message) == (
        path,
        "cannot read the scenario file: No such file or directory",
    )


def test_load_scenario_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b'title = "t"\nfs = "dax"\n# \xff\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    assert (info.value.where, info.value.message) == (
        f"{path}:3",
        "not UTF-8 text: expected a UTF-8 TOML file",
    )


# --------------------------------------------------------------------------------------------------
# builder


def test_builder_options_and_fills() -> None:
    sc = (
        ScenarioBuilder("b", fs="tmpfs", memory_limit="3p", pmem_size="2m")
        .thread("t", "m = mmap raw 0 1p shared rw", "store m 0 Z*3 -> ok", "load m 0 3 -> ZZZ")
        .file("raw", 4096, fill=b"\x00\x01")
        .file("gap", "1p", fill="hole")
        .file("zero", 10)
        .build()
    )
    assert (sc.memory_limit_pages, sc.pmem_size) == (3, 2 << 20)
    assert [(f.name, f.fill, f.hole) for f in sc.files] == [
        ("raw", b"\0\1", False),
        ("gap", None, True),
        ("zero", None, False),
    ]
    assert sc.threads[0].ops[2].expect == Outcome.of_data(b"ZZZ")


@pytest.mark.parametrize(
    ("build", "where", "message"),
    [
        (
            lambda: ScenarioBuilder("b", fs="dax").file("d", 1).thread("t", "fsync d", "stor d").build(),
            "<builder>:thread t op 2",
            f"unknown op 'stor': expected one of {KINDS}",
        ),
        (
            lambda: ScenarioBuilder("b", fs="dax").thread("t", "fsync e").build(),
            "<builder>:thread t op 1",
            "unknown file 'e': no files are declared",
        ),
        (
            lambda: ScenarioBuilder("b", fs="dax").file("d", "3x").thread("t").build(),
            "<builder>:file d",
            "bad size '3x': expected bytes or a number with suffix p, k, m or g",
        ),
        (
            lambda: ScenarioBuilder("b", fs="zfs").thread("t").build(),
            "<builder>",
            "unknown fs 'zfs': expected one of dax, tmpfs, ext4",
        ),
        (
            lambda: ScenarioBuilder("b", fs="dax").build(),
            "<builder>",
            "no threads: expected at least one [threads.NAME] table",
        ),
        (
            lambda: ScenarioBuilder("b", fs="dax").thread("t").thread("t"),
            "<builder>:thread t",
            "thread 't' is declared twice",
        ),
        (
            lambda: ScenarioBuilder("b", fs="dax").file("d", 1).file("d", 2),
            "<builder>:file d",
            "file 'd' is declared twice",
        ),
    ],
)
def test_builder_errors(build: object, where: str, message: str) -> None:
    assert callable(build)
    with pytest.raises(ScenarioError) as info:
        build()
    assert (info.value.where, info.value.message) == (where, message)


# --------------------------------------------------------------------------------------------------
# documentation


def test_every_toml_example_in_the_docs_parses() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "scenarios.md").read_text()
    blocks = doc.split("```toml\n")[1:]
    assert len(blocks) >= 4
    for i, block in enumerate(blocks):
        sc = parse_scenario(block.split("```")[0], f"docs/scenarios.md#toml-{i}")
        assert sc.threads
    assert blocks[0].split("```")[0] == SEED.read_text()
