"""Runs that end early: a design's error (``design-error``), a run that does not end (``livelock``),
the model's own error (``model-error``), and Ctrl-C during ``run``; each with the design's file and
line, the step, and a schedule that replays it."""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from faultlab import limits
from faultlab.cli import main
from faultlab.designs import get_design
from faultlab.designs.loader import load_design_file
from faultlab.execution import ModelExecution
from faultlab.scenario import ScenarioBuilder, load_scenario
from faultlab.sched import SequentialChooser, watchdog

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "scenarios/seed/cow-vs-truncate.toml")
HEAD = ("from faultlab.designs.v4_0 import DESIGN as V40\nfrom faultlab.kernel.eras import v4_0 as era\n\n\n"
        "def do_cow_fault(k, vmf):\n")
TAIL = "\n\nDESIGN = V40.variant('mine', 's', 'src', {era.do_cow_fault: do_cow_fault})\n"
BODY_LINE = 6  # the first line of the body in a file made by _design()


def _design(tmp_path: Path, body: str, name: str = "d.py") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + "".join(f"    {line}\n" for line in body.splitlines()) + TAIL)
    return path


def _replay_line(output: str) -> list[str]:
    lines = output.splitlines()
    assert "replay it with:" in lines, output
    return shlex.split(lines[lines.index("replay it with:") + 1])


@pytest.mark.parametrize(("body", "what", "line"), [
    ("raise RuntimeError('in run')", "RuntimeError: in run", BODY_LINE),
    ("raise SystemExit(3)", "SystemExit: 3", BODY_LINE),
    ("raise GeneratorExit", "GeneratorExit", BODY_LINE),
    ("raise KeyboardInterrupt", "KeyboardInterrupt", BODY_LINE),  # the design's own, no signal
    ("x = None\nreturn x.y", "AttributeError: 'NoneType' object has no attribute 'y'", BODY_LINE + 1),
    ("return do_cow_fault(k, vmf)", "RecursionError: maximum recursion depth exceeded", BODY_LINE),
])
def test_a_design_that_fails_during_a_run_is_a_design_error_at_its_line(
        tmp_path: Path, body: str, what: str, line: int) -> None:
    path = _design(tmp_path, body)
    res = CliRunner().invoke(main, ["run", SEED, "--design", str(path)])
    assert res.exit_code == 1, (res.output, res.exception)
    assert f"VIOLATION design-error: {what}, raised in do_cow_fault() at {path}:{line} (thread faulter, step " \
        in res.output, res.output
    assert "Traceback" not in res.output
    assert "lock-pairing" not in res.output  # the run was cut short: no end-of-run checks
    replay = _replay_line(res.output)
    assert replay[:2] == ["faultlab", "replay"] and str(path) in replay
    again = CliRunner().invoke(main, replay[1:])
    assert again.exit_code == 1 and f"design-error: {what}" in again.output, again.output


def test_a_wrong_return_type_is_the_designs_error_not_the_models(tmp_path: Path) -> None:
    path = _design(tmp_path, "return 'x'")
    res = CliRunner().invoke(main, ["run", SEED, "--design", str(path)])
    assert res.exit_code == 1, res.output
    assert (f"VIOLATION design-error: do_cow_fault() returned 'x', a str: the function it replaces returns int "
            f"(in do_cow_fault() at {path}:{BODY_LINE - 1}, thread faulter, step ") in res.output, res.output


def test_an_error_of_the_models_own_code_stays_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from faultlab.kernel.eras import v4_0

    def broken(k: object, vmf: object) -> int:
        raise ValueError("a model bug")

    monkeypatch.setattr(v4_0, "do_cow_fault", broken)
    design = dataclasses.replace(get_design("v4.0"), _images={})  # linked anew, with the broken function
    result = ModelExecution(load_scenario(SEED), design).run(SequentialChooser())
    (v,) = result.violations
    assert v.id == "model-error"
    assert v.message.startswith("ValueError: a model bug, raised in broken() at tests/test_run_errors.py:")
    assert "(thread faulter, step " in v.message


def test_a_design_looping_through_scheduling_points_is_a_livelock_at_the_step_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic: the step limit, whatever the clock; the replay shows the same livelock."""
    monkeypatch.setattr(limits, "STEPS_PER_RUN", 20_000)  # (a tenth: the test's time)
    path = _design(tmp_path, "while True:\n    k.sched.point(('spin', 0), 1, 'spin')")
    res = CliRunner().invoke(main, ["run", SEED, "--design", str(path)])
    assert res.exit_code == 1, (res.output, res.exception)
    scenario = load_scenario(SEED)
    limit = ModelExecution(scenario, load_design_file(str(path))).step_limit
    assert f"VIOLATION livelock: the run went past its limit of {limit} steps (thread faulter, step {limit}, " \
        f"in do_cow_fault() at {path}:{BODY_LINE + 1}): it does not terminate" in res.output, res.output
    replay = _replay_line(res.output)
    again = CliRunner().invoke(main, replay[1:])
    assert again.exit_code == 1 and f"livelock: the run went past its limit of {limit} steps" in again.output


def test_a_step_that_never_reaches_a_scheduling_point_is_stopped(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchdog, "STEP_SECONDS", 1.0)
    design = load_design_file(str(_design(tmp_path, "while True:\n    pass")))
    result = ModelExecution(load_scenario(SEED), design).run(SequentialChooser())
    (v,) = result.violations
    assert v.id == "livelock"
    assert v.message.startswith("a step ran for 1 s without reaching a scheduling point (thread faulter, step ")
    assert v.message.endswith(f"d.py:{BODY_LINE})")  # the loop's backward jump
    # The watchdog is quiet once the run is over, and watches the next run afresh.
    assert not ModelExecution(load_scenario(SEED), get_design("v4.10")).run(SequentialChooser()).violations


SETUP_COW = """title = "a COW fault in the set-up"
fs = "ext4"

[files.f]
size = "1p"
fill = "A"

[setup]
ops = ["m = mmap f 0 1p private rw", "store m 0 S"]

[threads.t]
ops = ["load m 0 1"]
"""


def test_a_set_up_that_livelocks_is_a_livelock_at_the_step_limit(tmp_path: Path) -> None:
    """The set-up runs before the threads, outside the scheduler: its scheduling points count
    toward the step limit too (a COW fault that never installs its PTE retries for ever)."""
    scenario = tmp_path / "s.toml"
    scenario.write_text(SETUP_COW)
    path = _design(tmp_path, "return 0")
    res = _faultlab("run", str(scenario), "--design", str(path), timeout=60)
    assert res.returncode == 1, res.stderr
    limit = ModelExecution(load_scenario(str(scenario)), load_design_file(str(path))).step_limit
    assert f"VIOLATION livelock: the run went past its limit of {limit} steps (in the set-up, in " \
        in res.stdout, res.stdout
    assert "Traceback" not in res.stdout + res.stderr


def test_a_set_up_step_that_never_reaches_a_scheduling_point_is_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchdog, "STEP_SECONDS", 1.0)
    scenario = tmp_path / "s.toml"
    scenario.write_text(SETUP_COW)
    design = load_design_file(str(_design(tmp_path, "while True:\n    pass")))
    (v,) = ModelExecution(load_scenario(str(scenario)), design).run(SequentialChooser()).violations
    assert v.id == "livelock"
    assert v.message.startswith("a step ran for 1 s without reaching a scheduling point (in the set-up, in ")


def _faultlab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultlab", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def test_explore_under_a_budget_returns_from_a_design_that_never_reaches_a_scheduling_point(
        tmp_path: Path) -> None:
    path = _design(tmp_path, "while True:\n    pass")
    res = _faultlab("explore", SEED, "--design", str(path), "--budget", "1", "--quiet")
    assert res.returncode == 1, res.stderr
    assert "mine                    VIOLATION livelock" in res.stdout, res.stdout
    assert "a step was still running when the time budget ran out without reaching a scheduling point" \
        in res.stdout
    assert f"faultlab replay {SEED} --design {path} --schedule fl1:" in res.stdout


def test_explore_reports_a_design_error_with_a_replay_command(tmp_path: Path) -> None:
    path = _design(tmp_path, "raise RuntimeError('in run')")
    res = CliRunner().invoke(main, ["explore", SEED, "--design", str(path), "--jobs", "1"])
    assert res.exit_code == 1, res.output
    assert "mine                    VIOLATION design-error" in res.output
    assert f"\nmine: design-error\nRuntimeError: in run, raised in do_cow_fault() at {path}:{BODY_LINE} (thread " \
        in res.output
    assert f"faultlab replay {SEED} --design {path} --schedule fl1:" in res.output


@pytest.mark.parametrize("signals", [1, 2])
def test_ctrl_c_during_run_exits_130_not_as_the_designs_error(tmp_path: Path, signals: int) -> None:
    """The first SIGINT ends the command after the run, a second at once; neither is the design's
    KeyboardInterrupt (run installs the same handler as explore)."""
    kills = "import os, signal\n" + "os.kill(os.getpid(), signal.SIGINT)\n" * signals
    path = _design(tmp_path, kills + "raise RuntimeError('after the signal')")
    res = _faultlab("run", SEED, "--design", str(path))
    assert res.returncode == 130, (res.stdout, res.stderr)
    assert res.stderr.strip() == "faultlab: interrupted"
    assert "design-error" not in res.stdout


def test_a_valid_scenario_past_the_fixed_part_of_the_step_limit_runs_to_its_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Why a valid two-thread tmpfs scenario was once called a livelock: steps grow with the ops
    (a tmpfs read fault maps 16 pages by fault-around, some 170 steps), and the limit was a fixed
    200,000 steps, which 1,200 such faults pass. The limit now grows with the ops. Shown here at a
    tenth of the scale: 140 faults against a fixed part of 20,000 steps."""
    monkeypatch.setattr(limits, "STEPS_PER_RUN", 20_000)
    ops = [f"load m {i * 16}p 1" for i in range(70)]
    scenario = (ScenarioBuilder("many faults", fs="tmpfs").file("d", size="2240p", fill="A")
                .thread("a", "m = mmap d 0 1120p shared r", *ops)
                .thread("b", "m = mmap d 1120p 1120p shared r", *ops).build())
    execution = ModelExecution(scenario, get_design("v4.10"))
    result = execution.run(SequentialChooser())
    assert result.violations == []
    assert all(str(r.outcome) == '"A"' for r in result.record.ops if r.op.startswith("load"))
    assert 20_000 < len(result.steps) < execution.step_limit
