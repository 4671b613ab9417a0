"""Random sequential scenarios, model vs real kernel (faultlab.oracle.fuzz).

* host tmpfs and host ext4: ``$FAULTLAB_FUZZ_EXAMPLES`` examples each (default 300), one probe run
  per example, hypothesis shrinking on failure. Deterministic (``derandomize=True``, no database).
* the DAX VM (marked ``vm``): ``$FAULTLAB_FUZZ_VM_EXAMPLES`` scenarios (default 100) drawn up front
  with a fixed seed, all run in ONE boot; a failure is shrunk with a few more boots (all
  candidates of a round in one boot).

A failure prints the differences and the shrunk scenario as a scenario file. To run thousands:

    FAULTLAB_FUZZ_EXAMPLES=5000 pytest tests/test_oracle_fuzz.py -m "not vm"
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from faultlab.oracle.build import build_probe
from faultlab.oracle.compare import run_oracle
from faultlab.oracle.errors import CompilerNotFoundError, ProbeBuildError
from faultlab.oracle.fuzz import (
    DEFAULT_VM_EXAMPLES,
    VM_EXAMPLES_ENV,
    FileChoice,
    FuzzCase,
    build,
    cases,
    failure_report,
    fuzz_examples,
    sample_scenarios,
    scenario_toml,
    scenarios,
    shrink_batched,
    shrink_candidates,
)
from faultlab.scenario import ScenarioBuilder, parse_scenario
from faultlab.scenario.model import Scenario

FUZZ = settings(
    max_examples=fuzz_examples(),
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no explain phase: it writes patch files
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def probe() -> None:
    try:
        build_probe()
    except CompilerNotFoundError as exc:
        pytest.skip(str(exc))


def check(scenario: Scenario, kernel: str) -> None:
    [(s, c)] = run_oracle([scenario], kernel)
    if not c.ok:
        pytest.fail(failure_report(s, c))


# -- the fuzz runs ------------------------------------------------------------------------------------


@FUZZ
@given(cases("tmpfs"))
def test_fuzz_host_tmpfs(probe: None, case: FuzzCase) -> None:
    check(case.scenario, "host-tmpfs")


@FUZZ
@given(cases("ext4"))
def test_fuzz_host_ext4(probe: None, case: FuzzCase) -> None:
    check(case.scenario, "host-ext4")


@pytest.mark.vm
def test_fuzz_dax_vm_in_one_boot() -> None:
    from faultlab.oracle.vm import VmUnavailableError

    batch = sample_scenarios("dax", fuzz_examples(DEFAULT_VM_EXAMPLES, VM_EXAMPLES_ENV))
    assert len(batch) >= min(100, fuzz_examples(DEFAULT_VM_EXAMPLES, VM_EXAMPLES_ENV))
    try:
        build_probe(static=True)
        results = run_oracle(batch, "dax-vm")
    except (VmUnavailableError, CompilerNotFoundError) as e:
        pytest.skip(f"DAX VM unavailable: {e}")
    except ProbeBuildError as e:
        pytest.skip(f"cannot build the static probe for the VM: {e}")
    assert all("DAX active (statx STATX_ATTR_DAX)" in c.notes for _, c in results)
    failing = [s for s, c in results if not c.ok]
    if not failing:
        return

    def fails(cands: Sequence[Scenario]) -> list[bool]:
        return [not c.ok for _, c in run_oracle(cands, "dax-vm")]

    small = shrink_batched(failing[0], fails, max_rounds=6)
    [(s, c)] = run_oracle([small], "dax-vm")
    pytest.fail(
        f"{len(failing)} of {len(batch)} DAX scenarios differ; the first, shrunk:\n\n{failure_report(s, c)}"
    )


# -- the generator and the scenario files it prints ----------------------------------------------------


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.sampled_from(["tmpfs", "ext4", "dax"]).flatmap(scenarios))
def test_generated_scenarios_print_as_scenario_files_that_parse_back(scenario: Scenario) -> None:
    text = scenario_toml(scenario)
    again = parse_scenario(text, "fuzz.toml")
    assert again.digest() == scenario.digest()
    assert len(scenario.threads) == 1 and 1 <= len(scenario.files) <= 2
    assert all(f.size <= 4 * 4096 for f in scenario.files)
    assert scenario.threads[0].ops[0].kind == "mmap"


def test_odd_fills_and_op_bytes_round_trip() -> None:
    sc = (
        ScenarioBuilder('quote " and \\ in a title', fs="tmpfs")
        .file("a", size=10, fill=b"\"\\'\n\xff\x00")
        .file("b", size="1p", fill="hole")
        .file("c", size=3)
        .thread("t", "m = mmap a 0 1p shared rw", 'store m 0 "it\'s" \\xff\\0', 'load m 0 4 -> "it\'s"')
        .build()
    )
    text = scenario_toml(sc)
    again = parse_scenario(text, "odd.toml")
    assert again.digest() == sc.digest()
    assert again.threads[0].ops[2].expect == sc.threads[0].ops[2].expect


def test_sample_scenarios_is_deterministic() -> None:
    a = [s.digest() for s in sample_scenarios("dax", 30)]
    b = [s.digest() for s in sample_scenarios("dax", 30)]
    assert a == b and len(set(a)) == 30
    assert a != [s.digest() for s in sample_scenarios("dax", 30, seed=7)]


def test_shrink_batched_removes_what_does_not_matter() -> None:
    big = build(
        "tmpfs",
        [FileChoice(2, 0, "A"), FileChoice(1, 0, None)],
        [
            "m0 = mmap f0 0 2p shared rw",
            "load m0 0",
            "truncate f1 0",
            "store m0 1p B",
            "read f0 0 1",
            "msync m0",
        ],
    )
    calls: list[int] = []

    def fails(cands: Sequence[Scenario]) -> list[bool]:
        calls.append(len(cands))
        return [any(op.kind == "store" for t in c.threads for op in t.ops) for c in cands]

    small = shrink_batched(big, fails)
    assert [op.text for op in small.threads[0].ops] == ["m0 = mmap f0 0 2p shared rw", "store m0 1p B"]
    assert [f.name for f in small.files] == ["f0"]
    assert len(calls) <= 4  # one batch (one VM boot) per round


def test_shrink_candidates_stay_valid() -> None:
    sc = build("ext4", [FileChoice(1, 0, "A")], ["m0 = mmap f0 0 1p private rw", "store m0 0 X"])
    texts = [[op.text for op in c.threads[0].ops] for c in shrink_candidates(sc)]
    assert texts == [["m0 = mmap f0 0 1p private rw"]]  # removing the mmap would orphan the store


def test_shrink_candidates_cut_halves_first() -> None:
    lines = ["m0 = mmap f0 0 1p shared r", *[f"load m0 {i}" for i in range(7)]]
    sc = build("tmpfs", [FileChoice(1, 0, "A")], lines)
    sizes = [len(c.threads[0].ops) for c in shrink_candidates(sc)]
    assert sizes[0] == 4 and sizes[-1] == 7 and min(sizes) == 4


def test_fuzz_examples_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULTLAB_FUZZ_EXAMPLES", "5000")
    assert fuzz_examples() == 5000
    monkeypatch.setenv("FAULTLAB_FUZZ_EXAMPLES", "lots")
    with pytest.raises(ValueError, match="FAULTLAB_FUZZ_EXAMPLES"):
        fuzz_examples()
    monkeypatch.delenv("FAULTLAB_FUZZ_EXAMPLES")
    assert fuzz_examples() == 300
