"""Designs loaded from a user's Python file (docs/designs.md, "Writing your own")."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from faultlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "scenarios/seed/cow-vs-truncate.toml")

NO_RECHECK = '''
from faultlab.designs.v4_0 import V40


class NoRecheck(V40):
    name = "my-no-recheck"
    summary = "v4.0 without the i_size re-check in the COW branch"
    source = "an experiment"

    def cow_recheck_isize(self, k, vmf):
        return True
'''


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
    path.write_text(NO_RECHECK.replace("return True", "return super().cow_recheck_isize(k, vmf)"))
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
    path.write_text("from faultlab.designs.v4_0 import V40\n\nraise RuntimeError('oops')\n")
    line = _one_line_error(CliRunner().invoke(main, ["run", SEED, "--design", str(path)]))
    assert f"{path}:3" in line and "RuntimeError: oops" in line


def test_a_design_file_without_a_design_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.py"
    path.write_text("X = 1\n")
    line = _one_line_error(CliRunner().invoke(main, ["run", SEED, "--design", str(path)]))
    assert "expected exactly one subclass of faultlab.designs.base.Design, found 0" in line


def test_an_unknown_design_name_lists_the_known_ones() -> None:
    line = _one_line_error(CliRunner().invoke(main, ["explore", SEED, "--design", "v5.0"]))
    assert "unknown design 'v5.0'" in line and "v4.10" in line and "xip" in line


# -- every way a design file can fail at import or class creation: path:line, exit status 2 ----------
HEAD = "from faultlab.designs.v4_0 import V40\n\n"  # lines 1-2
BAD_DESIGNS = [
    # (name, source, line of the error, words the message must contain)
    ("base-exception", HEAD + "raise BaseException('boom')\n", 3, ["importing the design raised BaseException: boom"]),
    ("system-exit", HEAD + "raise SystemExit(3)\n", 3, ["SystemExit: 3"]),
    ("keyboard-interrupt", HEAD + "raise KeyboardInterrupt\n", 3, ["KeyboardInterrupt"]),
    ("import-error", "import faultlab_no_such_module\n", 1, ["ModuleNotFoundError", "faultlab_no_such_module"]),
    ("syntax-error", HEAD + "def f(:\n", 3, ["SyntaxError"]),
    ("nul-byte", "x = 1\n\0\n", 1, ["null bytes"]),
    ("unprintable-exception", HEAD + "class E(Exception):\n    def __str__(self):\n        raise RuntimeError\n\n"
     "raise E()\n", 7, ["raised E: (the exception cannot be printed)"]),
    ("newline-in-message", HEAD + "raise ValueError('two\\nlines')\n", 3, ["ValueError: two\\nlines"]),
    ("needs-arguments", HEAD + "class D(V40):\n    name = 'd'\n\n    def __init__(self, x):\n        pass\n", 3,
     ["D()", "missing 1 required positional argument", "expected a class that takes no arguments"]),
    ("init-raises", HEAD + "class D(V40):\n    name = 'd'\n\n    def __init__(self):\n        raise OSError('no')\n",
     7, ["D(), raised OSError: no"]),
    ("init-exits", HEAD + "class D(V40):\n    name = 'd'\n\n    def __init__(self):\n        raise SystemExit(3)\n",
     7, ["SystemExit: 3"]),
    ("name-not-a-string", HEAD + "class D(V40):\n    name = 5\n", 3, ["sets name to 5: expected a string"]),
    ("name-with-a-space", HEAD + "class D(V40):\n    name = 'my design'\n", 3, ["'my design'", "no spaces or ':'"]),
    ("name-empty", HEAD + "class D(V40):\n    name = ''\n", 3, ["sets no 'name'"]),
    ("two-designs", HEAD + "class D(V40):\n    name = 'd'\n\n\nclass E(V40):\n    name = 'e'\n", 1,
     ["found 2 (D, E)"]),
]


@pytest.mark.parametrize(("source", "line", "words"), [c[1:] for c in BAD_DESIGNS], ids=[c[0] for c in BAD_DESIGNS])
def test_a_bad_design_file_is_one_located_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                                                line: int, words: list[str]) -> None:
    (tmp_path / "d.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["run", SEED, "--design", "./d.py"])  # a relative path, as typed
    assert res.exit_code == 2, (res.output, res.exception)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"faultlab: ./d.py:{line}: "), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_the_error_line_is_found_through_a_symlink_and_an_absolute_path(tmp_path: Path) -> None:
    real = tmp_path / "real.py"
    real.write_text(HEAD + "\nraise RuntimeError('here')\n")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    for path in (real, link):
        line = _one_line_error(CliRunner().invoke(main, ["run", SEED, "--design", str(path)]))
        assert line.startswith(f"faultlab: {path}:4: importing the design raised RuntimeError: here"), line


def test_a_file_that_is_not_python_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "design.txt"
    path.write_text("x = 1\n")
    line = _one_line_error(CliRunner().invoke(main, ["run", SEED, "--design", str(path)]))
    assert line == f"faultlab: {path}:1: cannot import this file as Python: expected a .py file"


def test_a_design_file_is_created_once_when_it_is_loaded(tmp_path: Path) -> None:
    """The load-time check creates the class; a good design then runs as usual."""
    from faultlab.designs import load_design_file

    path = tmp_path / "counted.py"
    path.write_text(HEAD + "CREATED = []\n\n\nclass D(V40):\n    name = 'counted'\n\n"
                    "    def __init__(self):\n        CREATED.append(self)\n")
    cls = load_design_file(str(path))
    assert cls.name == "counted"
    created = cls.__init__.__globals__["CREATED"]
    assert len(created) == 1 and type(created[0]) is cls
    res = CliRunner().invoke(main, ["run", SEED, "--design", str(path)])
    assert res.exit_code == 0, res.output
    assert "design counted" in res.output


def test_a_design_that_exits_during_a_run_is_a_violation_not_an_exit_status(tmp_path: Path) -> None:
    """SystemExit or GeneratorExit raised by a design's method while the model runs: reported as
    the run's model-error (exit status 1), not faultlab ending with the design's status."""
    for name, raised in (("exits", "SystemExit(3)"), ("generator", "GeneratorExit")):
        path = tmp_path / f"{name}.py"
        path.write_text(NO_RECHECK.replace("return True", f"raise {raised}"))
        res = CliRunner().invoke(main, ["run", SEED, "--design", str(path)])
        assert res.exit_code == 1, (res.output, res.exception)
        assert f"model-error: {raised.split('(')[0]}" in res.output
