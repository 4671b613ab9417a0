"""faultlab.oracle.compare (claims and comparisons) and the ``faultlab oracle`` command.

The claims and comparison tests use hand-made records and need no kernel. The CLI tests that run
the probe skip when no C compiler exists; the one DAX VM test is marked ``vm``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from faultlab.errors import UserError
from faultlab.oracle.build import build_probe
from faultlab.oracle.cli_oracle import oracle_cmd
from faultlab.oracle.compare import (
    WAIVERS,
    Comparison,
    check_kernel,
    claims_for,
    compare,
    comparison_json,
    describe_differences,
    run_oracle,
)
from faultlab.oracle.errors import CompilerNotFoundError, UnsupportedScenarioError
from faultlab.results import FileState, OpRecord, RunRecord
from faultlab.scenario import ScenarioBuilder
from faultlab.scenario.model import Outcome, Scenario

P = 4096


def scenario(fs: str, files: dict[str, tuple[str | int, str | None]], *ops: str) -> Scenario:
    b = ScenarioBuilder("t", fs=fs)
    for name, (size, fill) in files.items():
        b.file(name, size=size, fill=fill)
    return b.thread("t", *ops).build()


def record(
    sc: Scenario, *results: tuple[Outcome, int, int], files: dict[str, FileState] | None = None
) -> RunRecord:
    ops = [op for t in sc.threads for op in t.ops]
    assert len(ops) == len(results)
    rec = RunRecord(files=dict(files or {}))
    for op, (outcome, minflt, majflt) in zip(ops, results, strict=True):
        rec.ops.append(OpRecord("t", op.text, outcome, minflt, majflt, op.loc.line))
    return rec


OK = Outcome.ok()


def data(b: bytes) -> Outcome:
    return Outcome.of_data(b)


# -- what is claimed --------------------------------------------------------------------------------------


def test_everything_is_claimed_for_a_plain_tmpfs_run() -> None:
    sc = scenario("tmpfs", {"f": ("2p", "A")}, "m = mmap f 0 2p shared rw", "load m 0", "store m 1p B")
    claims = claims_for(sc, "host-tmpfs")
    assert all(c.observables == {"outcome", "minflt", "majflt"} and not c.waived for c in claims.ops)
    assert claims.files["f"].observables == {"size", "contents"}


def test_the_fork_ops_own_fault_counts_are_waived_and_the_childs_are_claimed() -> None:
    sc = (ScenarioBuilder("t", fs="tmpfs").file("f", "1p", "A")
          .thread("p", "m = mmap f 0 1p private rw", "store m 0 P", "fork c")
          .thread("c", "store m 0 C").build())  # fmt: skip
    claims = claims_for(sc, "host-tmpfs").ops
    assert [c.waived for c in claims] == [(), (), ("fork-own-pages",), ()]
    assert claims[2].observables == {"outcome"} and "minflt" in claims[3].observables


def test_ext4_fault_counts_are_waived_from_the_first_touch_of_an_uncached_page() -> None:
    sc = scenario("ext4", {"f": ("4p", "hole"), "g": ("1p", "A")},
                  "m = mmap f 0 4p shared rw", "n = mmap g 0 1p shared r",
                  "load n 0", "load m 0", "load m 1p", "load n 0", "write f 0 x")  # fmt: skip
    claims = claims_for(sc, "host-ext4").ops
    assert [("minflt" in c.observables) for c in claims] == [True, True, True, False, False, True, True]
    assert claims[3].waived == ("ext4-readahead",)
    assert all("outcome" in c.observables for c in claims)


def test_ext4_truncate_down_and_up_leaves_pages_uncached() -> None:
    sc = scenario("ext4", {"f": ("4p", "A")},
                  "truncate f 1p", "truncate f 4p",
                  "m = mmap f 0 4p private r", "load m 0", "load m 2p")  # fmt: skip
    claims = claims_for(sc, "host-ext4").ops
    assert "minflt" in claims[3].observables and "minflt" not in claims[4].observables


def test_tmpfs_holes_keep_their_fault_counts_claimed() -> None:
    sc = scenario("tmpfs", {"f": ("4p", "hole")}, "m = mmap f 0 4p shared rw", "load m 0", "store m 1p B")
    assert all("majflt" in c.observables for c in claims_for(sc, "host-tmpfs").ops)


def test_post_eof_bytes_exposed_by_an_extend_are_masked() -> None:
    sc = scenario("tmpfs", {"f": ("1p+100", "A")},
                  "m = mmap f 0 2p shared rw",
                  "store m 1p+200 QQ",  # past EOF, in the last page
                  "load m 1p+200 2",  # claimed: no extend yet
                  "truncate f 2p",
                  "load m 1p+199 4",
                  "read f 1p+198 4",
                  "write f 1p+201 w")  # fmt: skip
    claims = claims_for(sc, "host-tmpfs")
    assert not claims.ops[2].masked
    assert claims.ops[4].masked == {1, 2} and "post-eof-after-extend" in claims.ops[4].waived
    assert claims.ops[5].masked == {2, 3}
    assert claims.files["f"].masked == {P + 200}  # the write re-claimed P + 201


def test_dax_waivers() -> None:
    sc = scenario("dax", {"f": ("4p", "A")},
                  "m = mmap f 0 4p shared rw", "n = mmap f 0 4p private rw",
                  "store m 0 S", "store n 0 P", "load m 1p",
                  "truncate f 3p", "load m 0", "k = mmap f 0 3p shared r", "load k 0")  # fmt: skip
    claims = claims_for(sc, "dax-vm").ops
    assert claims[2].observables == {"outcome", "majflt"} and claims[2].waived == ("dax-shared-write-notify",)
    assert not claims[3].waived and not claims[4].waived
    assert claims[6].waived == ("dax-truncate-unmaps",) and claims[6].observables == {"outcome"}
    assert not claims[8].waived  # mapped after the truncate


def test_dax_pmd_waiver_needs_a_whole_aligned_2m_block() -> None:
    sc = scenario("dax", {"f": ("3m", "A")},
                  "m = mmap f 0 3m private r", "load m 0", "load m 2m",
                  "n = mmap f 1p 2m private r", "load n 0")  # fmt: skip
    claims = claims_for(sc, "dax-vm").ops
    assert claims[1].waived == ("dax-pmd",)
    assert not claims[2].waived and not claims[4].waived


def test_waivers_are_documented() -> None:
    text = (Path(__file__).parent.parent / "docs" / "fidelity.md").read_text()
    for waiver in WAIVERS:
        assert f"`{waiver}`" in text


@pytest.mark.parametrize(
    ("fs", "kernel", "hint"),
    [
        ("dax", "host-tmpfs", "use --kernel dax-vm"),
        ("tmpfs", "host-ext4", "use --kernel host-tmpfs"),
        ("ext4", "host-tmpfs", "use --kernel host-ext4"),
        ("ext4", "dax-vm", "the DAX VM runs only fs=dax"),
    ],
)
def test_a_scenario_runs_only_on_the_kernel_of_its_fs(fs: str, kernel: str, hint: str) -> None:
    sc = scenario(fs, {"f": ("1p", "A")}, "m = mmap f 0 1p shared r")
    with pytest.raises(UnsupportedScenarioError, match=hint):
        check_kernel(sc, kernel)
    with pytest.raises(UserError, match="unknown kernel"):
        check_kernel(sc, "host-xfs")


# -- comparing ----------------------------------------------------------------------------------------------


def test_compare_reports_only_claimed_differences() -> None:
    sc = scenario("ext4", {"f": ("2p", "hole")}, "m = mmap f 0 2p shared rw", "load m 0", "load m 1p")
    files = {"f": FileState(2 * P, bytes(2 * P))}
    model = record(sc, (OK, 0, 0), (data(b"\0"), 0, 1), (data(b"\0"), 0, 1), files=files)
    kernel = record(sc, (OK, 0, 0), (data(b"\0"), 0, 1), (data(b"\0"), 1, 0), files=files)
    c = compare(model, kernel, claims_for(sc, "host-ext4"), design="v4.10")
    assert c.ok and c.differences == []  # the split on ext4 holes is waived (readahead)
    kernel.ops[2] = replace(kernel.ops[2], outcome=data(b"\1"))
    kernel.files["f"] = FileState(2 * P, b"x" + bytes(2 * P - 1))
    c = compare(model, kernel, claims_for(sc, "host-ext4"))
    assert [d.differs for d in c.differences] == [("outcome",), ("contents",)]
    text = describe_differences(c)
    assert "op 3 (t) `load m 1p`: outcome: model" in text
    assert "file f: contents" in text


def test_compare_flags_fault_counts_and_sizes() -> None:
    sc = scenario("tmpfs", {"f": ("1p", "A")}, "m = mmap f 0 1p private rw", "store m 0 X")
    model = record(sc, (OK, 0, 0), (OK, 2, 0), files={"f": FileState(P, b"A" * P)})
    kernel = record(sc, (OK, 0, 0), (OK, 1, 0), files={"f": FileState(P + 1, b"A" * P + b"\0")})
    c = compare(model, kernel, claims_for(sc, "host-tmpfs"))
    assert [d.differs for d in c.differences] == [("minflt",), ("size", "contents")]
    assert not c.ok


def test_masked_bytes_are_not_compared() -> None:
    sc = scenario("tmpfs", {"f": ("1p+100", "A")},
                  "m = mmap f 0 2p shared rw", "store m 1p+200 Q",
                  "truncate f 2p", "load m 1p+199 3")  # fmt: skip
    contents_m = b"A" * (P + 100) + bytes(100) + b"Q" + bytes(P - 201)
    contents_k = b"A" * (P + 100) + bytes(P - 100)
    model = record(sc, (OK, 0, 0), (OK, 1, 0), (OK, 0, 0), (data(b"\0Q\0"), 0, 0),
                   files={"f": FileState(2 * P, contents_m)})  # fmt: skip
    kernel = record(sc, (OK, 0, 0), (OK, 1, 0), (OK, 0, 0), (data(b"\0\0\0"), 0, 0),
                    files={"f": FileState(2 * P, contents_k)})  # fmt: skip
    c = compare(model, kernel, claims_for(sc, "host-tmpfs"))
    assert c.ok, describe_differences(c)
    kernel.ops[3] = replace(kernel.ops[3], outcome=data(b"x\0\0"))  # an unmasked byte
    assert compare(model, kernel, claims_for(sc, "host-tmpfs")).differences[0].differs == ("outcome",)


def test_contents_the_model_did_not_record_are_not_compared() -> None:
    sc = scenario("tmpfs", {"f": ("1p", "A")}, "m = mmap f 0 1p private r")
    model = record(sc, (OK, 0, 0), files={"f": FileState(P, None)})
    kernel = record(sc, (OK, 0, 0), files={"f": FileState(P, b"A" * P)})
    c = compare(model, kernel, claims_for(sc, "host-tmpfs"))
    assert c.ok and c.files[0].claim.observables == {"size"}
    assert c.files[0].claim.waived == ("contents-not-recorded",)
    assert comparison_json(sc, c)["files"][0]["model"]["contents"] is None
    kernel.files["f"] = FileState(P + 1, b"A" * (P + 1))
    assert compare(model, kernel, claims_for(sc, "host-tmpfs")).differences[0].differs == ("size",)


def test_missing_ops_differ_and_misaligned_records_raise() -> None:
    sc = scenario("tmpfs", {"f": ("1p", "A")}, "m = mmap f 0 1p private rw", "store m 0 X")
    full = record(sc, (OK, 0, 0), (OK, 1, 0))
    short = RunRecord(ops=full.ops[:1])
    c = compare(short, full, claims_for(sc, "host-tmpfs"))
    assert ("missing",) in [d.differs for d in c.differences]
    other = RunRecord(ops=[full.ops[1], full.ops[0]])
    with pytest.raises(ValueError, match="do not line up"):
        compare(other, full, claims_for(sc, "host-tmpfs"))


def test_comparison_json_shape() -> None:
    sc = scenario("tmpfs", {"f": ("1p", "A")}, "m = mmap f 0 1p private rw", "store m 0 X")
    files = {"f": FileState(P, b"A" * P)}
    model = record(sc, (OK, 0, 0), (OK, 1, 0), files=files)
    kernel = record(sc, (OK, 0, 0), (OK, 2, 0), files=files)
    c = compare(model, kernel, claims_for(sc, "host-tmpfs"), design="v4.10")
    doc = comparison_json(sc, c)
    assert doc["differences"] == 1 and doc["kernel"] == "host-tmpfs" and doc["design"] == "v4.10"
    assert doc["ops"][1]["differs"] == ["minflt"] and doc["ops"][1]["model"]["minflt"] == 1
    assert doc["files"][0]["model"]["contents"] == "A*4096"
    json.dumps(doc)


# -- the command ------------------------------------------------------------------------------------------

MMAP01 = """\
title = "LTP mmap01 with a whole page"
fs = "tmpfs"

[files.f]
size = "1p"
fill = "hello world\\n"

[threads.t]
ops = [
  'm = mmap f 0 1p shared rw',
  'store m 12 XYZ',
  'msync m',
  'read f 0 15 -> "hello world\\nXYZ"',
]
"""


@pytest.fixture
def mmap01(tmp_path: Path) -> Path:
    path = tmp_path / "mmap01.toml"
    path.write_text(MMAP01)
    return path


@pytest.fixture
def probe() -> None:
    try:
        build_probe()
    except CompilerNotFoundError as exc:
        pytest.skip(str(exc))


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(oracle_cmd, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_cli_runs_a_tmpfs_scenario_side_by_side(probe: None, mmap01: Path) -> None:
    code, out, err = invoke(str(mmap01))
    assert code == 0, out + err
    assert "model design v6.18 vs kernel host-tmpfs" in out  # the host's own kernel
    assert "no difference in what the model claims" in out
    assert "store m 12 XYZ" in out and "model flt" in out and "kernel flt" in out


def test_the_setup_and_another_threads_map_line_up_side_by_side(probe: None) -> None:
    """The set-up's ops come first on both sides (the claims too), so the rows line up."""
    sc = (ScenarioBuilder("t", fs="ext4").file("data", "2p", fill="A")
          .setup("m = mmap data 0 2p shared rw unaligned", "load m 0")
          .thread("a", "store m 1p B", "mprotect m r")
          .thread("b", "fallocate data punch 0 1p", "load m 0").build())
    [(_sc, c)] = run_oracle([sc])
    assert [(r.thread, r.op) for r in c.rows] == [
        ("[setup]", "m = mmap data 0 2p shared rw unaligned"), ("[setup]", "load m 0"),
        ("a", "store m 1p B"), ("a", "mprotect m r"), ("b", "fallocate data punch 0 1p"), ("b", "load m 0")]
    assert not any(r.differs for r in c.rows), describe_differences(c)


@pytest.mark.parametrize("fs", ["tmpfs", "ext4"])
def test_a_forked_childs_ops_and_fault_counts_agree_with_the_kernel(probe: None, fs: str) -> None:
    """The child's rows follow its parent's; its COW fault counts are claimed (the fork op's waived)."""
    sc = (ScenarioBuilder("t", fs=fs).file("f", "2p", fill="A")
          .setup("m = mmap f 0 2p private rw", "store m 1 S")
          .thread("p", "store m 0 P", "fork c", "store m 1p Q", "load m 0 2")
          .thread("c", "load m 0 2", "store m 0 C", "load m 1p", "munmap m", "load m 0")
          .thread("o", "load m 0 2").build())  # fmt: skip
    [(_sc, c)] = run_oracle([sc])
    assert [str(r.kernel.outcome) for r in c.rows if r.thread == "c"] == ['"PS"', "ok", '"A"', "ok", "SIGSEGV"]
    assert [r.kernel.minflt for r in c.rows if r.thread == "c"][:3] == [0, 1, 1]
    assert not any(r.differs for r in c.rows), describe_differences(c)


def test_cli_runs_a_scenario_on_the_kernel_asked_for_and_says_so(probe: None, mmap01: Path) -> None:
    code, out, err = invoke(str(mmap01), "--kernel", "host-ext4")
    assert code == 0, out + err
    assert "written for fs=tmpfs, run as fs=ext4 (--kernel host-ext4)" in out
    assert "model design v6.18 vs kernel host-ext4" in out


def test_cli_json(probe: None, mmap01: Path) -> None:
    code, out, _ = invoke(str(mmap01), "--json", "--kernel", "host-tmpfs")
    assert code == 0
    doc = json.loads(out)
    assert doc["differences"] == 0 and doc["design"] == "v6.18"
    [s] = doc["scenarios"]
    assert [op["op"] for op in s["ops"]][0] == "m = mmap f 0 1p shared rw"
    assert s["ops"][1]["model"]["minflt"] == s["ops"][1]["kernel"]["minflt"]


def test_cli_exits_1_on_a_difference(monkeypatch: pytest.MonkeyPatch, mmap01: Path) -> None:
    sc = scenario("tmpfs", {"f": ("1p", "A")}, "m = mmap f 0 1p private rw", "store m 0 X")
    files = {"f": FileState(P, b"A" * P)}
    model = record(sc, (OK, 0, 0), (OK, 2, 0), files=files)
    kernel = record(sc, (OK, 0, 0), (OK, 1, 0), files=files)
    c = compare(model, kernel, claims_for(sc, "host-tmpfs"), design="v4.10")

    def fake(*args: object, **kwargs: object) -> list[tuple[Scenario, Comparison]]:
        return [(sc, c)]

    monkeypatch.setattr("faultlab.oracle.cli_oracle.run_oracle", fake)
    code, out, _ = invoke(str(mmap01))
    assert code == 1
    assert "DIFFERS: minflt" in out and "1 difference(s) in what the model claims: op 2 minflt" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one SCENARIO"),
        (["nonexistent.toml"], "nonexistent.toml"),
        (["{mmap01}", "--design", "v9"], "unknown design 'v9'"),
        (["{mmap01}", "--setup"], "--setup prepares the DAX VM and exits"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(mmap01: Path, args: list[str], message: str) -> None:
    code, out, err = invoke(*[a.replace("{mmap01}", str(mmap01)) for a in args])
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1 and err.startswith("faultlab oracle: ")


def test_cli_unknown_kernel_is_a_usage_error(mmap01: Path) -> None:
    code, _, err = invoke(str(mmap01), "--kernel", "host-xfs")
    assert code == 2 and "host-xfs" in err


def test_cli_says_how_to_get_a_compiler(monkeypatch: pytest.MonkeyPatch, mmap01: Path) -> None:
    def no_compiler(static: bool = False) -> Path:
        raise CompilerNotFoundError("no C compiler found ...; install one with `apt-get install gcc`")

    monkeypatch.setattr("faultlab.oracle.host.build_probe", no_compiler)
    code, _, err = invoke(str(mmap01))
    assert code == 2 and "apt-get install gcc" in err and err.count("\n") == 1


def test_cli_vm_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from faultlab.oracle import vm

    path = tmp_path / "dax.toml"
    path.write_text(MMAP01.replace('fs = "tmpfs"', 'fs = "dax"'))

    def unavailable(*args: object, **kwargs: object) -> vm.VmAssets:
        raise vm.VmUnavailableError("missing qemu-system-x86; run: apt-get install qemu-system-x86")

    monkeypatch.setattr(vm, "setup", unavailable)
    code, _, err = invoke(str(path))
    assert code == 2 and "apt-get install qemu-system-x86" in err and err.count("\n") == 1

    def boot_fails(*args: object, **kwargs: object) -> vm.VmAssets:
        raise vm.VmBootError("the guest did not boot", ["line 1", "line 2"], tmp_path / "last-console.log")

    monkeypatch.setattr(vm, "setup", boot_fails)
    code, _, err = invoke("--setup")
    assert code == 2 and err.count("\n") == 1
    assert "the guest did not boot" in err and "last-console.log" in err


@pytest.mark.vm
def test_cli_dax_vm_reports_dax_active(tmp_path: Path) -> None:
    from faultlab.oracle import vm

    try:
        vm.setup(log=lambda _msg: None)
        build_probe(static=True)
    except (vm.VmUnavailableError, CompilerNotFoundError) as exc:
        pytest.skip(f"DAX VM unavailable: {exc}")
    path = tmp_path / "dax.toml"
    path.write_text(MMAP01.replace('fs = "tmpfs"', 'fs = "dax"'))
    result = CliRunner().invoke(oracle_cmd, [str(path), "--kernel", "dax-vm"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "DAX active (statx STATX_ATTR_DAX)" in result.stdout
    assert "vs kernel dax-vm" in result.stdout
