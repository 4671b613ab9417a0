"""The code stays ruff- and mypy-clean (both come with the test extras)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_is_clean() -> None:
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed: pip install -e '.[test]'")
    proc = _run("ruff", "check", "src", "tests", "bench", "tools")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    proc = _run(sys.executable, "-m", "mypy", "src")
    if "No module named mypy" in proc.stderr:
        pytest.skip("mypy is not installed: pip install -e '.[test]'")
    assert proc.returncode == 0, proc.stdout + proc.stderr
