"""Checkpoint and resume: an interrupted search goes on from its checkpoint, and the runs of the
two parts are exactly the runs of one uninterrupted search; Ctrl-C and SIGTERM stop cleanly."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultlab.errors import UserError
from faultlab.explore import interrupt, toys
from faultlab.explore.checkpoint import FORMAT, Checkpoint, load_entries
from faultlab.explore.explorer import explore
from faultlab.explore.results import Stats
from tests.design_examples import NO_RECHECK
from tests.test_explore_parallel import HandOffAfter

ROOT = Path(__file__).resolve().parent.parent
RACE = "scenarios/races/three-hole-readers.toml"


@pytest.mark.parametrize("hand_off", [None, 2])
@pytest.mark.parametrize("part", [0.0, 0.3, 0.6])
@pytest.mark.parametrize("strategy", ["dpor", "dfs"])
def test_interrupted_search_resumes_to_exactly_one_full_search(tmp_path: Path, part: float,
                                                               strategy: str, hand_off: int | None) -> None:
    """(``hand_off``: every task hands its rest back after that many runs, so the checkpoint holds
    nodes the coordinator took from its tasks.)"""
    prog = toys.counter(3, padding=1) if strategy == "dpor" else toys.counter(3)  # plain: 10x the runs
    full = explore(prog, strategy, stop_on_first=False, minimise=False, keep_schedules=True)
    executor = None if hand_off is None else HandOffAfter(prog, hand_off)
    stop_after = max(1, int(full.schedules * part))
    path = str(tmp_path / "cp")

    def stop_at(stats: Stats) -> None:
        if stats.schedules == stop_after:
            interrupt.request()

    try:
        first = explore(prog, strategy, stop_on_first=False, minimise=False, keep_schedules=True,
                        progress=stop_at, checkpoint=Checkpoint(path, resume=False).for_search("k"),
                        executor=executor)
    finally:
        interrupt.clear()
    assert first.stop_reason == "interrupted" and not first.complete
    assert 0 < first.schedules < full.schedules
    assert first.schedules_list == full.schedules_list[: first.schedules]  # nothing counted twice
    rest = explore(prog, strategy, stop_on_first=False, minimise=False, keep_schedules=True,
                   checkpoint=Checkpoint(path, resume=True).for_search("k"),
                   executor=None if hand_off is None else HandOffAfter(prog, hand_off))
    assert rest.complete and rest.stop_reason == "exhausted"
    assert rest.schedules_list == full.schedules_list  # nothing lost, nothing twice
    assert rest.summary() == full.summary()
    assert rest.final_states == full.final_states
    # Resuming a finished search runs nothing more.
    again = explore(prog, strategy, stop_on_first=False, minimise=False, keep_schedules=True,
                    checkpoint=Checkpoint(path, resume=True).for_search("k"))
    assert again.summary() == full.summary()


def test_bad_checkpoint_files_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        Checkpoint(str(tmp_path / "missing"), resume=True)
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cannot be read"):
        Checkpoint(str(junk), resume=True)
    other = tmp_path / "other"
    other.write_bytes(pickle.dumps({"format": "something-else"}))
    with pytest.raises(UserError, match=f"is not a {FORMAT} file"):
        Checkpoint(str(other), resume=True)
    older = tmp_path / "older"
    older.write_bytes(pickle.dumps({"format": "faultlab-checkpoint-1", "entries": {}}))
    with pytest.raises(UserError, match="is a faultlab-checkpoint-1 file, from another version of faultlab"):
        Checkpoint(str(older), resume=True)
    with pytest.raises(UserError, match="directory"):
        Checkpoint(str(tmp_path / "no" / "such" / "dir"), resume=False)


@pytest.mark.parametrize("cap", [5, 17])
def test_a_search_stopped_by_max_schedules_saves_where_it_stopped(tmp_path: Path, cap: int) -> None:
    """Stopped part way through a task by --max-schedules (or the time budget, the same path), the
    search saves the state before that task: resumed, it runs the rest, nothing twice."""
    prog = toys.counter(3, padding=1)
    full = explore(prog, "dpor", stop_on_first=False, minimise=False, keep_schedules=True)
    path = str(tmp_path / "cp")
    first = explore(prog, "dpor", stop_on_first=False, minimise=False, keep_schedules=True, max_schedules=cap,
                    checkpoint=Checkpoint(path, resume=False, interval=3600).for_search("k"))
    assert first.stop_reason == "max-schedules" and first.schedules == cap
    assert 0 < _saved_schedules(Path(path)) <= cap  # saved at the last task boundary before the stop
    rest = explore(prog, "dpor", stop_on_first=False, minimise=False, keep_schedules=True,
                   checkpoint=Checkpoint(path, resume=True).for_search("k"))
    assert rest.complete and rest.schedules_list == full.schedules_list
    assert rest.summary() == full.summary()


def test_a_damaged_or_hand_made_checkpoint_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    prog = toys.counter(3, padding=1)
    path = tmp_path / "cp"
    explore(prog, "dpor", stop_on_first=False, minimise=False,
            checkpoint=Checkpoint(str(path), resume=False).for_search("k"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of the saved state
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="is damaged"):
        Checkpoint(str(path), resume=True)

    def hand_made(entry: object) -> Checkpoint:
        payload = pickle.dumps({"k": entry})
        path.write_bytes(pickle.dumps({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                                       "entries": payload}))
        return Checkpoint(str(path), resume=True).for_search("k")

    with pytest.raises(UserError, match="its entries are not searches"):
        hand_made("garbage")
    for entry in ({}, {"top": -5}, {"top": 1}, {"top": 1, "path": [(1, 2)], "collector": {}}):
        with pytest.raises(UserError, match="is damaged"):
            explore(prog, "dpor", stop_on_first=False, minimise=False, checkpoint=hand_made(entry))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "faultlab", "explore", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def _designs(out: str) -> list[dict[str, object]]:
    doc = json.loads(out)
    assert "timing" in doc
    return doc["designs"]  # type: ignore[no-any-return]


def _saved_schedules(path: Path) -> int:
    try:
        entries = load_entries(path)
    except UserError:  # (not written yet)
        return 0
    return sum(e["collector"]["schedules"] for e in entries.values())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_exploration_resumes_from_its_checkpoint(tmp_path: Path, sig: signal.Signals) -> None:
    args = [RACE, "--design", "v4.7", "--bound", "2", "--json", "--quiet"]
    full = _cli(*args, "--jobs", "1")
    out, err = full.communicate(timeout=300)
    assert full.returncode == 0, err
    whole = _designs(out)
    total = whole[0]["schedules"]
    assert isinstance(total, int) and total > 1000
    cp = tmp_path / "progress.ckpt"
    proc = _cli(*args, "--checkpoint", str(cp), env={"FAULTLAB_CHECKPOINT_INTERVAL": "0.05"})
    deadline = time.monotonic() + 120
    while _saved_schedules(cp) < 50 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, err
        assert "progress saved. Resume with: faultlab explore" in err and "--resume" in err
        assert "Traceback" not in err
    done = _saved_schedules(cp)
    assert 0 < done < total, "killed too late to test a resume"
    rest = _cli(*args, "--resume", str(cp))
    out2, err2 = rest.communicate(timeout=300)
    assert rest.returncode == 0, err2
    assert _designs(out2) == whole  # the same counts, steps, final states and verdict as one run


def test_ctrl_c_without_a_checkpoint_exits_130_with_a_hint() -> None:
    # Unbounded, this scenario runs far longer than the test waits: SIGINT arrives part way.
    proc = _cli(RACE, "--design", "v4.7", "--quiet", "--jobs", "2")
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("faultlab: interrupted (SIGINT) while exploring v4.7: ")
    assert "schedules" in lines[0] and "--checkpoint FILE" in lines[0]
    assert "v4.7" in out and "not complete (stopped: interrupted)" in out


def test_resuming_another_search_or_an_edited_design_file_is_refused(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from faultlab.cli import main

    design = tmp_path / "mine.py"
    source = NO_RECHECK.replace('"my-no-recheck"', '"mine"')
    design.write_text(source)
    cp = str(tmp_path / "cp")
    seed = str(ROOT / "scenarios/seed/cow-vs-truncate.toml")
    args = ["explore", seed, "--quiet", "--jobs", "1"]
    first = CliRunner().invoke(main, [*args, "--design", str(design), "--max-schedules", "3", "--checkpoint", cp])
    assert first.exit_code == 0, first.output
    resumed = CliRunner().invoke(main, [*args, "--design", str(design), "--resume", cp])
    assert resumed.exit_code == 1 and "mine                    VIOLATION stale-pte-after-truncate  after 7 " \
        "schedules" in resumed.output, resumed.output
    for change in (["--design", "v4.0"], ["--design", str(design), "--bound", "1"], ["--design", str(design)]):
        if change == ["--design", str(design)]:
            design.write_text(source.replace("    vmf.page = page", "    vmf.page = page  # edited"))
        res = CliRunner().invoke(main, [*args, *change, "--resume", cp])
        assert res.exit_code == 2, (change, res.output)
        assert res.stderr.startswith(f"faultlab: checkpoint {cp} holds no progress of this command's searches "
                                     "(it holds: mine (dpor, retry bound 2, code digest "), res.stderr
        assert len(res.stderr.splitlines()) == 1


def test_a_resumed_search_reports_the_rates_of_its_own_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from faultlab.cli import main

    cp = str(tmp_path / "cp")
    args = ["explore", str(ROOT / "scenarios/seed/cow-vs-truncate.toml"), "--design", "v4.7", "--quiet", "--jobs",
            "1", "--json"]
    first = CliRunner().invoke(main, [*args, "--max-schedules", "20", "--checkpoint", cp])
    assert json.loads(first.stdout)["timing"]["v4.7"]["resumed_at_schedule"] == 0
    rest = json.loads(CliRunner().invoke(main, [*args, "--resume", cp]).stdout)
    timing, schedules = rest["timing"]["v4.7"], rest["designs"][0]["schedules"]
    assert 0 < timing["resumed_at_schedule"] <= 20 < schedules
    ran = schedules - timing["resumed_at_schedule"]  # (the rate and the time are both rounded)
    assert abs(timing["schedules_per_second"] * timing["elapsed_seconds"] - ran) <= 0.1 * ran + 1
