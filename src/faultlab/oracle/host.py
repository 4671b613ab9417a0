"""Run a scenario (or the timing mode) with the probe on this machine's own kernel.

``host-tmpfs`` puts the files in a fresh directory under /dev/shm; ``host-ext4`` in a fresh
directory on an ext4 disk filesystem (``$FAULTLAB_EXT4_DIR``, else /var/tmp, else /tmp). The
directory is removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from faultlab.oracle.build import build_probe
from faultlab.oracle.errors import OracleError, ProbeFailedError, UnsupportedScenarioError
from faultlab.oracle.mounts import fs_type
from faultlab.oracle.program import (
    TIME_KINDS,
    parse_probe_output,
    parse_time_output,
    probe_error,
    time_program,
    to_probe_program,
)
from faultlab.results import RunRecord
from faultlab.scenario.model import Scenario

HOST_KERNELS = ("host-tmpfs", "host-ext4")
TMPFS_DIR = "/dev/shm"
EXT4_CANDIDATES = ("/var/tmp", "/tmp")
EXT4_DIR_ENV = "FAULTLAB_EXT4_DIR"
DEFAULT_TIMEOUT_S = 120.0

_EXIT_MEANING = {1: "setup failed", 2: "bad input", 3: "DAX not active", 4: "the probe faulted"}


def run_on_host(
    scenario: Scenario, kernel: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S
) -> RunRecord:
    """Run ``scenario`` sequentially on this machine's kernel and return what it observed.

    ``kernel`` is ``host-tmpfs`` or ``host-ext4`` and must match the scenario's ``fs``; ``None``
    picks the one that does. DAX scenarios cannot run here (no pmem): use ``--kernel dax-vm``.
    """
    kernel = _host_kernel_for(scenario, kernel)
    binary = build_probe()
    with host_workdir(kernel) as workdir:
        program = to_probe_program(scenario, str(workdir))
        output = run_probe(binary, program.text, timeout=timeout)
    return parse_probe_output(program, output)


def time_faults_on_host(
    kind: str,
    pages: int = 16384,
    *,
    kernel: str = "host-tmpfs",
    reps: int = 7,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> float:
    """Median ns per fault when touching each page of a ``pages``-page file once.

    ``kind``: ``read`` (load, MAP_PRIVATE; one fault maps 16 pages by fault-around), ``cow``
    (store, MAP_PRIVATE) or ``shared`` (store, MAP_SHARED). The file is written in 4 KiB chunks.
    """
    if kind not in TIME_KINDS:
        raise OracleError(f"time kind must be one of {', '.join(TIME_KINDS)}, not {kind!r}")
    if kernel not in HOST_KERNELS:
        raise OracleError(f"unknown host kernel {kernel!r}; choose one of {', '.join(HOST_KERNELS)}")
    binary = build_probe()
    with host_workdir(kernel) as workdir:
        output = run_probe(binary, time_program(str(workdir), kind, pages, reps), timeout=timeout)
    return parse_time_output(output).ns_per_fault


def _host_kernel_for(scenario: Scenario, kernel: str | None) -> str:
    if scenario.fs == "dax":
        raise UnsupportedScenarioError(
            f"{scenario.path}: fs=dax cannot run on this host (it has no persistent memory); "
            "use --kernel dax-vm"
        )
    wanted = f"host-{scenario.fs}"
    if kernel is None:
        kernel = wanted
    if kernel not in HOST_KERNELS:
        raise OracleError(f"unknown host kernel {kernel!r}; choose one of {', '.join(HOST_KERNELS)}")
    if kernel != wanted:
        raise UnsupportedScenarioError(
            f"{scenario.path}: the scenario is fs={scenario.fs} but --kernel {kernel} runs it on "
            f"{kernel.removeprefix('host-')}; use --kernel {wanted}"
        )
    return kernel


def _ext4_parent() -> str:
    override = os.environ.get(EXT4_DIR_ENV)
    candidates = (override,) if override else EXT4_CANDIDATES
    found: list[str] = []
    for parent in candidates:
        if not os.path.isdir(parent):
            found.append(f"{parent} does not exist")
            continue
        kind = fs_type(parent)
        if kind == "ext4":
            return parent
        found.append(
            f"{parent} is on {kind}" + (" (a RAM filesystem, not a disk)" if kind == "tmpfs" else "")
        )
    raise OracleError(
        "--kernel host-ext4 needs a directory on an ext4 disk filesystem, but "
        + "; ".join(found)
        + f"; set {EXT4_DIR_ENV} to a directory on ext4"
    )


def _tmpfs_parent() -> str:
    if not os.path.isdir(TMPFS_DIR):
        raise OracleError(f"--kernel host-tmpfs needs {TMPFS_DIR}, which does not exist")
    kind = fs_type(TMPFS_DIR)
    if kind != "tmpfs":
        raise OracleError(f"--kernel host-tmpfs needs {TMPFS_DIR} to be tmpfs, but it is on {kind}")
    return TMPFS_DIR


@contextmanager
def host_workdir(kernel: str) -> Iterator[Path]:
    """A fresh, empty directory on the filesystem ``kernel`` names; removed on exit."""
    parent = _tmpfs_parent() if kernel == "host-tmpfs" else _ext4_parent()
    path = Path(tempfile.mkdtemp(prefix="faultlab-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_probe(binary: Path, text: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Feed ``text`` to the probe and return its stdout; raise ProbeFailedError if it failed."""
    try:
        proc = subprocess.run([str(binary)], input=text, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ProbeFailedError(f"the probe did not finish within {timeout:g} s") from exc
    if proc.returncode == 0:
        return proc.stdout
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error ")]
    if errors:
        raise probe_error(errors[-1])
    meaning = _EXIT_MEANING.get(proc.returncode, "killed by a signal" if proc.returncode < 0 else "failed")
    detail = proc.stderr.strip().splitlines()[-1:] or ["no message"]
    raise ProbeFailedError(f"the probe exited with status {proc.returncode} ({meaning}): {detail[0]}")
