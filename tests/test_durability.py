"""Persistent memory: cache lines, flushes and fences; crashes; the durability and torn-metadata
invariants per era; explore --crash and its replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from faultlab.cli import main
from faultlab.designs import get_design
from faultlab.execution import ModelExecution, ModelRunResult
from faultlab.exploring import explore_design, replay_design
from faultlab.kernel.state.cachelines import LINE, Cachelines
from faultlab.scenario import ScenarioBuilder, load_scenario
from faultlab.sched import SequentialChooser

ROOT = Path(__file__).resolve().parent.parent
SMSM = ROOT / "scenarios/crash/store-msync-store-msync.toml"
P = 4096


def run(*ops: str, design: str = "v4.10", fill: str | None = "A", size: str = "1p", crash: bool = False,
        threads: dict[str, tuple[str, ...]] | None = None) -> ModelRunResult:
    b = ScenarioBuilder("crash", fs="dax").file("f", size=size, fill=fill)
    for name, tops in (threads or {"t": ops}).items():
        b = b.thread(name, *tops)
    return ModelExecution(b.build(), get_design(design), crash=crash).run(SequentialChooser())


def ids(r: ModelRunResult) -> list[str]:
    return [v.id for v in r.violations]


# -- the cache-line layer ----------------------------------------------------------------------------------
def test_cached_store_is_pending_until_flushed_and_fenced() -> None:
    c = Cachelines()
    old, new = bytes(P), b"\x01" * P
    c.stored(3, 70, 2, old)  # bytes 70-71: line 1
    assert c.pending_lines(3) == [1]
    st = c.state(3, 1)
    assert st is not None and st.dirty and st.media == old[LINE : 2 * LINE]
    assert c.flush(7, 3, new) == 1
    assert st.inflight == {7: (new[LINE : 2 * LINE], True)} and not st.dirty
    c.stored(3, 64, 1, new)  # a store after the flush: dirty again, the flushed value stays in flight
    assert st.dirty and 7 in st.inflight
    c.fence(8)  # another thread's fence persists nothing of ours
    assert st.media == old[LINE : 2 * LINE]
    c.fence(7)
    assert st.media == new[LINE : 2 * LINE] and st.inflight == {} and c.pending_lines(3) == [1]


def test_reallocated_block_keeps_its_lines_and_is_stale_until_written() -> None:
    c = Cachelines()
    c.stored(5, 0, 1, bytes(P))
    c.allocated(5)
    st = c.state(5, 0)
    assert st is not None and st.dirty and not st.media_ok and not st.visible_ok
    assert not c.durable_ok(5, 9)
    c.stored_nt(2, 5, 9 * LINE, LINE, bytes(P), bytes(P))
    c.fence(2)
    assert c.durable_ok(5, 9) and c.pending_lines(5) == [0]


# -- the crash op and the invariants ------------------------------------------------------------------------
SMSM_OPS = ("m = mmap f 0 1p shared rw", "store m 0 B", "msync m", "store m 100 C", "msync m", "crash")


@pytest.mark.parametrize(("design", "expected"), [("v4.10", []), ("v4.7", []), ("v4.0", ["durability"]),
                                                  ("xip", ["durability"]), ("v4.10-no-wrprotect", ["durability"])])
def test_store_msync_store_msync_crash(design: str, expected: list[str]) -> None:
    """4.10 write-protects on writeback and 4.7 never cleans: both stores durable; 4.0 and 3.14
    XIP flush nothing; the variant that cleans without write-protecting loses the second store."""
    r = run(*SMSM_OPS, design=design)
    assert ids(r) == expected
    assert len(r.record.ops) == 5  # the crash ended the run: it has no outcome
    if design == "v4.10-no-wrprotect":
        assert "offset 100" in r.violations[0].message and "pmem block 0 line 1" in r.violations[0].message


def test_no_sync_no_promise() -> None:
    """A crash before any sync may lose every store: that is no violation."""
    assert ids(run("m = mmap f 0 1p shared rw", "store m 0 B", "crash", design="v4.0")) == []


def test_write_then_fsync_is_durable_from_4_0() -> None:
    """write(2) copies with non-temporal stores and fences them (4.0's __copy_user_nocache, 4.7's
    wmb_pmem), so it survives a crash after fsync even where mmap stores do not."""
    for design in ("v4.0", "v4.7", "v4.10"):
        assert ids(run("write f 8 xyz", "fsync f", "crash", design=design)) == []


def test_new_block_zeroing_reaches_media_from_4_7_only() -> None:
    """4.0's dax_clear_blocks zeroes a new block through the cache: a crash can leave the file
    pointing at a block whose old contents never got overwritten on media.  ext4 from 4.7 zeroes
    through the pmem driver (non-temporal stores and a fence)."""
    ops = ("m = mmap f 0 1p shared rw", "store m 0 B", "crash")
    assert "torn-metadata" in ids(run(*ops, design="v4.0", fill="hole"))
    assert ids(run(*ops, design="v4.10", fill="hole")) == []


def test_sync_guards_only_stores_completed_before_it_began() -> None:
    """A store racing with msync is not covered by it; one before it is (preemption bound 1: the
    two mmaps alone make thousands of schedules)."""
    threads = {"a": ("m = mmap f 0 1p shared rw", "store m 0 B", "msync m"),
               "b": ("n = mmap f 0 1p shared rw", "store n 200 D")}
    for design in ("v4.7", "v4.10"):
        verdict = explore_design(_scenario(threads), get_design(design), crash=True, bound=1)
        assert verdict.clean, [c.message for c in verdict.counterexamples]
        assert verdict.result.schedules > 10


def _scenario(threads: dict[str, tuple[str, ...]]):  # type: ignore[no-untyped-def]
    b = ScenarioBuilder("race", fs="dax").file("f", size="1p", fill="A")
    for name, tops in threads.items():
        b = b.thread(name, *tops)
    return b.build()


def test_a_crash_op_in_another_thread_is_dependent_with_every_step() -> None:
    """A power failure stops every thread where it is: DPOR must try the other thread's steps
    before it, even those touching no pmem (the crash's thread listed first, so the first schedule
    crashes at once). Plain search is the reference: the same end states, the same violations."""
    from faultlab.explore.explorer import explore

    scenario = _scenario({"crasher": ("crash",), "syncer": ("m = mmap f 0 1p shared rw", "store m 0 B", "msync m")})
    for design, found in (("v4.0", ["durability"]), ("v4.10", [])):
        def program(name: str = design) -> ModelExecution:
            return ModelExecution(scenario, get_design(name), record_steps=False)

        dpor = explore(program, "dpor", stop_on_first=False, minimise=False)
        plain = explore(program, "dfs", stop_on_first=False, minimise=False)
        assert dpor.complete and plain.complete
        assert sorted(set(dpor.violation_ids)) == found
        assert dpor.final_states == plain.final_states
        assert set(dpor.violation_ids) == set(plain.violation_ids)
        assert dpor.schedules < plain.schedules


# -- explore --crash, its report and its replay --------------------------------------------------------------
def test_explore_crash_finds_the_lost_line_and_replays_it() -> None:
    scenario = _scenario({"t": SMSM_OPS[:-1]})  # no crash op: --crash tries one after every step
    assert explore_design(scenario, get_design("v4.10-no-wrprotect")).clean
    verdict = explore_design(scenario, get_design("v4.10-no-wrprotect"), crash=True)
    cx = verdict.counterexamples[0]
    assert cx.id == "durability" and "lost line" in cx.message and cx.replay_command.endswith(" --crash")
    again = replay_design(scenario, get_design("v4.10-no-wrprotect"), cx.schedule, crash=True)
    assert [(v.id, v.message) for v in again.violations] == [(cx.id, cx.message)]
    assert explore_design(scenario, get_design("v4.10"), crash=True).clean


def test_cli_explore_crash_json_and_replay() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["explore", str(SMSM), "--design", "v4.10-no-wrprotect", "--json", "--quiet"])
    assert res.exit_code == 1
    doc = json.loads(res.output)
    v = doc["designs"][0]["violations"][0]
    assert v["id"] == "durability" and "crash at the crash op" in v["message"]
    schedule = v["schedule"]
    res = runner.invoke(main, ["replay", str(SMSM), "--schedule", schedule, "--json"])
    assert res.exit_code == 1
    assert json.loads(res.output)["violations"][0]["message"] == v["message"]


def test_crash_op_takes_no_arguments(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('title = "t"\nfs = "dax"\n[files.f]\nsize = "1p"\n[threads.t]\nops = ["crash now"]\n')
    res = CliRunner().invoke(main, ["run", str(path)])
    assert res.exit_code == 2
    assert res.output == f"faultlab: {path}:6: crash takes no arguments, got 1\n"


def test_seed_scenario_has_no_durability_verdicts() -> None:
    """The seed (a private COW against truncate) syncs nothing: --crash adds no verdict."""
    scenario = load_scenario(str(ROOT / "scenarios/seed/cow-vs-truncate.toml"))
    assert explore_design(scenario, get_design("v4.10"), crash=True).clean


# -- the explorer with crashes -------------------------------------------------------------------------------
RACE = {"a": ("m = mmap f 0 1p shared rw", "store m 0 B", "msync m", "store m 100 C", "msync m"),
        "b": ("write f 200 D",)}


@pytest.mark.parametrize(("design", "expected"), [("v4.10", []), ("v4.7", []), ("v4.10-no-wrprotect", ["durability"])])
def test_dpor_and_plain_search_agree_on_crash_verdicts(design: str, expected: list[str]) -> None:
    """Crashes are checked on each explored schedule's prefixes: DPOR (one schedule per class)
    reaches the verdict plain search (every schedule) reaches, here at preemption bound 1."""
    scenario = _scenario(RACE)
    dpor = explore_design(scenario, get_design(design), crash=True, bound=1)
    plain = explore_design(scenario, get_design(design), crash=True, bound=1, plain=True)
    assert dpor.violation_ids == plain.violation_ids == expected
    if not expected:
        assert dpor.result.schedules < plain.result.schedules


def test_crash_reports_are_deterministic() -> None:
    runs = [json.loads(CliRunner().invoke(main, ["explore", str(SMSM), "--design", "v4.0,v4.10-no-wrprotect",
                                                 "--crash", "--json", "--quiet"]).output) for _ in range(2)]
    for doc in runs:
        del doc["timing"]  # wall-clock figures, the only part that may differ
    assert runs[0] == runs[1]
    docs = runs[0]["designs"]
    assert [d["verdict"] for d in docs] == ["durability", "durability"]


def test_cache_line_state_changed_without_announcing_the_block_is_an_audit_error() -> None:
    from faultlab.errors import AuditError
    from faultlab.fs.dax import v4_10 as dax
    from faultlab.kernel.state.cell import READ

    def sloppy_writeback_one(k, mapping, index):  # type: ignore[no-untyped-def]
        k.sched.point(mapping.dirty, READ, "announces the tags only")
        k.pmem.raw_write(0, 0, b"Z")

    design = get_design("v4.10").variant("sloppy", "test", "test", {dax.dax_writeback_one: sloppy_writeback_one})
    scenario = _scenario({"t": ("m = mmap f 0 1p shared rw", "store m 0 B", "msync m")})
    with pytest.raises(AuditError):
        ModelExecution(scenario, design, audit=True).run(SequentialChooser())
