"""The concurrent oracle (faultlab.oracle.concurrent, ``faultlab oracle --concurrent N``).

The canonical outcome, the probe's program and output formats, the model's outcome sets and the
check are tested without a kernel. The tests that run the probe skip when no C compiler exists;
the DAX VM test is marked ``vm`` (one boot for every DAX scenario) and skips when the VM cannot be
had. Run counts are CI-sized here; docs/fidelity.md has the 10,000-run (host) and 1000-run (VM)
figures and the commands that produce them.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from faultlab.designs import get_design
from faultlab.execution import ModelExecution
from faultlab.explore.schedule import encode
from faultlab.exploring import replay_design
from faultlab.oracle.build import build_probe
from faultlab.oracle.cli_oracle import oracle_cmd
from faultlab.oracle.concurrent import (
    DIFFERENCE,
    NOT_SEEN_BOUNDED,
    KernelOutcomes,
    Observed,
    check,
    concurrent_program,
    default_concurrent_design,
    model_outcomes,
    parse_concurrent_output,
    run_concurrent_in_vm,
    run_concurrent_on_host,
    run_concurrent_oracle,
)
from faultlab.oracle.errors import CompilerNotFoundError, ProbeFailedError, UnsupportedScenarioError
from faultlab.oracle.program import check_probe_supports
from faultlab.oracle.report_concurrent import describe_unexplained
from faultlab.scenario import ScenarioBuilder, load_scenario
from faultlab.scenario.model import Scenario
from faultlab.sched import SequentialChooser

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "scenarios/seed/cow-vs-truncate.toml"
RACES = sorted((ROOT / "scenarios/races").glob("*.toml"))
def probe_supports(scenario: Scenario) -> bool:
    try:
        check_probe_supports(scenario)
    except UnsupportedScenarioError:
        return False
    return True


PROBED = [p for p in RACES if probe_supports(load_scenario(str(p)))]
"""The race scenarios the probe can run: all of them (see test_every_race_scenario_and_the_seed_can_be_probed)."""
CI_SKIP = {"generic-503-ext4", "generic-503-tmpfs", "punch-vs-fault-ext4", "punch-vs-fault-tmpfs", "fork-vs-truncate"}
"""Page-cache races whose exhaustive model exploration takes from 20 s to several minutes (3000 and
more schedules, or the bound-2 fallback): CI leaves them to bench/bench_concurrent.py, whose
10,000-run results are in docs/fidelity.md. CI still runs punch hole on the kernel
(punch-vs-private-fault-*, test_setup_placement_mprotect_punch_and_another_threads_map_on_the_kernel), and
fork (fork-vs-truncate explores 3375 schedules: fork-vs-private-write-fault, fork-cow-both-store-tmpfs and
the fork tests of tests/test_oracle_probe.py run it)."""
PAGE_CACHE_RACES = [p for p in PROBED if load_scenario(str(p)).fs != "dax" and p.stem not in CI_SKIP]
DAX_RACES = [SEED] + [p for p in PROBED if load_scenario(str(p)).fs == "dax"]
V410 = get_design("v4.10")
CI_RUNS = int(os.environ.get("FAULTLAB_CONCURRENT_RUNS", "300"))
CI_VM_RUNS = int(os.environ.get("FAULTLAB_CONCURRENT_VM_RUNS", "60"))
BOUNDS = {"three-hole-readers.toml": 1, "hole-double-zero.toml": 1, "holetest-2-one-page.toml": 1,
          "holetest-3-one-page.toml": 1, "holetest-3-neighbours.toml": 1, "generic-437-dax.toml": 1,
          "hole-read-vs-write-fault.toml": 1, "pmd-pte-collision-private.toml": 1,
          "pmd-read-fault-vs-write.toml": 1}
"""CI explores these DAX races at a small preemption bound (their unbounded exploration runs into
thousands of schedules); the model set is then a lower bound."""
V61 = get_design(default_concurrent_design("dax-vm"))


def seed_as(fs: str) -> Scenario:
    return replace(load_scenario(str(SEED)), fs=fs)


# -- the canonical outcome --------------------------------------------------------------------------------


def test_observed_from_a_model_run_is_in_thread_order_with_files_by_name() -> None:
    sc = (
        ScenarioBuilder("t", fs="tmpfs")
        .file("zz", size="1p", fill="A")
        .file("aa", size=3, fill="xy")
        .thread("second", "read zz 0 2")
        .thread("first", "write aa 0 Q", "read aa 0 3")
        .build()
    )
    # run "first" before "second": the canonical form still lists "second"'s op first
    run = ModelExecution(sc, V410).run(SequentialChooser([1, 0]))
    o = Observed.from_final_state(run.final_state)
    assert o.ops == (
        ("second", "read zz 0 2", '"AA"'),
        ("first", "write aa 0 Q", "ok"),
        ("first", "read aa 0 3", '"Qyx"'),
    )
    assert o.files == (("aa", 3, b"Qyx"), ("zz", 4096, b"A" * 4096))


def test_observed_differences_count_ops_and_files() -> None:
    a = Observed((("t", "load m 0", '"A"'), ("u", "truncate f 0", "ok")), (("f", 0, b""),))
    b = Observed((("t", "load m 0", "SIGBUS"), ("u", "truncate f 0", "ok")), (("f", 1, b"\0"),))
    assert a.differences(b) == ((0,), ("f",))
    assert a.distance(b) == 2 and a.distance(a) == 0


def test_default_concurrent_design_is_the_kernels_own() -> None:
    expected = {"host-tmpfs": "v6.18", "host-ext4": "v6.18", "dax-vm": "v6.1"}
    for kernel, design in expected.items():
        assert default_concurrent_design(kernel) == design
        get_design(default_concurrent_design(kernel))
    with pytest.raises(Exception, match="host-xfs"):
        default_concurrent_design("host-xfs")


# -- the probe's program and output ----------------------------------------------------------------------


def test_concurrent_program_names_each_ops_thread() -> None:
    program = concurrent_program(seed_as("tmpfs"), "/w", 77, 5)
    lines = program.text.splitlines()
    assert lines[0] == "dir /w" and lines[1] == "file f0 8192 fill 41"
    assert lines[2].startswith("concurrent 77 5 threads ")
    assert lines[3:] == [
        "thread 0",
        "op 0 mmap m0 f0 0 8192 private rw",
        "op 1 store m0 4096 42",
        "thread 1",
        "op 2 truncate f0 4096",
        "end",
    ]
    per_thread = load_scenario(str(ROOT / "scenarios/races/three-hole-readers.toml"))
    assert " processes " in concurrent_program(per_thread, "/w", 1).text


def test_concurrent_program_refuses_bad_runs_and_too_many_threads() -> None:
    with pytest.raises(Exception, match="runs"):
        concurrent_program(seed_as("tmpfs"), "/w", 0)
    b = ScenarioBuilder("many", fs="tmpfs").file("f", size="1p", fill="A")
    for i in range(17):
        b.thread(f"t{i}", "read f 0 1")
    with pytest.raises(UnsupportedScenarioError, match="at most 16"):
        concurrent_program(b.build(), "/w", 1)


OUTPUT = """concurrent 10 threads 2
outcome 6 0
res 0 ok
res 1 SIGBUS
res 2 ok
file f0 4096 {page}
end-outcome
outcome 4 3
res 0 ok
res 1 ok
res 2 ok
file f0 4096 {page}
end-outcome
"""


def test_parse_concurrent_output() -> None:
    program = concurrent_program(seed_as("tmpfs"), "/w", 10)
    result = parse_concurrent_output(program, OUTPUT.format(page="41" * 4096), "host-tmpfs")
    assert (result.runs, result.workers, result.cpus) == (10, "threads", 2)
    by_store = {o.ops[1][2]: counts for o, counts in result.outcomes.items()}
    assert by_store == {"SIGBUS": (6, 0), "ok": (4, 3)}
    [o] = [o for o in result.outcomes if o.ops[1][2] == "ok"]
    assert o.ops[0] == ("faulter", "m = mmap data 0 2p private rw", "ok")
    assert o.files == (("data", 4096, b"A" * 4096),)


@pytest.mark.parametrize(
    "broken",
    [
        OUTPUT.replace("outcome 4 3", "outcome 5 3"),  # counts do not add up to the runs
        OUTPUT.replace("res 2 ok\nfile", "file", 1),  # an op result missing
        OUTPUT.rsplit("end-outcome", 1)[0],  # unfinished
        "error dax-not-active f0\n",
        OUTPUT.replace("concurrent 10 threads 2\n", ""),
    ],
)
def test_parse_concurrent_output_refuses_broken_output(broken: str) -> None:
    program = concurrent_program(seed_as("tmpfs"), "/w", 10)
    with pytest.raises(ProbeFailedError):
        parse_concurrent_output(program, broken.format(page="41" * 4096), "host-tmpfs")


# -- the model side --------------------------------------------------------------------------------------


def test_model_outcomes_of_the_seed_each_replay_to_their_outcome() -> None:
    sc = load_scenario(str(SEED))
    model = model_outcomes(sc, V410)
    assert model.complete and model.bound is None
    assert sorted(o.ops[1][2] for o in model.outcomes) == ["SIGBUS", "ok"]
    for outcome, trace in model.outcomes.items():
        run = replay_design(sc, V410, encode(trace, sc.digest(), V410.name))
        assert Observed.from_final_state(run.final_state) == outcome


def test_a_bounded_model_set_is_marked_a_lower_bound() -> None:
    sc = load_scenario(str(ROOT / "scenarios/races/three-hole-readers.toml"))
    model = model_outcomes(sc, V410, bound=0)
    assert not model.complete and model.bound == 0 and "lower bound" in model.how
    assert len(model.outcomes) == 1


# -- the check -----------------------------------------------------------------------------------------


def impossible(model_outcome: Observed) -> Observed:
    """A model outcome with the truncate failing: an outcome the model never produces."""
    ops = tuple((t, o, "EIO" if o.startswith("truncate") else r) for t, o, r in model_outcome.ops)
    return Observed(ops, model_outcome.files)


def kernel_with(*outcomes: Observed, kernel: str = "host-tmpfs") -> KernelOutcomes:
    return KernelOutcomes(kernel, 10 * len(outcomes), "threads", 2, {o: (10, i) for i, o in enumerate(outcomes)})


def test_check_accepts_a_subset_and_reports_coverage() -> None:
    sc = load_scenario(str(SEED))
    model = model_outcomes(sc, V410)
    first = next(iter(model.outcomes))
    c = check(sc, kernel_with(first), model, V410)
    assert c.ok and c.unexplained == []
    assert c.model_only == [o for o in model.outcomes if o != first]


def test_check_reports_an_outcome_the_model_cannot_produce_with_the_nearest_schedule() -> None:
    sc = load_scenario(str(SEED))
    model = model_outcomes(sc, V410)
    sigbus = next(o for o in model.outcomes if o.ops[1][2] == "SIGBUS")
    c = check(sc, kernel_with(impossible(sigbus)), model, V410)
    assert not c.ok
    [u] = c.unexplained
    assert u.kind == DIFFERENCE and u.nearest == sigbus
    assert u.differing_ops == (2,) and u.differing_files == ()
    assert u.replay is not None and u.replay.startswith(f"faultlab replay {sc.path} --design v4.10 --schedule fl1:")
    assert u.schedule is not None
    run = replay_design(sc, V410, u.schedule)
    assert Observed.from_final_state(run.final_state) == sigbus
    text = "\n".join(describe_unexplained(c, u))
    assert "op 3 (truncator) `truncate data 1p`: kernel EIO, model ok" in text


def test_check_against_a_bounded_model_says_not_seen_by_the_bounded_model() -> None:
    sc = load_scenario(str(ROOT / "scenarios/races/three-hole-readers.toml"))
    model = model_outcomes(sc, V410, bound=0)
    zeros = next(iter(model.outcomes))
    odd = Observed(tuple((t, o, "SIGBUS" if o.startswith("load") else r) for t, o, r in zeros.ops), zeros.files)
    c = check(sc, kernel_with(odd, kernel="dax-vm"), model, V410)
    [u] = c.unexplained
    assert u.kind == NOT_SEEN_BOUNDED and c.differences == []
    assert len(u.differing_ops) == 3


# -- the command line ------------------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(oracle_cmd, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def fake_kernel(monkeypatch: pytest.MonkeyPatch, make: object) -> None:
    def run(scenario: Scenario, kernel: str, runs: int, seed: int = 0, **_: object) -> KernelOutcomes:
        model = model_outcomes(scenario, get_design(default_concurrent_design(kernel)))
        return kernel_with(*make(model), kernel=kernel)  # type: ignore[operator]

    monkeypatch.setattr("faultlab.oracle.concurrent.run_concurrent_on_host", run)


def test_cli_exits_1_and_prints_the_nearest_model_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kernel(monkeypatch, lambda m: [impossible(next(iter(m.outcomes)))])
    code, out, err = invoke("--concurrent", "20", "--kernel", "host-tmpfs", str(SEED))
    assert code == 1, out + err
    assert "DIFFERENCE: kernel outcome K1 (10 runs, first in run 0) is not one the model (v6.18) produces" in out
    assert "op 3 (truncator) `truncate data 1p`: kernel EIO, model ok" in out
    assert "replay it: faultlab replay " in out and "--schedule fl1:" in out
    assert '(after setting fs = "tmpfs" in the file)' in out  # the seed is written for dax
    assert "1 kernel outcome the model does not produce" in out

    code, out, _ = invoke("--concurrent", "20", "--kernel", "host-tmpfs", "--json", str(SEED))
    doc = json.loads(out)
    assert code == 1 and doc["differences"] == 1
    [u] = doc["scenarios"][0]["unexplained"]
    assert u["kind"] == "difference" and u["differing_ops"] == [2] and u["replay"].startswith("faultlab replay")


def test_cli_exits_0_when_the_kernel_shows_a_subset(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kernel(monkeypatch, lambda m: [next(iter(m.outcomes))])
    code, out, err = invoke("--concurrent", "20", "--kernel", "host-tmpfs", str(SEED))
    assert code == 0, out + err
    assert "written for fs=dax, run as fs=tmpfs (--kernel host-tmpfs)" in out
    assert "model only" in out and "the kernel showed 1 of the model's 2 outcomes" in out


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrent", "0", "{seed}"], "--concurrent N: expected a whole number, a positive number of runs"),
        (["--concurrent", "-3", "{seed}"], "got '-3'"),
        (["--concurrent", "many", "{seed}"], "got 'many'"),
        (["--concurrent", "1.5", "{seed}"], "got '1.5'"),
        (["--concurrent", "", "{seed}"], "got ''"),
        (["--concurrent", "10", "--seed", "x", "{seed}"], "--seed: expected a whole number"),
        (["--concurrent", "10", "--bound", "-1", "{seed}"], "--bound: expected a whole number"),
        (["--concurrent", "10"], "give at least one SCENARIO"),
        (["--concurrent", "10", "--setup"], "--setup prepares the DAX VM"),
        (["--concurrent", "10", "--design", "v9", "{seed}"], "unknown design 'v9'"),
        (["--seed", "3", "{seed}"], "--seed applies to --concurrent N only"),
        (["--concurrent", "10", "{memcg}"], "memory_limit_pages is not reproduced"),
        (["--concurrent", "10", "{many}"], "the concurrent probe runs at most 16"),
        (["--concurrent", "10", "{idle}"], "no thread has an op"),
        (["--concurrent", "10", "{crash}"], "crash.toml:8: the probe does not run crash: `crash`"),
        (["--concurrent", "10", "{remap}"], "remap.toml:8: `load m 0` uses map 'm', which a mmaps more than once"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    head = 'title = "t"\nfs = "tmpfs"\n[files.f]\nsize = "1p"\n'
    reader = '[threads.t]\nops = ["read f 0 1"]\n'
    (tmp_path / "memcg.toml").write_text(head.replace("fs =", 'memory_limit = "4p"\nfs =') + reader)
    (tmp_path / "idle.toml").write_text(head + "[threads.t]\nops = []\n")
    (tmp_path / "many.toml").write_text(head + "".join(reader.replace("t]", f"t{i}]") for i in range(17)))
    crash = '[threads.t]\nops = [\n  "read f 0 1",\n  "crash",\n]\n'
    (tmp_path / "crash.toml").write_text(head.replace("tmpfs", "dax") + crash)
    (tmp_path / "remap.toml").write_text(
        head + '[threads.a]\nops = ["m = mmap f 0 1p shared r", "m = mmap f 0 1p shared r"]\n'
        '[threads.b]\nops = ["load m 0"]\n'
    )
    names = ("memcg", "idle", "many", "crash", "remap")
    paths = {"{seed}": str(SEED), **{f"{{{n}}}": str(tmp_path / f"{n}.toml") for n in names}}
    code, out, err = invoke(*[paths.get(a, a) for a in args])
    assert code == 2 and out == "", out
    assert message in err and err.count("\n") == 1 and err.startswith("faultlab oracle: "), err


# -- the probe on this machine ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe() -> Path:
    try:
        return build_probe()
    except CompilerNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("path", PAGE_CACHE_RACES, ids=lambda p: p.stem)
def test_page_cache_races_kernel_outcomes_are_model_outcomes(probe: Path, path: Path) -> None:
    [c] = run_concurrent_oracle([load_scenario(str(path))], CI_RUNS)
    assert c.kernel.kernel == f"host-{c.scenario.fs}" and c.kernel.runs == CI_RUNS
    assert sum(n for n, _ in c.kernel.outcomes.values()) == CI_RUNS
    assert c.model.complete
    assert c.ok, "\n".join(line for u in c.unexplained for line in describe_unexplained(c, u))


@pytest.mark.parametrize("kernel", ["host-tmpfs", "host-ext4"])
def test_the_seed_on_the_page_cache(probe: Path, kernel: str) -> None:
    [c] = run_concurrent_oracle([load_scenario(str(SEED))], CI_RUNS, kernel)
    assert c.scenario.fs == kernel.removeprefix("host-")
    assert c.ok, "\n".join(line for u in c.unexplained for line in describe_unexplained(c, u))


def test_signals_are_caught_per_thread_and_every_run_completes(probe: Path) -> None:
    sc = (
        ScenarioBuilder("both threads fault past EOF", fs="tmpfs")
        .file("f", size="1p", fill="A")
        .thread("a", "m = mmap f 0 2p shared r", "load m 1p -> SIGBUS", "load m 0 -> A")
        .thread("b", "m = mmap f 0 3p private rw", "store m 2p X -> SIGBUS", "store m 3m Y -> SIGSEGV",
                "load m 0 -> A")
        .build()
    )
    result = run_concurrent_on_host(sc, "host-tmpfs", 200)
    [(outcome, (runs, first))] = result.outcomes.items()
    assert (runs, first) == (200, 0)
    assert [r for _t, _o, r in outcome.ops] == ["ok", "SIGBUS", '"A"', "ok", "SIGBUS", "SIGSEGV", '"A"']


@pytest.mark.parametrize("kernel", ["host-tmpfs", "host-ext4"])
def test_files_are_re_created_for_every_run(probe: Path, kernel: str) -> None:
    sc = (
        ScenarioBuilder("each run starts from the scenario's files", fs=kernel.removeprefix("host-"))
        .file("f", size=3, fill="abc")
        .file("h", size="1p", fill="hole")
        .thread("t", "read f 0 3", "write f 0 XYZ", "truncate f 1p",
                "m = mmap h 0 1p shared rw", "load m 0", "store m 0 Q")
        .build()
    )
    result = run_concurrent_on_host(sc, kernel, 50)
    [outcome] = result.outcomes
    assert outcome.ops[0][2] == '"abc"' and outcome.ops[4][2] == '"\\x00"'
    assert outcome.files == (("f", 4096, b"XYZ" + b"\0" * 4093), ("h", 4096, b"Q" + b"\0" * 4095))


def test_per_thread_scenarios_run_as_processes(probe: Path) -> None:
    sc = replace(load_scenario(str(ROOT / "scenarios/races/three-hole-readers.toml")), fs="tmpfs")
    result = run_concurrent_on_host(sc, "host-tmpfs", 100)
    assert result.workers == "processes"
    [outcome] = result.outcomes
    assert [r for _t, _o, r in outcome.ops] == ["ok", '"\\x00"'] * 3


def test_every_race_scenario_and_the_seed_can_be_probed() -> None:
    assert PROBED == RACES
    probe_supports(load_scenario(str(SEED)))


def test_the_program_places_mappings_and_marks_the_setup_and_each_thread() -> None:
    sc = (ScenarioBuilder("t", fs="tmpfs").file("f", "2p")
          .setup("s = mmap f 0 2p shared rw unaligned")
          .thread("a", "m = mmap f 0 1p shared r at 0x50000000", "mprotect m rw", "fallocate f punch 1p 1p")
          .thread("b", "msync m", "mprotect s r", "m = mmap f 0 1p private r", "munmap m").build())
    lines = concurrent_program(sc, "/w", 5).text.splitlines()
    assert lines[3:] == [
        "setup", "op 0 mmap m0 f0 0 8192 shared rw unaligned",
        "thread 0", "op 1 mmap m1 f0 0 4096 shared ro at 0x50000000", "op 2 mprotect m1 rw",
        "op 3 fallocate f0 punch 4096 4096",
        "thread 1", "op 4 msync m1", "op 5 mprotect m0 ro", "op 6 mmap m2 f0 0 4096 private ro", "op 7 munmap m2",
        "end",
    ]


def test_the_probe_refuses_what_it_cannot_run() -> None:
    crash = (ScenarioBuilder("t", fs="dax").file("f", "1p").thread("a", "read f 0 1", "crash").build())
    with pytest.raises(UnsupportedScenarioError, match=r"the probe does not run crash: `crash`"):
        concurrent_program(crash, "/tmp/x", 10)
    remap = (ScenarioBuilder("t", fs="tmpfs").file("f", "1p")
             .thread("a", "m = mmap f 0 1p shared r", "m = mmap f 0 1p shared r").thread("b", "msync m").build())
    with pytest.raises(UnsupportedScenarioError, match="which a mmaps more than once"):
        concurrent_program(remap, "/tmp/x", 10)
    later = (ScenarioBuilder("t", fs="tmpfs").file("f", "1p")
             .thread("b", "load m 0").thread("a", "m = mmap f 0 1p shared r").build())
    with pytest.raises(UnsupportedScenarioError, match="declare the thread that makes it first"):
        concurrent_program(later, "/tmp/x", 10)


@pytest.mark.parametrize("kernel", ["host-tmpfs", "host-ext4"])
def test_setup_placement_mprotect_punch_and_another_threads_map_on_the_kernel(probe: Path, kernel: str) -> None:
    sc = (ScenarioBuilder("the probe's newer ops", fs=kernel.removeprefix("host-")).file("f", "2p", fill="A")
          .setup("s = mmap f 0 2p shared rw unaligned", "store s 0 S")
          .thread("a", "m = mmap f 0 1p shared rw at 0x50000000", "mprotect m r", "store m 1 X")
          .thread("b", "fallocate f punch 1p 1p", "load s 1p", "munmap m")
          .build())
    [c] = run_concurrent_oracle([sc], CI_RUNS // 3)
    assert c.model.complete
    assert c.ok, "\n".join(line for u in c.unexplained for line in describe_unexplained(c, u))
    for outcome in c.kernel.outcomes:
        results = {op: r for _t, op, r in outcome.ops}
        assert outcome.ops[0][0] == "[setup]" and results["store s 0 S"] == "ok"
        assert results["store m 1 X"] == "SIGSEGV" and results["load s 1p"] == '"\\x00"'
        assert results["mprotect m r"] in ("ok", "ENOMEM")  # ENOMEM: b's munmap came first
    # b's munmap before a's mmap has returned: the variable holds no address yet (the model's EINVAL)
    seen = {dict((op, r) for _t, op, r in o.ops)["munmap m"] for o in c.kernel.outcomes}
    assert seen and seen <= {"ok", "EINVAL"}


def test_cli_runs_a_page_cache_race(probe: Path) -> None:
    code, out, err = invoke("--concurrent", "200", str(ROOT / "scenarios/races/mkwrite-vs-truncate.toml"))
    assert code == 0, out + err
    assert "model design v6.18 vs kernel host-ext4, 200 concurrent runs (threads" in out
    assert "store m 1p B" in out and "every kernel outcome" in out


# -- the DAX VM --------------------------------------------------------------------------------------------


@pytest.mark.vm
def test_dax_races_in_one_vm_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    from faultlab.oracle import vm

    try:
        vm.setup(log=lambda _msg: None)
        build_probe(static=True)
    except (vm.VmUnavailableError, CompilerNotFoundError) as exc:
        pytest.skip(f"DAX VM unavailable: {exc}")
    scenarios = [load_scenario(str(p)) for p in DAX_RACES]
    boots: list[int] = []
    real_run_jobs = vm.run_jobs

    def counting_run_jobs(*args: Any, **kwargs: Any) -> dict[str, vm.JobOutput]:
        boots.append(kwargs["smp"])
        return real_run_jobs(*args, **kwargs)

    monkeypatch.setattr(vm, "run_jobs", counting_run_jobs)
    results = run_concurrent_in_vm(scenarios, CI_VM_RUNS)
    assert boots == [2]  # one boot, two CPUs
    for sc, kernel in zip(scenarios, results, strict=True):
        assert "DAX active (statx STATX_ATTR_DAX)" in kernel.notes
        assert kernel.cpus == 2 and sum(n for n, _ in kernel.outcomes.values()) == CI_VM_RUNS
        model = model_outcomes(sc, V61, bound=BOUNDS.get(Path(sc.path).name))
        c = check(sc, kernel, model, V61)
        assert c.ok, "\n".join(line for u in c.unexplained for line in describe_unexplained(c, u))


def test_a_fork_names_the_childs_thread_and_the_child_uses_the_parents_tokens() -> None:
    sc = (ScenarioBuilder("t", fs="tmpfs").file("f", "1p")
          .setup("s = mmap f 0 1p shared rw")
          .thread("p", "m = mmap f 0 1p private rw", "fork c", "n = mmap f 0 1p shared r")
          .thread("c", "load m 0", "load s 0", "s = mmap f 0 1p private r", "load s 0")
          .thread("o", "load s 0").build())
    lines = concurrent_program(sc, "/w", 5).text.splitlines()
    assert lines[3:] == [
        "setup", "op 0 mmap m0 f0 0 4096 shared rw",
        "thread 0", "op 1 mmap m1 f0 0 4096 private rw", "op 2 fork 1", "op 3 mmap m2 f0 0 4096 shared ro",
        # the child's m and s are its parent's (the set-up's) until it maps an s of its own
        "thread 1", "op 4 load m1 0 1", "op 5 load m0 0 1", "op 6 mmap m3 f0 0 4096 private ro", "op 7 load m3 0 1",
        "thread 2", "op 8 load m0 0 1",
        "end",
    ]


def test_the_probe_refuses_a_child_it_cannot_bind_or_order() -> None:
    remapped = (ScenarioBuilder("t", fs="tmpfs").file("f", "1p")
                .thread("p", "m = mmap f 0 1p private rw", "fork c", "m = mmap f 0 1p shared r")
                .thread("c", "load m 0").build())
    with pytest.raises(UnsupportedScenarioError, match="which p mmaps more than once: the probe binds a forked"):
        concurrent_program(remapped, "/tmp/x", 10)
    early = (ScenarioBuilder("t", fs="tmpfs").file("f", "1p")
             .thread("c", "read f 0 1").thread("p", "fork c").build())
    with pytest.raises(UnsupportedScenarioError, match="thread c is forked by p, declared after it"):
        concurrent_program(early, "/tmp/x", 10)
