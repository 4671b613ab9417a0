"""docs/tutorial.md cannot rot: every ```console block's `$ ` commands are run and their output
compared with the text that follows them.

The commands run in a scratch directory that looks like the repository root (``scenarios/`` is a
link to the real one, ``pyproject.toml`` a copy), after the tutorial's ```python file=NAME blocks
have been written there; stdout is a pipe (so faultlab prints at its fixed width of 140 columns)
and COLUMNS is 140.  A ```toml path=FILE block must show that repository file exactly.

After a deliberate change of output, regenerate the tutorial's outputs with
``FAULTLAB_UPDATE_TUTORIAL=1 python -m pytest tests/test_tutorial.py`` and read the diff.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
UPDATE = os.environ.get("FAULTLAB_UPDATE_TUTORIAL") == "1"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\n", re.S | re.M)


@dataclass
class Command:
    line: int  # 1-based line of the `$ ` line in the tutorial
    text: str
    expected: str
    span: tuple[int, int]  # character offsets of the expected output in the tutorial


@dataclass
class Document:
    text: str
    files: dict[str, str]  # ```python file=NAME blocks: name -> contents
    shown: dict[str, str]  # ```toml path=FILE blocks: repository path -> contents
    commands: list[Command]


def parse(text: str) -> Document:
    files: dict[str, str] = {}
    shown: dict[str, str] = {}
    commands: list[Command] = []
    for m in FENCE.finditer(text):
        lang, info, body = m.group(1), m.group(2), m.group(3)
        attrs = dict(part.split("=", 1) for part in info.split() if "=" in part)
        if "file" in attrs:
            files[attrs["file"]] = body
        if "path" in attrs:
            shown[attrs["path"]] = body
        if lang != "console":
            continue
        start = m.start(3)
        offset = 0
        lines = body.splitlines(keepends=True)
        current: Command | None = None
        for ln in lines:
            pos = start + offset
            offset += len(ln)
            if ln.startswith("$ "):
                if current is not None:
                    current.span = (current.span[0], pos)
                line_no = text.count("\n", 0, pos) + 1
                current = Command(line_no, ln[2:].rstrip("\n"), "", (pos + len(ln), pos + len(ln)))
                commands.append(current)
            elif current is None:
                raise AssertionError(f"docs/tutorial.md:{text.count(chr(10), 0, pos) + 1}: a console block must "
                                     "start with a `$ ` command line")
        if current is not None:
            current.span = (current.span[0], start + offset)
    for c in commands:
        c.expected = text[c.span[0]:c.span[1]]
    return Document(text, files, shown, commands)


DOC = parse(TUTORIAL.read_text(encoding="utf-8"))


def normalise(out: str) -> str:
    """Trailing spaces are not part of what a reader sees (rich pads table lines to their width)."""
    return "".join(line.rstrip() + "\n" for line in out.splitlines())


@dataclass
class Workdir:
    path: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    """A stand-in for the repository root, with the tutorial's files, and `faultlab` and `python`
    on PATH running this interpreter."""
    d = tmp_path_factory.mktemp("tutorial")
    (d / "scenarios").symlink_to(ROOT / "scenarios", target_is_directory=True)
    (d / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    for name, body in DOC.files.items():
        (d / name).write_text(body)
    bin_dir = tmp_path_factory.mktemp("bin")
    launcher = bin_dir / "faultlab"
    launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c "
                        "'import sys; sys.argv[0] = \"faultlab\"; from faultlab.cli import main; main()' \"$@\"\n")
    python = bin_dir / "python"
    python.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} \"$@\"\n")
    for p in (launcher, python):
        p.chmod(0o755)
    # CI (and BUILD_NUMBER) make pytest print its short summary untruncated: a reader's terminal does not.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "FORCE_COLOR", "CLICOLOR", "TTY_", "COV_"))
           and k not in ("CI", "BUILD_NUMBER")}
    env.update(COLUMNS="140", LINES="50", PATH=str(bin_dir) + os.pathsep + env.get("PATH", ""), TERM="dumb")
    return Workdir(d, env)


def run(command: str, wd: Workdir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", command], cwd=wd.path, env=wd.env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_tutorial_has_commands_and_files() -> None:
    assert len(DOC.commands) >= 6
    texts = [c.text for c in DOC.commands]
    assert any(t.startswith("faultlab run ") for t in texts)
    assert any(t.startswith("faultlab explore ") and "--design xip" in t for t in texts)
    assert any(t.startswith("faultlab explore ") and "--design v4.0" in t for t in texts)
    assert any(t.startswith("faultlab compare ") for t in texts)
    assert any(".py" in t for t in texts), "a command runs the tutorial's own design file"
    assert any(name.endswith(".py") for name in DOC.files)


@pytest.mark.parametrize("path", sorted(DOC.shown))
def test_shown_files_are_the_repository_files(path: str) -> None:
    assert (ROOT / path).read_text() == DOC.shown[path], f"docs/tutorial.md shows {path}, which has changed"


def test_every_command_prints_what_the_tutorial_says(workdir: Workdir) -> None:
    results = []
    for c in DOC.commands:
        proc = run(c.text, workdir)
        assert proc.stderr == "", f"docs/tutorial.md:{c.line}: `{c.text}` wrote to stderr:\n{proc.stderr}"
        results.append((c, normalise(proc.stdout)))
    if UPDATE:
        text = DOC.text
        for c, out in sorted(results, key=lambda r: r[0].span[0], reverse=True):
            text = text[:c.span[0]] + out + text[c.span[1]:]
        TUTORIAL.write_text(text, encoding="utf-8")
        return
    for c, out in results:
        assert out == normalise(c.expected), f"docs/tutorial.md:{c.line}: `{c.text}` printed something else"
