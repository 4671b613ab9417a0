"""`faultlab run SCENARIO [--design NAME|all] [--schedule ORDER] [--json]`: its output and exit status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from faultlab.cli import main
from faultlab.designs import DESIGNS, get_design
from faultlab.execution import ModelExecution
from faultlab.scenario import load_scenario
from faultlab.sched import SequentialChooser

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "scenarios" / "seed" / "cow-vs-truncate.toml"

# One op of every outcome kind: ok, data, SIGBUS, SIGSEGV, an errno.
VARIED = """\
title = "one op of each outcome kind"
fs = "tmpfs"

[files.f]
size = "1p+100"
fill = "A"

[threads.t]
ops = [
  "m = mmap f 0 3p private rw",
  "store m 1 BC",
  "load m 0 4",
  "load m 2p",
  "n = mmap f 1 1p shared r",
  "r = mmap f 0 1p shared r",
  "store r 0 Z",
  "read f 0 3",
  "truncate f 1p",
]
"""
VARIED_OUTCOMES = [
    ("m = mmap f 0 3p private rw", "ok"),
    ("store m 1 BC", "ok"),
    ("load m 0 4", '"ABCA"'),
    ("load m 2p", "SIGBUS"),
    ("n = mmap f 1 1p shared r", "EINVAL"),
    ("r = mmap f 0 1p shared r", "ok"),
    ("store r 0 Z", "SIGSEGV"),
    ("read f 0 3", '"AAA"'),
    ("truncate f 1p", "ok"),
]

# No op ends in an error, so every counted fault is some op's minflt or majflt.
FAULTY = """\
title = "faults of every kind"
fs = "ext4"

[files.f]
size = "4p"
fill = "A"

[files.h]
size = "1p"
fill = "hole"

[threads.t]
ops = [
  "p = mmap f 0 4p private rw",
  "store p 0 B -> ok",
  "load p 1p -> A",
  "store p 1p C -> ok",
  "s = mmap f 0 4p shared rw",
  "load s 2p -> A",
  "store s 2p D -> ok",
  "store s 3p E -> ok",
  "h = mmap h 0 1p shared rw",
  "store h 0 H -> ok",
  "read f 2p 1 -> D",
]
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args])


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def test_text_output_shows_every_op_with_its_outcome(tmp_path: Path) -> None:
    res = invoke(str(write(tmp_path, VARIED)))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    for op, outcome in VARIED_OUTCOMES:
        rows = [ln for ln in lines if f" {op} " in ln]
        assert len(rows) == 1, (op, res.stdout)
        cells = [c.strip() for c in rows[0].split("│")]
        assert cells[2] == op and cells[3] == outcome, rows[0]
    assert "design v4.10" in res.stdout  # the default design


def test_text_output_shows_fault_counters_and_file(tmp_path: Path) -> None:
    res = invoke(str(write(tmp_path, FAULTY)))
    assert res.exit_code == 0, res.output
    assert "faults: 7 (1 major): read 2, cow 1, shared 1, wp-copy 1, wp-reuse 2, retries 0" in res.stdout
    assert "file h: size 4096: " in res.stdout


def test_json_has_ops_and_fault_counters(tmp_path: Path) -> None:
    path = write(tmp_path, FAULTY)
    res = invoke(str(path), "--json")
    assert res.exit_code == 0, res.output
    doc = as_json(res)
    assert doc["design"] == "v4.10"
    scenario = load_scenario(str(path))
    ops = [op for t in scenario.threads for op in t.ops]
    assert [(o["thread"], o["op"]) for o in doc["ops"]] == [("t", op.text) for op in ops]
    for entry, op in zip(doc["ops"], ops, strict=True):
        assert set(entry["outcome"]) == {"kind", "value"}
        if op.expect is not None:
            assert entry["matches"] is True
    assert doc["ops"][2]["outcome"] == {"kind": "data", "value": '"A"'}
    assert doc["ops"][1]["outcome"] == {"kind": "ok", "value": "ok"}

    faults = doc["counters"]["faults"]
    assert set(faults) >= {"total", "major", "read", "cow", "shared", "wp-copy", "wp-reuse"}
    # The same run in-process: the JSON reports the model's counters.
    r = ModelExecution(scenario, get_design("v4.10")).run(SequentialChooser(None))
    assert faults["total"] == r.counters["faults"] == 7
    assert faults["major"] == r.counters["faults.major"] == 1
    for kind in ("read", "cow", "shared", "wp-copy", "wp-reuse"):
        assert faults[kind] == r.counters[f"fault.{kind}"], kind
    kinds = ("read", "cow", "shared", "wp-copy", "wp-reuse")
    assert tuple(faults[k] for k in kinds) == (2, 1, 1, 1, 2)
    # Every fault of this run is counted against exactly one op.
    assert sum(o["minflt"] + o["majflt"] for o in doc["ops"]) == faults["total"]
    assert sum(o["majflt"] for o in doc["ops"]) == faults["major"]


def test_json_with_design_all_is_one_document_per_design() -> None:
    res = invoke(str(SEED), "--design", "all", "--json")
    docs = as_json(res)
    assert [d["design"] for d in docs] == list(DESIGNS)
    assert list(DESIGNS) == ["xip", "v7", "v7-insert", "v4.0", "v4.7", "v4.10", "v6.1", "v6.18"]
    # The seed has no expectations; only v7-insert breaks an invariant in the default order.
    assert [d["design"] for d in docs if d["violations"]] == ["v7-insert"]
    assert res.exit_code == 1


MISMATCH = """\
title = "an expectation that is not met"
fs = "tmpfs"

[files.f]
size = "1p"
fill = "A"

[threads.t]
ops = [
  "m = mmap f 0 1p private rw -> ok",
  "load m 0 2 -> XY",
  "store m 0 B -> ok",
]
"""


def test_unmet_expectation_exits_1_and_prints_both(tmp_path: Path) -> None:
    res = invoke(str(write(tmp_path, MISMATCH)))
    assert res.exit_code == 1, res.output
    row = [ln for ln in res.stdout.splitlines() if "│ load m 0 2 " in ln]
    assert len(row) == 1
    assert '"AA"' in row[0] and '"XY"' in row[0] and "MISMATCH" in row[0]
    assert "VIOLATION expected-outcome" in res.stdout
    # the met expectations are not flagged
    assert sum("MISMATCH" in ln for ln in res.stdout.splitlines()) == 1
    assert "Traceback" not in res.output

    doc = as_json(invoke(str(write(tmp_path, MISMATCH)), "--json"))
    entry = doc["ops"][1]
    assert entry["outcome"] == {"kind": "data", "value": '"AA"'}
    assert entry["expected"] == {"kind": "data", "value": '"XY"'}
    assert entry["matches"] is False
    assert [v["id"] for v in doc["violations"]] == ["expected-outcome"]


def test_all_expectations_met_exits_0(tmp_path: Path) -> None:
    res = invoke(str(write(tmp_path, MISMATCH.replace("-> XY", "-> AA"))))
    assert res.exit_code == 0, res.output
    assert "MISMATCH" not in res.stdout and "VIOLATION" not in res.stdout


def test_unmet_expectation_under_one_design_of_all_exits_1(tmp_path: Path) -> None:
    """`--design all` fails when one design misses an expectation even if the others meet it."""
    text = SEED.read_text().replace('"store m 1p B",', '"store m 1p B",\n  "load m 1p 2 -> BA",')
    path = write(tmp_path, text)
    docs = as_json(invoke(str(path), "--design", "v4.0,v4.10", "--json"))
    assert all(op.get("matches", True) for d in docs for op in d["ops"])
    assert invoke(str(path), "--design", "v4.0,v4.10").exit_code == 0
    res = invoke(str(path), "--design", "v4.0,v4.10", "--schedule", "truncator,faulter")
    assert res.exit_code == 1
    assert res.stdout.count("MISMATCH") == 2


@pytest.mark.parametrize(("order", "store"), [("truncator,faulter", "SIGBUS"), ("faulter,truncator", "ok"),
                                              (None, "ok")])
def test_seed_schedule_truncator_first_gives_sigbus_under_v40(order: str | None, store: str) -> None:
    args = [str(SEED), "--design", "v4.0", "--json"] + (["--schedule", order] if order else [])
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    doc = as_json(res)
    by_op = {o["op"]: o for o in doc["ops"]}
    assert by_op["store m 1p B"]["outcome"]["value"] == store
    assert by_op["truncate data 1p"]["outcome"]["value"] == "ok"
    # the ops are reported in thread order, whatever the schedule
    assert [o["thread"] for o in doc["ops"]] == ["faulter", "faulter", "truncator"]
    if store == "SIGBUS":
        assert doc["counters"]["faults"]["cow"] == 1  # the fault ran and found the page past EOF
        assert doc["counters"]["bytes_copied"] == 0


def test_seed_schedule_in_text_output() -> None:
    res = invoke(str(SEED), "--design", "v4.0", "--schedule", "truncator,faulter")
    assert res.exit_code == 0, res.output
    row = [ln for ln in res.stdout.splitlines() if "store m 1p B" in ln]
    assert len(row) == 1 and "SIGBUS" in row[0]


def test_schedule_string_replays_the_recorded_order() -> None:
    from faultlab.explore.schedule import encode

    scenario = load_scenario(str(SEED))
    schedule = encode([1], scenario.digest(), "v4.0")  # the truncator first; it then runs on (default)
    res = invoke(str(SEED), "--design", "v4.0", "--schedule", schedule, "--json")
    assert res.exit_code == 0, res.output
    by_op = {o["op"]: o for o in as_json(res)["ops"]}
    assert by_op["store m 1p B"]["outcome"]["value"] == "SIGBUS"


@pytest.mark.parametrize("args", [["designs"], ["explore", "scenarios/seed/cow-vs-truncate.toml", "--design", "v4.7",
                                                "--quiet", "--jobs", "1"]])
def test_output_to_a_reader_that_went_away_exits_141_not_a_violations_1(args: list[str]) -> None:
    import os
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)  # (as `| head` does once it has read enough: every write now fails with EPIPE)
    try:
        proc = subprocess.run([sys.executable, "-m", "faultlab", *args], stdout=w, stderr=subprocess.PIPE,
                              cwd=Path(__file__).resolve().parent.parent, timeout=120, check=False)
    finally:
        os.close(w)
    assert (proc.returncode, proc.stderr) == (141, b"")
