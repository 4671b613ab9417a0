"""Schedule strings and replay: round trips, refusals, replay errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faultlab.errors import UserError
from faultlab.explore import toys
from faultlab.explore.program import ScheduleError
from faultlab.explore.replay import ReplayChooser, replay, replay_schedule, replay_traced
from faultlab.explore.schedule import check_matches, decode, decode_choices, encode, encode_choices

DIGEST = "0123456789abcdef"


def test_encode_is_run_length() -> None:
    assert encode_choices([0] * 5 + [1] * 3 + [0] * 12) == "0x5.1x3.0x12"
    assert encode_choices([0, 1, 0]) == "0.1.0"
    assert encode_choices([]) == "-"
    assert encode([2, 2, 10], DIGEST, "v4.0") == f"fl1:{DIGEST}:v4.0:2x2.10"


def test_decode_accepts_both_forms() -> None:
    assert decode_choices("0x2.1.0x1") == [0, 0, 1, 0]
    assert decode(f"fl1:{DIGEST}:v4.0:-") == (DIGEST, "v4.0", [])
    assert decode(f"  fl1:{DIGEST}:v4.0:3x2\n") == (DIGEST, "v4.0", [3, 3])


@given(
    st.lists(st.integers(min_value=0, max_value=40), max_size=200), st.sampled_from(["v4.0", "entry-locks"])
)
def test_round_trip(tids: list[int], design: str) -> None:
    assert decode(encode(tids, DIGEST, design)) == (DIGEST, design, tids)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "not a faultlab schedule"),
        ("hello", "not a faultlab schedule"),
        (f"fl1:{DIGEST}:v4.0", "not a faultlab schedule"),
        (f"fl1:{DIGEST}:v4.0:0x2:1", "not a faultlab schedule"),
        (f"fl9:{DIGEST}:v4.0:0x2", "format 'fl9' is not supported"),
        ("fl1::v4.0:0x2", "empty scenario digest"),
        (f"fl1:{DIGEST}:v4.0:0x", "choice 1 is '0x'"),
        (f"fl1:{DIGEST}:v4.0:0x2..1", "choice 2 is ''"),
        (f"fl1:{DIGEST}:v4.0:a", "choice 1 is 'a'"),
        (f"fl1:{DIGEST}:v4.0:-1", "choice 1 is '-1'"),
        (f"fl1:{DIGEST}:v4.0:1x0", "count must be at least 1"),
        (f"fl1:{DIGEST}:v4.0:1x99999999999", "longer than"),
        (f"fl1:{DIGEST}:v4.0:", "empty choice list"),
    ],
)
def test_malformed_strings_are_refused(text: str, needle: str) -> None:
    with pytest.raises(UserError) as exc:
        decode(text)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_encode_refuses_unencodable_fields() -> None:
    with pytest.raises(UserError):
        encode([0], "ab:cd", "v4.0")
    with pytest.raises(UserError):
        encode([0], DIGEST, "my design")


def test_changed_scenario_or_design_is_refused() -> None:
    prog = toys.counter()
    s = encode([0, 0, 1], DIGEST, "v4.0")
    with pytest.raises(UserError) as exc:
        replay_schedule(prog, s, scenario_digest="ffffffffffffffff", design="v4.0")
    assert str(exc.value) == (
        f"schedule was recorded against scenario digest {DIGEST} (design v4.0); this scenario is "
        "ffffffffffffffff: refusing to replay a changed scenario"
    )
    with pytest.raises(UserError, match="against design v4.0; the current design is v4.7"):
        replay_schedule(prog, s, scenario_digest=DIGEST, design="v4.7")
    with pytest.raises(UserError):
        check_matches(DIGEST, "a", scenario_digest=DIGEST, current_design="b")
    result = replay_schedule(prog, s, scenario_digest=DIGEST, design="v4.0")
    assert [v.id for v in result.violations] == ["lost-update"]


def test_replay_follows_the_schedule_then_the_default() -> None:
    prog = toys.counter()
    rp = replay_traced(prog, [1, 1, 0])
    # t1 starts and reads, t0 preempts it (a preemption), then t0 goes on while it can (default).
    assert rp.trace == [1, 1, 0, 0, 0, 1]
    assert rp.preemption_points == [2]
    assert rp.nondefault == [0, 2]
    assert rp.shortest_schedule() == [1, 1, 0]
    assert [v.id for v in rp.result.violations] == ["lost-update"]
    assert [s.tid for s in rp.result.steps] == rp.trace


def test_replay_is_deterministic() -> None:
    prog = toys.ordering()
    a = replay(prog, [0, 0, 1, 1, 1, 2])
    b = replay(prog, [0, 0, 1, 1, 1, 2])
    assert a.final_state == b.final_state
    assert [(s.tid, s.label) for s in a.steps] == [(s.tid, s.label) for s in b.steps]
    assert [v.id for v in a.violations] == ["bad-order"]


def test_replay_naming_a_blocked_thread_is_a_user_error() -> None:
    prog = toys.counter(locked=True)
    # Steps 0-1: t0 starts and takes the mutex; step 2: t1 starts; step 3 names t1, whose lock()
    # cannot proceed.
    with pytest.raises(ScheduleError) as exc:
        replay(prog, [0, 0, 1, 1])
    assert isinstance(exc.value, UserError)
    assert str(exc.value) == "schedule step 3 names thread 1 (t1), which is blocked"
    with pytest.raises(ScheduleError, match="names thread 7, which does not exist"):
        replay(prog, [7])
    with pytest.raises(ScheduleError, match="which has finished"):
        replay(toys.lost_wakeup(), [1, 1, 1])


def test_lenient_replay_substitutes_the_default() -> None:
    chooser = ReplayChooser([0, 0, 1, 1], lenient=True)
    toys.counter(locked=True)().run(chooser)
    assert chooser.trace[:4] == [0, 0, 1, 0]  # t1 is blocked at step 3: the default (t0) goes
