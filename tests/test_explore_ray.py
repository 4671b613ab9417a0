"""The split search on a real Ray cluster: a head started on 127.0.0.1, an exploration sent to it
with --engine ray --address, and the same result as one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from design_examples import NO_RECHECK

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> object:
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    # A home of its own: Ray 2.60 keeps an auth token in ~/.ray, written when a local Ray is started
    # (``--engine ray`` without ``--address``); a stale one there made this head refuse the client.
    ENV["HOME"] = str(tmp_path_factory.mktemp("home"))
    start = subprocess.run(
        [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
         "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)],
        capture_output=True, text=True, env=ENV, timeout=180, check=False)
    if start.returncode != 0:
        pytest.fail(f"ray start failed: {start.stderr[-2000:]}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=ENV, timeout=120, check=False)


def _explore(*args: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "faultlab", "explore", "scenarios/races/three-hole-readers.toml",
                           "--design", "v4.7,v4.7-wake-one", "--bound", "1", "--json", "--quiet", *args],
                          cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=300, check=False)
    assert proc.returncode == 1, proc.stderr  # v4.7-wake-one deadlocks
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_exploration_on_a_ray_cluster_equals_one_process(ray_head: str) -> None:
    on_ray = _explore("--engine", "ray", "--address", ray_head)
    one = _explore("--jobs", "1")
    assert on_ray["designs"] == one["designs"]
    timing = on_ray["timing"]
    assert isinstance(timing, dict) and timing["v4.7"]["engine"] == "ray"
    verdicts = [d["verdict"] for d in on_ray["designs"]]  # type: ignore[index, union-attr]
    assert verdicts == ["clean", "deadlock"]


def test_engine_options_are_checked() -> None:
    proc = subprocess.run([sys.executable, "-m", "faultlab", "explore", "scenarios/seed/cow-vs-truncate.toml",
                           "--address", "127.0.0.1:1"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "faultlab: --address applies to --engine ray only"


def test_a_design_file_explored_on_ray_keeps_its_replacement(ray_head: str, tmp_path: Path) -> None:
    # The design travels to the workers without its linked images (their modules would arrive as
    # faultlab's own, unlinked, and the workers would explore plain v4.0: clean, 58 schedules).
    design = tmp_path / "no_recheck.py"
    design.write_text(NO_RECHECK)

    def explore(*args: str) -> dict[str, object]:
        proc = subprocess.run([sys.executable, "-m", "faultlab", "explore", "scenarios/seed/cow-vs-truncate.toml",
                               "--design", str(design), "--json", "--quiet", *args],
                              cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=300, check=False)
        assert proc.returncode == 1, proc.stderr  # the race is found
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    on_ray = explore("--engine", "ray", "--address", ray_head)
    assert on_ray["designs"] == explore("--jobs", "1")["designs"]
    assert [d["verdict"] for d in on_ray["designs"]] == ["stale-pte-after-truncate"]  # type: ignore[index, union-attr]


def test_a_design_is_sent_without_its_images_and_an_image_not_at_all(tmp_path: Path) -> None:
    from ray import cloudpickle  # what Ray sends tasks' arguments with

    from faultlab.designs import load_design_file
    from faultlab.exploring import SearchOptions, explore_design
    from faultlab.scenario import load_scenario

    path = tmp_path / "no_recheck.py"
    path.write_text(NO_RECHECK)
    design = load_design_file(str(path))  # linked once on loading
    assert design.image() is design.image()
    with pytest.raises(TypeError, match="not sent between processes"):
        cloudpickle.dumps(design.image())
    sent = cloudpickle.loads(cloudpickle.dumps(design))
    seed = load_scenario(str(ROOT / "scenarios/seed/cow-vs-truncate.toml"))
    verdict = explore_design(seed, sent, options=SearchOptions(jobs=1))
    assert verdict.violation_ids == ["stale-pte-after-truncate"]  # the replacement, not plain v4.0
