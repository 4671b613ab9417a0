"""The input limits (faultlab/limits.py, docs/scenarios.md "Limits"): each is enforced at its
boundary with a located one-line error, before the memory or time it bounds is spent, and none
is hit by what the project itself runs."""

from __future__ import annotations

import time
import tomllib
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab import limits
from faultlab.errors import ScenarioError, UserError
from faultlab.explore.schedule import decode_choices
from faultlab.scenario import ScenarioBuilder, load_scenario, parse_bytes, parse_scenario, parse_size
from faultlab.scenario.prescan import check_toml_shape

ROOT = Path(__file__).resolve().parent.parent
HEAD = 'title = "t"\nfs = "tmpfs"\n[files.d]\nsize = "1p"\n'  # lines 1-4


def one_thread(*ops: str, head: str = HEAD) -> str:
    return head + "[threads.t]\nops = [\n" + "".join(f"  '{op}',\n" for op in ops) + "]\n"  # literal strings


def error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    return info.value


@contextmanager
def cheap(max_bytes: int = 8 << 20, max_seconds: float = 2.0) -> Iterator[None]:
    """The block allocates at most ``max_bytes`` (Python allocations) and takes at most ``max_seconds``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < max_bytes, f"peak {peak} bytes"
    assert elapsed < max_seconds, f"{elapsed:.2f} s"


# -- document size -----------------------------------------------------------------------------------
def test_a_file_at_the_size_limit_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    good = one_thread("fsync d")
    path = tmp_path / "s.toml"
    path.write_text(good + "#" * (limits.MAX_DOCUMENT_BYTES - len(good) - 1) + "\n")
    assert path.stat().st_size == limits.MAX_DOCUMENT_BYTES
    assert len(load_scenario(str(path)).threads[0].ops) == 1
    path.write_text(good + "#" * (limits.MAX_DOCUMENT_BYTES - len(good)) + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    assert info.value.where == f"{path}:9"  # the comment line, where the limit is crossed
    assert "larger than 1048576 bytes (1 MiB)" in info.value.message


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB of NUL bytes, sparse on disk
    with cheap(max_bytes=3 * limits.MAX_DOCUMENT_BYTES), pytest.raises(ScenarioError, match="larger than"):
        load_scenario(str(path))


# -- nesting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_arrays_are_refused_at_once(depth: int) -> None:
    text = HEAD + "x = " + "[" * depth + "]" * depth + "\n"
    with cheap():
        e = error(text)
    assert e.where == "s.toml:5"
    assert e.message == ("nesting deeper than 32 levels (tables, dotted-key parts and arrays): "
                         "expected at most 32")


@pytest.mark.parametrize(("make", "level"), [
    # each builds a value at nesting level ``n`` (the path to it has n parts, array indexes included)
    (lambda n: "x = " + "[" * (n - 1) + "1" + "]" * (n - 1), "arrays"),
    (lambda n: "x = " + "{a = " * (n - 1) + "1" + "}" * (n - 1), "inline tables"),
    (lambda n: ".".join(["x"] * n) + " = 1", "dotted keys"),
    (lambda n: "[" + ".".join(["x"] * (n - 1)) + "]\ny = 1", "table headers"),
    (lambda n: "[[" + ".".join(["x"] * (n - 2)) + "]]\ny = 1", "arrays of tables"),
    (lambda n: "[" + ".".join(["x"] * (n - 3)) + "]\ny.z = [1]", "all three"),
])
def test_the_nesting_limit_is_exact(make: Callable[[int], str], level: str) -> None:
    top = 'title = "t"\n'  # no table header: the value's level is the one made
    at_limit = top + make(limits.MAX_NESTING) + "\n"
    assert tomllib.loads(at_limit)  # valid TOML either way
    check_toml_shape(at_limit, "s.toml")  # level 32: fine
    over = top + make(limits.MAX_NESTING + 1) + "\n"
    with pytest.raises(ScenarioError, match="nesting deeper than 32"):
        check_toml_shape(over, "s.toml")


def test_brackets_in_strings_and_comments_do_not_count() -> None:
    deep = "[" * 100
    text = (HEAD + f'# {deep}\nx = "{deep}"\ny = \'{deep}\'\nz = """\n{deep}\n"""\nw = \'\'\'{deep}\'\'\'\n'
            f'v = ["\\"{deep}", \'{deep}\', 1] # {deep}\n' + "[threads.t]\nops = []\n")
    assert error(text).message.startswith("unknown key 'x'")


# TOML documents with a known nesting level, to check the scan against tomllib's own reading.
_strings = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
_scalar = st.one_of(
    st.integers(-10**19, 10**19).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["true", "false", "inf", "nan", "1979-05-27T07:32:00Z", "1979-05-27 07:32:00", "0xff", "1_000"]),
    _strings.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                 .replace("\r", "\\r").translate({c: f"\\u{c:04x}" for c in [*range(0x20), 0x7F]}) + '"'),
    st.text("ab[]{}#,=.\"\\ ", max_size=8).filter(lambda s: "'" not in s).map(lambda s: f"'{s}'"),
    st.text("ab[]{}#,=.\"\\ \n", max_size=8).filter(lambda s: "'''" not in s and not s.endswith("'"))
    .map(lambda s: f"'''{s}'''"),
    st.text("ab[]{}#,=.' \n", max_size=8).filter(lambda s: '"""' not in s and not s.endswith('"'))
    .map(lambda s: f'"""{s}"""'),
)
_keys = st.lists(st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,4}", fullmatch=True),
                           st.text("ab.[] #", min_size=1, max_size=4).map(lambda s: f'"{s}"')), min_size=1, max_size=3)


@st.composite
def _nested(draw: st.DrawFn) -> tuple[str, int]:
    """(TOML value text, the nesting level of its deepest value, 0 for a scalar): a scalar wrapped
    in arrays and inline tables (with dotted keys), each with sibling values around it."""
    text, level = draw(_scalar), 0
    for _ in range(draw(st.integers(0, 40))):
        siblings = draw(st.lists(_scalar, max_size=2))
        if draw(st.booleans()):
            siblings.insert(draw(st.integers(0, len(siblings))), text)
            text, level = "[" + ", ".join(siblings) + "]", level + 1
        else:
            key = draw(_keys)  # sibling keys are longer than any generated bare key: no clash
            pairs = [f"{'.'.join(key)} = {text}", *(f"sibling{i} = {v}" for i, v in enumerate(siblings))]
            text, level = "{" + ", ".join(pairs) + "}", level + len(key)
    return text, level


@settings(max_examples=150, deadline=None, derandomize=True)
@given(header=st.lists(st.from_regex(r"[a-z]{1,3}", fullmatch=True), max_size=4), key=_keys,
       value=_nested())
def test_the_scan_agrees_with_the_nesting_of_valid_toml(header: list[str], key: list[str],
                                                       value: tuple[str, int]) -> None:
    text, below = value
    doc = (f"[{'.'.join(header)}]\n" if header else "") + f"{'.'.join(key)} = {text}  # done\n"
    try:
        tomllib.loads(doc)
    except tomllib.TOMLDecodeError:
        return  # a generated key can clash with a dotted one; only valid TOML is the scan's concern
    level = len(header) + len(key) + below
    if level <= limits.MAX_NESTING:
        check_toml_shape(doc, "s.toml")
    else:
        with pytest.raises(ScenarioError, match="nesting deeper"):
            check_toml_shape(doc, "s.toml")


# -- digits and sizes ------------------------------------------------------------------------------
def test_a_toml_integer_of_5000_digits_is_refused_before_tomllib() -> None:
    with cheap():
        e = error(HEAD.replace('"1p"', "9" * 5000) + "[threads.t]\nops = []\n")
    assert e.where == "s.toml:4" and "has 5000 digits: expected at most 20" in e.message


@pytest.mark.parametrize("text", ["9" * 5000 + "p", "1p+" + "9" * 5000, "9" * 21])
def test_a_size_string_of_too_many_digits_is_refused(text: str) -> None:
    with cheap(), pytest.raises(ScenarioError, match="expected at most 20"):
        parse_size(text)


def test_sizes_up_to_one_pib() -> None:
    assert parse_size(limits.MAX_SIZE) == parse_size("1048576g") == 1 << 50
    assert parse_size("9" * 15) == 10**15 - 1
    for too_big in (limits.MAX_SIZE + 1, "1048576g+1", "99999999999999999999", "1048577g"):
        with pytest.raises(ScenarioError, match=r"too large: expected at most 1125899906842624 bytes \(1 PiB\)"):
            parse_size(too_big)


@pytest.mark.parametrize("text", ["١", "１p", "٣k", "1p+٣"])
def test_sizes_take_ascii_digits_only(text: str) -> None:
    with pytest.raises(ScenarioError, match="bad size"):
        parse_size(text)


def test_a_unicode_digit_in_an_op_is_a_located_error() -> None:
    e = error(one_thread("truncate d ٣"))
    assert (e.where, e.message) == ("s.toml:7", "bad size '٣': expected bytes or a number with suffix p, k, m or g")


# -- bytes per op, per scenario --------------------------------------------------------------------
@pytest.mark.parametrize("op", ["write d 0 A*64g", "write d 0 A*9223372036854775808", 'store m 0 "ab"*1m',
                                "write d 0 A*1m B", "write d 0 A*512k A*512k A", "read d 0 1m+1",
                                "load m 0 1g", "read d 0 " + "9" * 5000])
def test_too_many_bytes_in_an_op_are_refused_before_they_are_made(op: str) -> None:
    with cheap(max_bytes=4 << 20):
        e = error(one_thread("m = mmap d 0 1p shared rw", op))
    assert e.where == "s.toml:8"
    assert "expected at most" in e.message


def test_one_mib_per_op_is_accepted() -> None:
    sc = parse_scenario(one_thread("m = mmap d 0 1m shared rw", "store m 0 A*512k B*512k", "load m 0 1m",
                                   "read d 0 1m -> A*512k B*512k"), "s.toml")
    ops = sc.threads[0].ops
    assert len(ops[1].data) == limits.MAX_OP_BYTES and ops[2].length == limits.MAX_OP_BYTES
    assert ops[3].expect is not None and len(ops[3].expect.data) == limits.MAX_OP_BYTES


def test_a_fill_pattern_is_at_most_one_mib() -> None:
    sc = ScenarioBuilder("t", fs="tmpfs").file("d", size="1p", fill=b"x" * limits.MAX_OP_BYTES).thread("t").build()
    assert sc.files[0].fill is not None and len(sc.files[0].fill) == limits.MAX_OP_BYTES
    with pytest.raises(ScenarioError, match="fill of 1048577 bytes is too long") as info:
        ScenarioBuilder("t", fs="tmpfs").file("d", size="1p", fill=b"x" * (limits.MAX_OP_BYTES + 1)).thread("t").build()
    assert info.value.where == "<builder>:file d"


def test_the_bytes_of_all_ops_together_are_at_most_16_mib() -> None:
    def scenario(threads: int) -> ScenarioBuilder:
        b = ScenarioBuilder("t", fs="tmpfs").file("d", size="1p")
        for i in range(threads):
            b.thread(f"t{i}", "write d 0 A*1m")
        return b

    assert len(scenario(16).build().threads) == 16  # exactly 16 MiB
    with pytest.raises(ScenarioError, match="brings the scenario's data and load/read lengths to 17825792 bytes") as e:
        scenario(17).build()
    assert e.value.where == "<builder>:thread t16 op 1"


# -- files, threads, ops ---------------------------------------------------------------------------
def test_files_and_threads_up_to_64() -> None:
    def scenario(files: int, threads: int) -> str:
        return ('title = "t"\nfs = "tmpfs"\n' + "".join(f"[files.f{i}]\nsize = 1\n" for i in range(files))
                + "".join(f"[threads.t{i}]\nops = []\n" for i in range(threads)))

    sc = parse_scenario(scenario(64, 64), "s.toml")
    assert (len(sc.files), len(sc.threads)) == (64, 64)
    e = error(scenario(65, 1))
    assert (e.where, e.message) == ("s.toml:131", "too many files: 65, expected at most 64")
    e = error(scenario(1, 5000))
    assert (e.where, e.message) == ("s.toml:133", "too many threads: 5000, expected at most 64")


def test_too_many_ops_are_refused_before_they_are_parsed() -> None:
    ops = ["fsync d"] * (limits.MAX_OPS + 1)
    with cheap(max_seconds=5.0):
        with pytest.raises(ScenarioError, match="brings the scenario to 200001 ops, expected at most 200000"):
            ScenarioBuilder("t", fs="tmpfs").file("d", size=1).thread("t", *ops).build()


def test_the_ops_limit_counts_all_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("faultlab.scenario.parse.MAX_OPS", 5)
    ok = (ScenarioBuilder("t", fs="tmpfs").file("d", size=1)
          .thread("a", "fsync d", "fsync d", "fsync d").thread("b", "fsync d", "fsync d"))
    assert sum(len(t.ops) for t in ok.build().threads) == 5
    with pytest.raises(ScenarioError, match="thread 'c' brings the scenario to 6 ops") as info:
        ok.thread("c", "fsync d").build()
    assert info.value.where == "<builder>:thread c"


def test_the_sparse_benchmark_is_within_the_limits() -> None:
    """bench/bench_sparse.py: a 64 GiB file on a 1 TiB device, 100,001 ops in one thread."""
    ops = ["m = mmap data 0 64g shared r"] + [f"load m {i * 671}p" for i in range(100_000)]
    sc = (ScenarioBuilder("sparse", fs="dax", pmem_size="1024g").file("data", size="64g", fill="A")
          .thread("t", *ops).build())
    assert (sc.pmem_size, sc.files[0].size, len(sc.threads[0].ops)) == (1 << 40, 64 << 30, 100_001)


# -- DAX files must fit on the pmem device ---------------------------------------------------------
def dax(files: str, pmem: str = "") -> str:
    return f'title = "t"\nfs = "dax"\n{pmem}{files}[threads.t]\nops = []\n'


def test_dax_files_that_fit_exactly_are_accepted() -> None:
    sc = parse_scenario(dax('[files.a]\nsize = "1p"\n[files.b]\nsize = "2p+1"\n', 'pmem_size = "4p"\n'), "s.toml")
    assert [f.size for f in sc.files] == [4096, 8193]


def test_a_dax_file_larger_than_the_device_is_a_located_error() -> None:
    e = error(dax('[files.a]\nsize = "3p"\n[files.b]\nsize = "2p"\n', 'pmem_size = "4p"\n'))
    assert e.where == "s.toml:7"  # b's size
    assert e.message == ("file 'b' (2 pages) does not fit on the pmem device of 16384 bytes (4 pages, 3 of them "
                         "taken by the files before it): expected a pmem_size of at least 20480")
    e = error(dax('[files.big]\nsize = "2g"\n'))  # the default device is 1 GiB
    assert e.where == "s.toml:4" and "expected a pmem_size of at least 2147483648" in e.message


def test_holes_take_no_pmem_and_other_filesystems_have_none() -> None:
    sc = parse_scenario(dax('[files.a]\nsize = "1p"\n[files.h]\nsize = "1024g"\nfill = "hole"\n', 'pmem_size = "1p"\n'),
                        "s.toml")
    assert [f.hole for f in sc.files] == [False, True]
    assert parse_scenario(dax('[files.a]\nsize = "2g"\n').replace('"dax"', '"ext4"'), "s.toml").files[0].size == 2 << 30


# -- schedule strings -------------------------------------------------------------------------------
@pytest.mark.parametrize(("choices", "words"), [
    ("0x" + "9" * 5000, "expected numbers of at most 20 digits"),
    ("9" * 5000, "expected numbers of at most 20 digits"),
    ("0x" + "9" * 21, "expected numbers of at most 20 digits"),
    ("0x99999999999999999999", "longer than 10000000 steps"),
    ("٣", "expected THREAD or THREADxCOUNT"),
    ("0x٣", "expected THREAD or THREADxCOUNT"),
])
def test_bad_schedule_numbers_are_one_line_errors(choices: str, words: str) -> None:
    with cheap(), pytest.raises(UserError, match=words) as info:
        decode_choices(choices)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_the_largest_schedule_numbers_still_decode() -> None:
    assert decode_choices("1x3.0.12345678901234567890") == [1, 1, 1, 0, 12345678901234567890]


def test_bytes_parser_helpers_are_bounded_too() -> None:
    assert parse_bytes("A*1m") == b"A" * (1 << 20)
    with cheap(), pytest.raises(ScenarioError, match="too many bytes"):
        parse_bytes("A*1p " * 257)


def test_the_bundled_scenarios_are_within_the_limits() -> None:
    paths = sorted((ROOT / "scenarios").rglob("*.toml"))
    assert len(paths) >= 19
    for path in paths:
        assert load_scenario(str(path)).threads


@settings(max_examples=200, deadline=None, derandomize=True)
@given(before=st.lists(st.sampled_from(list("[]{}\"'=#,.\\\n -_:") + ["a", "1", "x = ", "[t]\n", '"""', "'''"]),
                       max_size=30).map("".join),
       depth=st.integers(33, 3000), wrap=st.sampled_from(["[", "{a = "]))
def test_what_passes_the_scan_never_makes_tomllib_recurse_too_deep(before: str, depth: int, wrap: str) -> None:
    """Junk, then deep nesting: the scan refuses the nesting, or stops where the text stops being
    TOML and tomllib then fails there (a syntax error), never deeper inside."""
    text = before + "\nx = " + wrap * depth + "1" + ("]" if wrap == "[" else "}") * depth + "\n"
    try:
        check_toml_shape(text, "s.toml")
    except ScenarioError as e:
        assert "nesting deeper than 32" in e.message or "digits" in e.message
        return
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(text)


def test_tomllib_recursing_too_deep_would_still_be_one_located_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A safety net behind the scan: were it to miss deep nesting, tomllib's RecursionError is
    still a ScenarioError."""
    monkeypatch.setattr("faultlab.scenario.parse.check_toml_shape", lambda text, path: None)
    with cheap(max_bytes=64 << 20, max_seconds=10):
        e = error(HEAD + "x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert (e.where, e.message) == ("s.toml:1", "nesting too deep for the TOML reader: expected at most 32 levels")
