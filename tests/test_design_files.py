"""Designs loaded from a user's Python file (docs/designs.md, "Writing your own")."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from design_examples import NO_RECHECK, SAME_AS_V40

from faultlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "scenarios/seed/cow-vs-truncate.toml")



def test_a_design_file_is_explored_and_its_race_found(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(NO_RECHECK)
    res = CliRunner().invoke(main, ["explore", SEED, "--design", str(path)])
    assert res.exit_code == 1, res.output
    assert "my-no-recheck" in res.output
    assert "VIOLATION stale-pte-after-truncate" in res.output
    assert f"--design {path} --schedule fl1:" in res.output  # the replay command names the file


def test_the_unchanged_base_design_from_a_file_explores_clean(tmp_path: Path) -> None:
    path = tmp_path / "same.py"
    path.write_text(SAME_AS_V40)
    res = CliRunner().invoke(main, ["explore", SEED, "--design", str(path)])
    assert res.exit_code == 0, res.output
    assert "clean" in res.output


def _one_line_error(res: object) -> str:
    out = res.output  # type: ignore[attr-defined]
    assert res.exit_code == 2, out  # type: ignore[attr-defined]
    assert "Traceback" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return lines[0]


def test_a_design_file_that_fails_to_import_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("from faultlab.designs.v4_0 import DESIGN\n\nraise RuntimeError('oops')\n")
    line = _one_line_error(CliRunner().invoke(main, ["run", SEED, "--design", str(path)]))
    assert f"{path}:3" in line and "RuntimeError: oops" in line


def test_a_design_file_without_a_design_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.py"
    path.write_text("X = 1\n")
    line = _one_line_error(CliRunner().invoke(main, ["run", SEED, "--design", str(path)]))
    assert "expected a module-level DESIGN" in line


def test_an_unknown_design_name_lists_the_known_ones() -> None:
    line = _one_line_error(CliRunner().invoke(main, ["explore", SEED, "--design", "v5.0"]))
    assert "unknown design 'v5.0'" in line and "v4.10" in line and "xip" in line
