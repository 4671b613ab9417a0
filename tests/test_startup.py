"""Start-up: the command line imports what a command uses, when it runs (docs/benchmarks.md,
"Start-up"). Checked in fresh interpreters, whose sys.modules shows what was imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from faultlab.cli import main
from faultlab.designs import get_design
from faultlab.exploring import explore_design
from faultlab.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SEED = "scenarios/seed/cow-vs-truncate.toml"
NEVER_FOR_EXPLORE = ("faultlab.oracle", "faultlab.compare", "faultlab.report.html", "faultlab.report.progress",
                     "rich.progress")


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running ``code``."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.__stderr__)\n"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    lines = proc.stderr.strip().splitlines()
    assert lines, proc.stderr
    return set(json.loads(lines[-1]))


def modules_after_command(args: list[str], status: int) -> set[str]:
    """The modules imported by ``faultlab ARGS``, which must exit with ``status``."""
    return modules_after(f"from faultlab.cli import main\ntry:\n    main({args!r})\nexcept SystemExit as e:\n"
                         f"    assert e.code == {status}, e.code\nelse:\n    raise AssertionError('no exit')\n")


def imported(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_importing_the_cli_imports_no_command() -> None:
    modules = modules_after("import faultlab.cli")
    assert imported(modules, "faultlab") == ["faultlab", "faultlab.cli", "faultlab.errors", "faultlab.limits"]
    assert imported(modules, "rich") == []
    assert "click" in modules


def test_explore_imports_neither_the_oracle_nor_compare_nor_the_html_report() -> None:
    # exit status 1: xip's counterexample was found, so the model really ran
    modules = modules_after_command(["explore", SEED, "--design", "xip", "--quiet"], 1)
    assert "faultlab.exploring" in modules and "faultlab.report.explore_text" in modules
    for package in NEVER_FOR_EXPLORE:
        assert imported(modules, package) == [], package


def test_run_replay_and_designs_import_no_oracle_and_no_compare() -> None:
    verdict = explore_design(load_scenario(str(ROOT / SEED)), get_design("xip"))
    schedule = verdict.counterexamples[0].schedule  # xip's race on the seed: the replay exits 1
    for args, status in ((["run", SEED], 0), (["run", SEED, "--json"], 0), (["designs"], 0),
                         (["replay", SEED, "--schedule", schedule], 1)):
        modules = modules_after_command(args, status)
        assert ("faultlab.designs" in modules) and ("faultlab.scenario" in modules or args == ["designs"]), args
        for package in ("faultlab.oracle", "faultlab.compare", "faultlab.report.html", "rich.progress"):
            assert imported(modules, package) == [], (args, package)


def test_the_oracle_command_is_there_when_asked_for() -> None:
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "oracle" in res.output and "explore" in res.output
    res = CliRunner().invoke(main, ["oracle", "--help"])
    assert res.exit_code == 0, res.output
    assert "--kernel" in res.output and "host-tmpfs" in res.output
