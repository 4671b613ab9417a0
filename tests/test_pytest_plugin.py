"""The pytest plugin (entry point ``pytest11``): the ``faultlab_explore`` fixture, used here the way
docs/tutorial.md shows it, and, through ``pytester``, the failure a violating design produces."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from design_examples import NO_RECHECK

from faultlab.designs import get_design
from faultlab.designs.v4_0 import DESIGN as V40
from faultlab.exploring import explore_design
from faultlab.pytest_plugin import FaultlabExplore
from faultlab.scenario import ScenarioBuilder, load_scenario

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "scenarios/seed/cow-vs-truncate.toml")



def test_the_plugin_is_registered_as_an_entry_point(pytestconfig: pytest.Config) -> None:
    assert any(ep.value == "faultlab.pytest_plugin" for ep in entry_points(group="pytest11"))
    assert pytestconfig.pluginmanager.has_plugin("faultlab")


# -- the fixture, as a user writes it -----------------------------------------------------------------
def test_v4_0_is_race_free(faultlab_explore: FaultlabExplore) -> None:
    verdict = faultlab_explore(SEED, design="v4.0")
    assert verdict.clean and verdict.result.complete


def test_xip_has_the_race(faultlab_explore: FaultlabExplore) -> None:
    verdict = faultlab_explore(SEED, design="xip", expect="stale-pte-after-truncate")
    assert verdict.counterexamples[0].replay_command.endswith(verdict.counterexamples[0].schedule)


def test_a_builder_scenario_and_a_design_class(faultlab_explore: FaultlabExplore) -> None:
    scenario = (ScenarioBuilder("a shared store races with truncate", fs="dax")
                .file("data", size="2p", fill="A")
                .thread("writer", "m = mmap data 0 2p shared rw", "store m 1p B")
                .thread("truncator", "truncate data 1p"))
    for verdict, name in ((faultlab_explore(scenario, design=V40), "v4.0"),
                          (faultlab_explore(scenario.build(), design="v4.10"), "v4.10")):
        assert verdict.design == name and verdict.clean and verdict.result.complete
        assert verdict.counterexamples == []
        # Both orders were explored: the store lands before the truncate (ok), or after it, on a
        # page wholly past the new EOF (SIGBUS); either way the file ends one page long.
        outcomes = {dict(((t, op), out) for t, op, out in ops)[("writer", "store m 1p B")]
                    for ops, _files in verdict.result.final_states}
        assert outcomes == {"ok", "SIGBUS"}
        assert {files[0][:2] for _ops, files in verdict.result.final_states} == {("data", 4096)}


@pytest.mark.faultlab(max_schedules=3)
def test_the_marker_sets_default_limits(faultlab_explore: FaultlabExplore) -> None:
    assert faultlab_explore(SEED, design="v4.0").result.schedules == 3
    assert faultlab_explore(SEED, design="v4.0", max_schedules=5).result.schedules == 5  # the call wins


def test_a_design_file_relative_to_the_rootdir(faultlab_explore: FaultlabExplore, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine.py").write_text(NO_RECHECK)
    monkeypatch.chdir(tmp_path)
    verdict = faultlab_explore("scenarios/seed/cow-vs-truncate.toml", design="mine.py",
                               expect="stale-pte-after-truncate")
    assert "--design mine.py --schedule" in verdict.counterexamples[0].replay_command


def test_unknown_limits_are_a_type_error(faultlab_explore: FaultlabExplore) -> None:
    with pytest.raises(TypeError, match="max_schedule"):
        faultlab_explore(SEED, design="v4.0", max_schedule=3)


# -- what a failing user test prints ------------------------------------------------------------------
USER_TESTS = f'''
import pytest

SEED = {SEED!r}


def test_my_design_is_race_free(faultlab_explore):
    faultlab_explore(SEED, design="mine.py")


def test_v4_0_has_the_race(faultlab_explore):
    faultlab_explore(SEED, design="v4.0", expect="stale-pte-after-truncate")


def test_unknown_design(faultlab_explore):
    faultlab_explore(SEED, design="v9")


def test_xip(faultlab_explore):
    faultlab_explore(SEED, design="xip", expect="stale-pte-after-truncate")
'''


@pytest.fixture
def user_run(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makepyfile(mine=NO_RECHECK, test_user=USER_TESTS)
    return pytester.runpytest("-p", "no:cacheprovider", "--faultlab-html", "reports")


def test_a_violation_fails_with_the_minimal_counterexample(user_run: pytest.RunResult) -> None:
    user_run.assert_outcomes(passed=1, failed=3)
    out = user_run.stdout.str()
    section = out.split("test_my_design_is_race_free")[1].split("_ test_v4_0_has_the_race")[0]
    assert "faultlab: design my-no-recheck breaks stale-pte-after-truncate on" in section
    assert "(anon) rw dirty after truncate to 4096 had finished" in section  # the message
    assert "minimal counterexample: 1 preemption(s)" in section
    assert "swim lanes" in section and "faulter" in section and "truncator" in section
    assert "<< violation detected here" in section
    assert "replay it with:" in section
    assert f"faultlab replay {SEED} --design mine.py --schedule fl1:" in section
    assert "Traceback" not in section and "def test_" not in section  # the message, not a traceback


def test_expecting_a_race_that_is_not_there_fails(user_run: pytest.RunResult) -> None:
    out = user_run.stdout.str()
    assert "faultlab: expected v4.0 to break stale-pte-after-truncate" in out
    v40 = explore_design(load_scenario(SEED), get_design("v4.0")).result
    assert v40.complete and f"but the exploration found none (dfs, {v40.schedules} schedules)" in out


def test_bad_input_fails_with_one_line(user_run: pytest.RunResult) -> None:
    section = user_run.stdout.str().split("_ test_unknown_design _")[1].split("_ test_xip")[0]
    assert "faultlab: unknown design 'v9'" in section
    assert "During handling" not in section and "Traceback" not in section


def test_html_reports_of_failures(user_run: pytest.RunResult, pytester: pytest.Pytester) -> None:
    reports = sorted(p.name for p in (pytester.path / "reports").iterdir())
    assert reports == ["test_user.py_test_my_design_is_race_free.my-no-recheck.html"]
    assert "HTML report: reports/test_user.py_test_my_design_is_race_free.my-no-recheck.html" in (
        user_run.stdout.str())
    page = (pytester.path / "reports" / reports[0]).read_text()
    assert 'class="band broken"' in page and 'data-thread="truncator"' in page
