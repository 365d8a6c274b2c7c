"""Overload control: past its capacity the controller refuses new calls before answer,
with a CDR, and takes calls again once it has been calm for a while."""

from __future__ import annotations

from pathlib import Path

from telephony.calls.model import CallState
from telephony.calls.overload import OverloadGuard, OverloadSettings
from tests.calls.scripted import CALLER, Rig

SECOND = "0f8e6a9e-1111-4c1e-9a6b-000000000002"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _guard(depth: list[int] | None = None) -> tuple[OverloadGuard, Clock]:
    clock = Clock()
    waiting = depth if depth is not None else [0]
    settings = OverloadSettings(max_loop_lag_s=0.2, max_event_age_s=1.0, max_buffer_depth=100)
    return OverloadGuard(settings, buffer_depth=lambda: waiting[0], clock=clock), clock


def test_loop_lag_past_its_threshold_sheds_and_calm_recovers_after_a_while() -> None:
    guard, clock = _guard()
    guard.sample(0.05)
    assert guard.accepting
    guard.sample(0.3)
    assert guard.shedding
    clock.now = 1.0
    guard.sample(0.15)  # under the threshold, not under half of it: still shedding
    clock.now = 2.0
    guard.sample(0.05)
    clock.now = 3.5
    guard.sample(0.05)
    assert guard.shedding  # calm for 1.5 s of the 2 s asked
    clock.now = 4.1
    guard.sample(0.05)
    assert guard.accepting


def test_a_full_write_buffer_sheds() -> None:
    depth = [0]
    guard, _ = _guard(depth)
    depth[0] = 150
    guard.sample(0.0)
    assert guard.shedding


def test_event_age_is_measured_against_the_clocks_offset() -> None:
    guard, _ = _guard()
    # the switch's clock is 30 s behind ours: a steady offset is no backlog
    for n in range(5):
        guard.event_seen(str(int((1000.0 + n - 30.0) * 1e6)), 1000.0 + n)
    guard.sample(0.0)
    assert guard.accepting and guard.event_age < 0.01
    guard.event_seen(str(int((1010.0 - 30.0) * 1e6)), 1012.5)  # handled 2.5 s late
    guard.sample(0.0)
    assert guard.shedding and 2.4 < guard.event_age < 2.6


async def test_a_new_call_is_refused_before_answer_and_gets_its_cdr(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    guard, _ = _guard()
    rig.engine.overload = guard
    await rig.queued_call(CALLER)  # accepted before the overload
    guard.sample(1.0)
    rig.park(SECOND, "13900139000")
    await rig.until(lambda: rig.port.sent("hangup"))
    assert rig.port.sent("hangup") == [("hangup", SECOND, "NORMAL_TEMPORARY_FAILURE")]
    assert not [c for c in rig.port.sent("uuid_park") if c[1] == SECOND]  # never taken
    assert (SECOND, "answer", "") not in rig.port.executes
    rig.hangup_complete(SECOND, "send_bye", "NORMAL_TEMPORARY_FAILURE")
    cdr = rig.rows.last("calls", "uuid", SECOND)
    assert cdr is not None and cdr["ended_at"] is not None
    assert (cdr["outcome"], cdr["hung_up_by"]) == ("refused", "system")
    assert rig.engine.calls[CALLER].state is CallState.QUEUED  # the accepted call goes on
    await rig.engine.close()
