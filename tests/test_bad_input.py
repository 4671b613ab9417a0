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
    ("map-of-other-thread",
     HEAD + '  "m = mmap data 0 1p shared rw",\n]\n[threads.other]\nops = ["load m 0"]\n', 10,
     ["unknown map 'm'", "other"]),
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
