"""`faultlab compare SCENARIO... [--design ...] [--json] [--html FILE]`: a row per design and scenario
with a sequential run's costs next to an exhaustive exploration's verdict."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from design_examples import NO_RECHECK
from rich.console import Console

from faultlab.cli import main
from faultlab.compare import FAULT_COLUMNS, compare, lock_sort_key, print_comparison, short_lock
from faultlab.designs import DESIGNS, get_design
from faultlab.execution import ModelExecution
from faultlab.exploring import explore_design
from faultlab.scenario import load_scenario
from faultlab.sched import SequentialChooser

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "scenarios/seed/cow-vs-truncate.toml")
UNLOCK = str(ROOT / "scenarios/races/cow-unlock-mismatch.toml")

# The seed's claim: xip takes two faults for the first private write, the designs after it one,
# except v7-insert (two); xip races with truncate, v7-insert mis-accounts the COW page.
SEED_FAULTS = {"xip": 2, "v7": 1, "v7-insert": 2, "v4.0": 1, "v4.7": 1, "v4.10": 1, "v6.1": 1, "v6.18": 1}
SEED_VERDICTS = {"xip": "stale-pte-after-truncate", "v7": "clean", "v7-insert": "cow-accounting",
                 "v4.0": "clean", "v4.7": "clean", "v4.10": "clean", "v6.1": "clean", "v6.18": "clean"}



def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, ["compare", *args])


@pytest.fixture(scope="module")
def seed_json() -> dict[str, Any]:
    res = invoke(SEED, "--json")
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.output)
    return doc


def test_json_has_every_design_with_the_seeds_fault_counts_and_verdicts(seed_json: dict[str, Any]) -> None:
    rows = seed_json["rows"]
    assert [r["design"] for r in rows] == list(DESIGNS)
    assert {r["design"]: r["faults"]["total"] for r in rows} == SEED_FAULTS
    assert {r["design"]: r["verdict"] for r in rows} == SEED_VERDICTS
    for r in rows:
        assert list(r["faults"]) == list(FAULT_COLUMNS)
        assert r["scenario"] == SEED
        assert r["explore"]["strategy"] == "dpor"
        if r["verdict"] == "clean":
            assert r["explore"]["complete"] is True
        else:
            assert r["explore"]["violations"][0]["replay"].startswith(f"faultlab replay {SEED} --design ")


def test_json_costs_are_those_of_a_sequential_run(seed_json: dict[str, Any]) -> None:
    scenario = load_scenario(SEED)
    for r in seed_json["rows"]:
        result = ModelExecution(scenario, get_design(r["design"])).run(SequentialChooser())
        assert r["bytes_copied"] == result.counters["bytes_copied"]
        assert r["pages_zeroed"] == result.counters["pages_zeroed"]
        assert r["locks"] == {cls: result.lock_counts[cls] for cls in sorted(result.lock_counts, key=lock_sort_key)}
        assert r["lock_hold_max"] == {cls: result.lock_hold_max.get(cls, 0) for cls in r["locks"]}
        assert r["faults"]["wp-copy"] == result.counters["fault.wp-copy"]
    xip = seed_json["rows"][0]
    assert xip["faults"]["cow"] == 1 and xip["faults"]["wp-copy"] == 1
    v7_insert = seed_json["rows"][2]
    assert v7_insert["bytes_copied"] == 2 * 4096  # copies twice (docs/designs.md)
    assert v7_insert["run_violations"] == ["cow-accounting"]


def test_text_table_shows_the_seeds_claim_next_to_the_verdicts() -> None:
    res = invoke(SEED)
    assert res.exit_code == 0, res.output  # a comparison is a report, violations included
    lines = res.output.splitlines()
    assert lines[0].startswith("A private write fault on a DAX file races with truncate  [")
    header = next(ln for ln in lines if ln.startswith("design"))
    for col in ("faults", "major", "read", "cow", "shared", "wp-copy", "wp-reuse", "copied", "zeroed", "locks",
                "taken", "held", "verdict"):
        assert col in header
    rows = {ln.split()[0]: ln for ln in lines if ln.strip() and ln.split()[0] in DESIGNS}
    assert list(rows) == list(DESIGNS)
    for name, line in rows.items():
        cells = line.split()
        assert int(cells[1]) == SEED_FAULTS[name], line  # the "faults" column
        verdict = "clean" if SEED_VERDICTS[name] == "clean" else "VIOLATION"
        assert verdict in cells, line
    assert "stale-pte-after-truncate" in res.output and "cow-accounting" in res.output
    v7 = explore_design(load_scenario(SEED), get_design("v7")).result
    assert v7.complete and f"{v7.schedules} schedules, complete" in res.output


def test_a_narrow_terminal_gets_every_column_rather_than_a_squeezed_table() -> None:
    buf = io.StringIO()
    out = Console(file=buf, width=80, color_system=None, force_terminal=True)
    print_comparison(out, compare([load_scenario(SEED)], [(get_design("xip"), "xip")]))
    text = buf.getvalue()
    assert "…" not in text
    header = next(ln for ln in text.splitlines() if ln.startswith("design"))
    assert "wp-reuse" in header and "verdict (dfs)" in header
    assert "stale-pte-after-truncate" in text


def test_lock_names_are_short_and_ordered_outermost_first() -> None:
    assert short_lock("&mapping->i_mmap_rwsem") == "i_mmap_rwsem"
    assert short_lock("&ei->i_mmap_sem") == "ei->i_mmap_sem"
    assert short_lock("dax entry lock") == "dax entry lock"
    order = sorted(["ptlock", "&mm->mmap_sem", "zz-new", "&inode->i_rwsem", "dax entry lock"], key=lock_sort_key)
    assert order == ["&inode->i_rwsem", "&mm->mmap_sem", "dax entry lock", "ptlock", "zz-new"]


def test_options_pass_through_to_the_exploration() -> None:
    res = invoke(SEED, "--design", "v4.0,v4.10", "--max-schedules", "2", "--bound", "1", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["bound"] == 1 and doc["max_schedules"] == 2
    for r in doc["rows"]:
        assert r["explore"]["schedules"] == 2
        assert r["explore"]["bound"] == 1
        assert r["explore"]["complete"] is False
    text = invoke(SEED, "--design", "v4.0", "--max-schedules", "2").output
    assert "not complete" in text and "(max-schedules)" in text
    assert "at most 2 schedules" in text


def test_budget_is_accepted_and_reported() -> None:
    res = invoke(SEED, "--design", "v4.0", "--budget", "30", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["budget_seconds"] == 30
    assert doc["rows"][0]["verdict"] == "clean"


def test_several_scenarios_give_a_row_per_design_and_scenario() -> None:
    res = invoke(SEED, UNLOCK, "--design", "xip,v4.0", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert [(r["scenario"], r["design"]) for r in doc["rows"]] == [
        (SEED, "xip"), (SEED, "v4.0"), (UNLOCK, "xip"), (UNLOCK, "v4.0")]
    assert [s["path"] for s in doc["scenarios"]] == [SEED, UNLOCK]
    text = invoke(SEED, UNLOCK, "--design", "xip,v4.0").output
    assert "cow-vs-truncate" in text and "cow-unlock-mismatch" in text
    assert text.count("  xip ") == 2


def test_a_design_file_is_compared_and_named_in_its_replay_command(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(NO_RECHECK)
    res = invoke(SEED, "--design", str(path), "--json")
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)["rows"][0]
    assert row["design"] == "my-no-recheck"
    assert row["verdict"] == "stale-pte-after-truncate"
    assert f"--design {path} --schedule fl1:" in row["explore"]["violations"][0]["replay"]


def test_each_design_of_a_list_is_named_in_its_own_replay_command(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(NO_RECHECK)
    res = invoke(SEED, "--design", f"xip, {path}", "--json")
    assert res.exit_code == 0, res.output
    replays = [r["explore"]["violations"][0]["replay"] for r in json.loads(res.output)["rows"]]
    assert "--design xip --schedule" in replays[0]
    assert f"--design {path} --schedule" in replays[1]


def test_html_report_is_written(tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    res = invoke(SEED, "--design", "xip,v4.0", "--html", str(out))
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html and "stale-pte-after-truncate" in html
    assert 'data-thread="faulter"' in html  # the counterexample's swim lanes


@pytest.mark.parametrize("args, words", [
    ([], ["missing argument 'SCENARIO...'", "faultlab compare --help"]),
    (["nope.toml"], ["nope.toml", "cannot read"]),
    ([SEED, "--design", "nope"], ["unknown design 'nope'"]),
    ([SEED, "--max-schedules", "0"], ["--max-schedules"]),
    ([SEED, "--budget", "0"], ["--budget"]),
    ([SEED, "--html", "/nonexistent-dir/x.html"], ["no such directory"]),
])
def test_bad_input_exits_2_with_one_message(args: list[str], words: list[str]) -> None:
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("faultlab: "), res.stderr
    for w in words:
        assert w in lines[0]


SEED_BYTES_COPIED = {"xip": 4096, "v7": 4096, "v7-insert": 2 * 4096, "v4.0": 4096, "v4.7": 4096, "v4.10": 4096,
                     "v6.1": 4096, "v6.18": 4096}
"""One page copied by the first private write, twice by v7-insert (docs/designs.md)."""


def test_the_compare_api_gives_the_seeds_facts() -> None:
    """compare() on its own: the seed's fault counts, copies and verdicts per design (the claim the
    command's table shows, checked above), for two scenarios at once, rows scenario by scenario."""
    seed, unlock = load_scenario(SEED), load_scenario(UNLOCK)
    c = compare([seed, unlock], [(d, d.name) for d in DESIGNS.values()], max_schedules=200)
    rows = c.json()["rows"]
    assert [(r["scenario"], r["design"]) for r in rows] == [(s, d) for s in (SEED, UNLOCK) for d in DESIGNS]
    seed_rows = {r["design"]: r for r in rows[: len(DESIGNS)]}
    assert {d: r["faults"]["total"] for d, r in seed_rows.items()} == SEED_FAULTS
    assert {d: r["verdict"] for d, r in seed_rows.items()} == SEED_VERDICTS
    assert {d: r["bytes_copied"] for d, r in seed_rows.items()} == SEED_BYTES_COPIED
    for d, r in seed_rows.items():
        explored = r["explore"]
        if SEED_VERDICTS[d] == "clean":
            assert explored["complete"] and explored["violations"] == [], d
        else:
            assert explored["violations"][0]["id"] == SEED_VERDICTS[d], d
    assert all(r["faults"]["total"] >= 1 for r in rows[len(DESIGNS):])  # the second scenario ran too
