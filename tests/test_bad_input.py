"""Bad input to `faultlab run`: exit status 2 and exactly one line on stderr that says where
(`file:line` for a scenario file) and what is wrong, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from faultlab.cli import main

HEAD = 'title = "t"\nfs = "tmpfs"\n[files.data]\nsize = "1p"\n[threads.faulter]\nops = [\n'  # lines 1-6
GOOD = HEAD + '  "m = mmap data 0 1p shared rw",\n  "load m 0",\n]\n'

# (name, file text, line of the error, words the message must contain)
BAD_FILES = [
    ("toml-syntax", 'title = "t"\nfs = "tmpfs" oops\n[threads.t]\nops = []\n', 2, ["TOML syntax error"]),
    ("toml-unclosed-array", HEAD + '  "m = mmap data 0 1p shared rw",\n', 7, ["TOML syntax error"]),
    ("unknown-op", HEAD + '  "m = mmap data 0 1p shared rw",\n  "stor m 0 A",\n]\n', 8,
     ["unknown op 'stor'", "store"]),
    ("unknown-file", HEAD + '  "m = mmap dat 0 1p shared rw",\n]\n', 7, ["unknown file 'dat'", "data"]),
    ("unknown-file-read", HEAD + '  "read dat 0 1",\n]\n', 7, ["unknown file 'dat'"]),
    ("unknown-map", HEAD + '  "m = mmap data 0 1p shared rw",\n  "store q 0 A",\n]\n', 8,
     ["unknown map 'q'", "faulter"]),
    ("map-of-other-thread-per-thread-mm",
     'mm = "per-thread"\n' + HEAD + '  "m = mmap data 0 1p shared rw",\n]\n[threads.other]\nops = ["load m 0"]\n', 11,
     ["unknown map 'm'", "other", 'mm = "shared"']),
    ("map-made-by-two-threads",
     HEAD + '  "m = mmap data 0 1p shared rw",\n]\n[threads.b]\nops = ["m = mmap data 0 1p shared r"]\n'
     '[threads.c]\nops = ["load m 0"]\n', 12, ["map 'm' is made by threads faulter, b"]),
    ("setup-map-per-thread-mm",
     'mm = "per-thread"\n' + HEAD + '  "load m 0",\n]\n[setup]\nops = ["m = mmap data 0 1p shared rw"]\n', 8,
     ["map 'm' is made in [setup]", 'mm = \\"shared\\"'.replace("\\", "")]),
    ("setup-unknown-map", HEAD + ']\n[setup]\nops = [\n  "load q 0",\n]\n', 10, ["unknown map 'q'", "[setup]"]),
    ("setup-not-a-table", 'setup = 3\n' + HEAD + ']\n', 1, ["[setup] must be a table"]),
    ("setup-unknown-key", HEAD + ']\n[setup]\nopz = []\n', 9, ["unknown key 'opz' in [setup]"]),
    ("setup-missing-ops", HEAD + ']\n[setup]\n', 8, ["missing key 'ops' in [setup]"]),
    ("mmap-bad-placement", HEAD + '  "m = mmap data 0 1p shared rw aligned",\n]\n', 7,
     ["bad placement 'aligned'", "at ADDR"]),
    ("mmap-at-no-address", HEAD + '  "m = mmap data 0 1p shared rw at",\n]\n', 7,
     ["mmap takes FILE OFFSET LENGTH private|shared r|rw [sync] [at ADDR|unaligned]", "got 6"]),
    ("mmap-at-bad-address", HEAD + '  "m = mmap data 0 1p shared rw at 4096",\n]\n', 7,
     ["bad address '4096'", "hex address"]),
    ("mmap-at-kernel-address", HEAD + '  "m = mmap data 0 1p shared rw at 0xffff800000000000",\n]\n', 7,
     ["beyond user space"]),
    ("mmap-unaligned-extra", HEAD + '  "m = mmap data 0 1p shared rw unaligned 3",\n]\n', 7,
     ["5 to 8 arguments", "got 7"]),
    ("mprotect-bad-prot", HEAD + '  "m = mmap data 0 1p shared rw",\n  "mprotect m rwx",\n]\n', 8,
     ["bad protection 'rwx'", "r or rw"]),
    ("mprotect-arity", HEAD + '  "m = mmap data 0 1p shared rw",\n  "mprotect m",\n]\n', 8,
     ["mprotect takes MAP r|rw (2 arguments), got 1"]),
    ("mprotect-unknown-map", HEAD + '  "mprotect m r",\n]\n', 7, ["unknown map 'm'"]),
    ("mprotect-signal", HEAD + '  "m = mmap data 0 1p shared rw",\n  "mprotect m r -> SIGBUS",\n]\n', 8,
     ["mprotect cannot raise SIGBUS"]),
    ("fallocate-bad-mode", HEAD + '  "fallocate data zero 0 1p",\n]\n', 7, ["bad fallocate mode 'zero'", "punch"]),
    ("fallocate-arity", HEAD + '  "fallocate data punch 0",\n]\n', 7,
     ["fallocate takes FILE punch OFFSET LENGTH (4 arguments), got 3"]),
    ("fallocate-bad-size", HEAD + '  "fallocate data punch 0 1q",\n]\n', 7, ["bad size '1q'"]),
    ("fallocate-unknown-file", HEAD + '  "fallocate dat punch 0 1p",\n]\n', 7, ["unknown file 'dat'"]),
    ("bad-file-size", 'title = "t"\nfs = "tmpfs"\n[files.data]\nsize = "3x"\n[threads.t]\nops = []\n', 4,
     ["bad size '3x'"]),
    ("bad-op-size", HEAD + '  "truncate data 1q",\n]\n', 7, ["bad size '1q'"]),
    ("negative-size", 'title = "t"\nfs = "tmpfs"\n[files.data]\nsize = -1\n[threads.t]\nops = []\n', 4,
     ["size"]),
    ("arity-too-few", HEAD + '  "m = mmap data 0 1p shared rw",\n  "store m 0",\n]\n', 8,
     ["store takes MAP OFFSET BYTES", "got 2"]),
    ("arity-too-many", HEAD + '  "truncate data 1p 2p",\n]\n', 7, ["truncate takes FILE SIZE", "got 3"]),
    ("arity-mmap", HEAD + '  "m = mmap data 0 1p shared",\n]\n', 7, ["mmap takes"]),
    ("unknown-key", 'title = "t"\nfs = "tmpfs"\ntimeout = 3\n[threads.t]\nops = []\n', 3,
     ["unknown key 'timeout'"]),
    ("missing-title", 'fs = "tmpfs"\n[threads.t]\nops = []\n', 1, ["missing key 'title'"]),
    ("unknown-fs", 'title = "t"\nfs = "zfs"\n[threads.t]\nops = []\n', 2, ["unknown fs 'zfs'", "dax"]),
    ("unknown-signal", HEAD + '  "m = mmap data 0 1p shared rw",\n  "load m 0 -> SIGFOO",\n]\n', 8,
     ["unknown signal 'SIGFOO'"]),
    ("expectation-not-allowed", HEAD + '  "m = mmap data 0 1p shared rw",\n  "load m 0 -> ok",\n]\n', 8,
     ["load"]),
    ("not-utf8", "\udcff", 1, ["UTF-8"]),
]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_bytes(text.encode("utf-8", "surrogateescape"))
    return p


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args])


def check_one_line_error(res: Result, *words: str) -> str:
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.mark.parametrize(("text", "line", "words"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_scenario_file(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    path = write(tmp_path, text)
    check_one_line_error(invoke(str(path)), f"{path}:{line}: ", *words)


def test_good_file_is_accepted(tmp_path: Path) -> None:
    """The base the bad files are made from is itself fine."""
    res = invoke(str(write(tmp_path, GOOD)))
    assert res.exit_code == 0, res.output


def test_missing_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    check_one_line_error(invoke(str(path)), str(path), "cannot read")


@pytest.mark.parametrize("design", ["v9", "all,v4.10", "v4.10,nope"])
def test_unknown_design(tmp_path: Path, design: str) -> None:
    path = write(tmp_path, GOOD)
    bad = [d for d in design.split(",") if d not in ("v4.10",)][0]
    check_one_line_error(invoke(str(path), "--design", design), f"unknown design '{bad}'", "v4.10", "xip")


def test_missing_design_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    res = invoke(str(path), "--design", str(tmp_path / "mine.py"))
    check_one_line_error(res, "mine.py", "no such design file")


@pytest.mark.parametrize("order", ["faulter,nobody", "nobody", "faulter, ,faulter"])
def test_unknown_thread_in_schedule(tmp_path: Path, order: str) -> None:
    path = write(tmp_path, GOOD)
    bad = [p.strip() for p in order.split(",") if p.strip() != "faulter"][0]
    res = invoke(str(path), "--schedule", order)
    check_one_line_error(res, f"--schedule names thread '{bad}'", "faulter")


@pytest.mark.parametrize("schedule", ["fl1:0000:v4.10:0", "fl1:0000:v4.10:zz", "fl9:x:y:0"])
def test_bad_schedule_string(tmp_path: Path, schedule: str) -> None:
    path = write(tmp_path, GOOD)
    check_one_line_error(invoke(str(path), "--schedule", schedule), "schedule")


@pytest.mark.parametrize(("args", "words"), [
    (["--schedule", ""], ["--schedule '' is empty"]),
    (["--schedule", " "], ["--schedule ' ' is empty"]),
    (["--design", ""], ["--design '' has an empty design name"]),
    (["--design", ","], ["--design ',' has an empty design name"]),
    (["--design", "v4.10,"], ["--design 'v4.10,' has an empty design name"]),
])
def test_empty_names_are_refused_not_ignored(tmp_path: Path, args: list[str], words: list[str]) -> None:
    path = write(tmp_path, GOOD)
    check_one_line_error(invoke(str(path), *args), *words)


@pytest.mark.parametrize("text", [
    HEAD + '  "truncate data ٣",\n]\n',  # Arabic-Indic digit three
    HEAD.replace('"1p"', '"１p"') + '  "load m 0",\n]\n',  # a fullwidth digit one
])
def test_digits_of_other_scripts_are_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    line = check_one_line_error(invoke(str(path)), "bad size")
    assert line.startswith(f"faultlab: {path}:")


SEED = str(Path(__file__).resolve().parent.parent / "scenarios/seed/cow-vs-truncate.toml")


@pytest.mark.parametrize(("argv", "line"), [
    (["explore", SEED, "--bound", "-1"], "faultlab: --bound: -1 is not in the range x>=0"),
    (["explore", SEED, "--seed", "abc"], "faultlab: --seed: 'abc' is not a whole number of at most 20 digits"),
    (["explore", SEED, "--seed", "٣"], "faultlab: --seed: '٣' is not a whole number of at most 20 digits"),
    (["explore", SEED, "--strategy", "nope"], "faultlab: --strategy: 'nope' is not one of 'dfs', 'pct', 'random'"),
    (["explore", SEED, "--budget", "nan"], "faultlab: --budget: 'nan' is not a number of seconds such as 30 or 0.5"),
    (["explore", SEED, "--budget", "inf"], "faultlab: --budget: 'inf' is not a number of seconds such as 30 or 0.5"),
    (["explore", SEED, "--budget", "0"], "faultlab: --budget: '0' is not a number of seconds greater than 0"),
    (["explore", SEED, "--max-schedules", "0"], "faultlab: --max-schedules: 0 is not in the range x>=1"),
    (["explore"], "faultlab: missing argument 'SCENARIO' (see 'faultlab explore --help')"),
    (["explore", SEED, "--nope"], "faultlab: no such option '--nope' (see 'faultlab explore --help')"),
    (["replay", SEED], "faultlab: missing option '--schedule' (see 'faultlab replay --help')"),
    (["nope"], "faultlab: no such command 'nope' (see 'faultlab --help')"),
    ([], "faultlab: missing command: expected one of compare, designs, explore, oracle, replay, run "
         "(see 'faultlab --help')"),
])
def test_usage_errors_are_one_line(argv: list[str], line: str) -> None:
    res = CliRunner().invoke(main, argv)
    assert (res.exit_code, res.stdout, res.stderr) == (2, "", line + "\n")


def test_help_and_version_still_exit_0() -> None:
    for argv in (["--help"], ["explore", "--help"], ["--version"]):
        res = CliRunner().invoke(main, argv)
        assert res.exit_code == 0 and res.stderr == "" and res.stdout, argv
