"""PMD fault counts, model against the DAX VM (``pytest -m vm tests/test_oracle_pmd.py``): the
scenarios under scenarios/pmd/ (``pmem_align = "2m"``: the VM's ext4 is made with a 2 MiB stripe
and the probe fallocates a whole-2 MiB file, so its extent is 2 MiB aligned) in one boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlab.oracle.build import build_probe
from faultlab.oracle.compare import Comparison, run_oracle
from faultlab.oracle.errors import CompilerNotFoundError, ProbeBuildError
from faultlab.scenario import load_scenario

PMD = Path(__file__).resolve().parent.parent / "scenarios/pmd"
SCENARIOS = ("read-2m", "private-read-then-cow", "hole-read-then-write", "truncate-inside-pmd")


@pytest.fixture(scope="module")
def pmd() -> dict[str, Comparison]:
    from faultlab.oracle.vm import VmUnavailableError

    try:
        build_probe(static=True)
        runs = run_oracle([load_scenario(str(PMD / f"{name}.toml")) for name in SCENARIOS], "dax-vm")
    except (VmUnavailableError, CompilerNotFoundError) as e:
        pytest.skip(f"DAX VM unavailable: {e}")
    except ProbeBuildError as e:
        pytest.skip(f"cannot build the static probe for the VM: {e}")
    return {name: c for name, (_s, c) in zip(SCENARIOS, runs, strict=True)}


@pytest.mark.vm
@pytest.mark.parametrize("name", SCENARIOS)
def test_pmd_fault_counts_agree_and_are_claimed(pmd: dict[str, Comparison], name: str) -> None:
    c = pmd[name]
    assert c.ok, [d for d in c.differences]
    for row in c.rows:
        assert "minflt" in row.claim.observables  # no dax-pmd waiver under pmem_align = "2m"


@pytest.mark.vm
def test_one_read_fault_maps_the_whole_2m(pmd: dict[str, Comparison]) -> None:
    rows = pmd["read-2m"].rows
    assert [(r.kernel.minflt, r.kernel.majflt) for r in rows if r.kernel is not None] == [(0, 0), (1, 0), (0, 0)]
