"""Designs loaded from a user's Python file (docs/designs.md, "Writing your own")."""

from __future__ import annotations

from pathlib import Path

import pytest
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


# -- every way a design file can fail at import or link: path:line, exit status 2 ---------------------
HEAD = "from faultlab.designs.v4_0 import DESIGN as V40\nfrom faultlab.fs.dax import v4_0 as dax\n"  # lines 1-2
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
    ("variant-misused", HEAD + "\nDESIGN = V40.variant('d')\n", 4, ["TypeError", "missing"]),
    ("no-design", HEAD + "MINE = V40\n", 1, ["no DESIGN in this file", "expected a module-level DESIGN"]),
    ("design-is-a-number", HEAD + "\n\nDESIGN = 5\n", 5, ["DESIGN is a int: expected a faultlab Design"]),
    ("design-is-a-class", HEAD + "class D:\n    pass\n\n\nDESIGN = D\n", 7, ["DESIGN is the class D"]),
    ("name-not-a-string", HEAD + "DESIGN = V40.variant(5, 's', 'src', {})\n", 3, ["name is 5: expected a string"]),
    ("name-with-a-space", HEAD + "DESIGN = V40.variant('my design', 's', 'src', {})\n", 3,
     ["'my design'", "no spaces or ':'"]),
    ("name-empty", HEAD + "DESIGN = V40.variant('', 's', 'src', {})\n", 3, ["empty name"]),
    ("replaces-a-foreign-function", HEAD + "import os\n\nDESIGN = V40.variant('d', 's', 'src', {os.getcwd: len})\n",
     5, ["cannot replace", "getcwd", "not a function of the model"]),
    ("a-shipped-name", HEAD + "DESIGN = V40.variant('v4.7', 's', 'src', {})\n", 3,
     ["DESIGN's name 'v4.7' is a shipped design's: expected a name of its own"]),
    ("replacement-not-a-function", HEAD + "DESIGN = V40.variant('d', 's', 'src', {dax.dax_cow_fault: 5})\n", 3,
     ["cannot replace", "dax_cow_fault"]),
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


def test_a_loaded_design_file_runs_under_its_own_name(tmp_path: Path) -> None:
    from faultlab.designs import load_design_file

    path = tmp_path / "mine.py"
    path.write_text(NO_RECHECK)
    assert load_design_file(str(path)).name == "my-no-recheck"
    res = CliRunner().invoke(main, ["run", SEED, "--design", str(path)])
    assert res.exit_code in (0, 1), res.output
    assert "design my-no-recheck" in res.output


def test_a_design_that_exits_during_a_run_is_a_violation_not_an_exit_status(tmp_path: Path) -> None:
    """SystemExit or GeneratorExit raised by a design's method while the model runs: reported as
    the run's design-error (exit status 1) at the design's line, not faultlab ending with the
    design's status."""
    for name, raised in (("exits", "SystemExit(3)"), ("generator", "GeneratorExit")):
        path = tmp_path / f"{name}.py"
        path.write_text(NO_RECHECK.replace("return VM_FAULT_LOCKED", f"raise {raised}"))
        assert f"raise {raised}" in path.read_text()
        res = CliRunner().invoke(main, ["run", SEED, "--design", str(path)])
        assert res.exit_code == 1, (res.output, res.exception)
        line = path.read_text().splitlines().index(f"    raise {raised}") + 1
        assert f"design-error: {raised.split('(')[0]}" in res.output, res.output
        assert f"raised in dax_cow_fault() at {path}:{line} (thread faulter, step " in res.output, res.output


# -- a function an era takes over from an earlier one (v6.1's do_cow_fault is 4.10's) -----------------
ADOPTED = '''
"""v6.1 whose COW fault gives up at once: do_cow_fault is the one v6.1 takes over from 4.10."""
from faultlab.designs.v6_1 import DESIGN as V61
from faultlab.kernel.eras import v6_1
from faultlab.kernel.flags import VM_FAULT_SIGBUS


def do_cow_fault(k, vmf):
    return VM_FAULT_SIGBUS


DESIGN = V61.variant("cow-sigbus", "v6.1, COW faults SIGBUS", "a test", {v6_1.do_cow_fault: do_cow_fault})
'''
PRIVATE_STORE = ("[files.data]\nsize = \"1p\"\nfill = \"A\"\n\n[threads.t]\n"
                 "ops = [\"m = mmap data 0 1p private rw\", \"store m 0 B\"]\n")


def test_a_function_the_era_adopts_is_replaced_in_that_design_only(tmp_path: Path) -> None:
    from faultlab.designs import get_design, load_design_file
    from faultlab.execution import ModelExecution
    from faultlab.kernel.eras import v4_10, v6_1
    from faultlab.scenario import parse_scenario
    from faultlab.scenario.model import Outcome
    from faultlab.sched import SequentialChooser

    assert v6_1.do_cow_fault is v4_10.do_cow_fault  # the premise: v6.1 adopts 4.10's
    (tmp_path / "d.py").write_text(ADOPTED)
    mine = load_design_file(str(tmp_path / "d.py"))
    scenario = parse_scenario('title = "t"\nfs = "tmpfs"\n' + PRIVATE_STORE, "s.toml")

    def store_outcome(design_name: str) -> Outcome:
        design = mine if design_name == "mine" else get_design(design_name)
        return ModelExecution(scenario, design).run(SequentialChooser()).record.ops[1].outcome

    assert store_outcome("mine") == Outcome.signal("SIGBUS")
    for name in ("v6.1", "v4.10"):  # neither the base design nor the era it adopts from is touched
        assert store_outcome(name) == Outcome.ok(), name


def test_replacing_a_function_the_design_does_not_run_is_one_located_line(tmp_path: Path) -> None:
    (tmp_path / "d.py").write_text("from faultlab.designs.v4_0 import DESIGN as V40\n"
                                   "from faultlab.kernel.eras import v6_1\n\n"
                                   "DESIGN = V40.variant('d', 's', 'src', {v6_1.finish_fault: len})\n")
    line = _one_line_error(CliRunner().invoke(main, ["run", SEED, "--design", str(tmp_path / "d.py")]))
    assert "cannot replace 'finish_fault' with <built-in function len>: expected a function" in line
    (tmp_path / "d.py").write_text("from faultlab.designs.v4_0 import DESIGN as V40\n"
                                   "from faultlab.kernel.eras import v6_1\n\n"
                                   "DESIGN = V40.variant('d', 's', 'src', {v6_1.finish_fault: lambda k, vmf: 0})\n")
    line = _one_line_error(CliRunner().invoke(main, ["run", SEED, "--design", str(tmp_path / "d.py")]))
    assert line.endswith(":4: cannot replace 'finish_fault' (faultlab.kernel.eras.v6_1): this design's kernel "
                         "does not run it"), line


def test_two_designs_of_one_name_in_a_list_are_refused(tmp_path: Path) -> None:
    for i in (1, 2):
        (tmp_path / f"d{i}.py").write_text(NO_RECHECK)
    both = f"{tmp_path}/d1.py,{tmp_path}/d2.py"
    line = _one_line_error(CliRunner().invoke(main, ["explore", SEED, "--design", both]))
    assert f"--design names the design 'my-no-recheck' twice ({tmp_path}/d1.py and {tmp_path}/d2.py)" in line
    line = _one_line_error(CliRunner().invoke(main, ["explore", SEED, "--design", "v4.0,v4.7,v4.0"]))
    assert "names the design 'v4.0' twice" in line
