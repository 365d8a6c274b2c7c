"""Overload control: past its capacity the controller admits new calls at the rate it can
serve and refuses the rest before answer, each with a CDR; calm lifts the limit again."""

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


class Cpu:
    """The process's CPU clock, moved by the test: ``share`` of each second passes."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.share = 0.1
        self.used = 0.0
        self.at = 0.0

    def __call__(self) -> float:
        self.used += (self.clock.now - self.at) * self.share
        self.at = self.clock.now
        return self.used


def _guard(depth: list[int] | None = None, **settings: float) -> tuple[OverloadGuard, Clock, Cpu]:
    clock = Clock()
    cpu = Cpu(clock)
    waiting = depth if depth is not None else [0]
    chosen = OverloadSettings(
        **{"max_loop_lag_s": 0.2, "max_event_age_s": 1.0, "max_buffer_depth": 100, **settings}
    )
    guard = OverloadGuard(chosen, buffer_depth=lambda: waiting[0], clock=clock, cpu_clock=cpu)
    return guard, clock, cpu


def _offer(
    guard: OverloadGuard, clock: Clock, rate: float, seconds: float, lag: float = 0.0
) -> int:
    """Calls arriving evenly at ``rate`` for ``seconds``, sampled every 0.1 s; how many got in."""
    taken = 0
    start = clock.now
    per_sample = round(rate / 10)
    for tick in range(round(seconds * 10)):
        for n in range(per_sample):
            clock.now = start + (tick + (n + 1) / per_sample) / 10
            taken += guard.admit()
        guard.sample(lag)
    return taken


def test_under_capacity_every_call_is_taken() -> None:
    guard, clock, _ = _guard()
    assert _offer(guard, clock, 100, 5) == 500
    assert not guard.shedding and guard.refused == 0


def test_past_the_cpu_threshold_calls_are_admitted_at_less_than_was_taken() -> None:
    guard, clock, cpu = _guard()
    _offer(guard, clock, 100, 2)
    cpu.share = 0.95  # over 0.85 of a core
    _offer(guard, clock, 100, 1.5)
    assert guard.shedding and guard.limit is not None
    assert 60 <= guard.limit <= 81  # cut to 0.8 of ~100/s, once: the next cut waits hold_s
    before = guard.admitted
    _offer(guard, clock, 100, 1.0)
    assert guard.admitted - before < 85  # the rest were refused, as they arrived
    assert guard.refused > 0


def test_the_limit_is_cut_again_while_the_overload_lasts() -> None:
    guard, clock, cpu = _guard()
    _offer(guard, clock, 200, 1.5)
    cpu.share = 1.0
    _offer(guard, clock, 200, 1.2)
    first = guard.limit
    _offer(guard, clock, 200, 2.0)
    assert first is not None and guard.limit is not None and guard.limit < first * 0.85


def test_calm_raises_the_limit_and_lifts_it_once_it_covers_the_offered_rate() -> None:
    guard, clock, cpu = _guard()
    _offer(guard, clock, 100, 2)
    cpu.share = 0.95
    _offer(guard, clock, 100, 1.2)
    limited = guard.limit
    cpu.share = 0.3  # under calm (0.8) times the threshold
    _offer(guard, clock, 100, 1.0)
    assert guard.limit is not None and limited is not None and guard.limit > limited
    _offer(guard, clock, 100, 10.0)
    assert not guard.shedding  # lifted: the limit covered 100/s for recover_s
    refused = guard.refused
    assert _offer(guard, clock, 100, 1.0) == 100 and guard.refused == refused


def test_between_calm_and_over_the_limit_holds() -> None:
    guard, clock, cpu = _guard()
    _offer(guard, clock, 100, 2)
    cpu.share = 0.95
    _offer(guard, clock, 100, 1.2)
    held = guard.limit
    cpu.share = 0.75  # under 0.85, not under 0.68
    _offer(guard, clock, 100, 3.0)
    assert guard.limit == held


def test_a_fixed_ceiling_applies_without_any_load() -> None:
    guard, clock, _ = _guard(max_rate=50)
    taken = _offer(guard, clock, 100, 4)
    assert 190 <= taken <= 215 and not guard.shedding


def test_loop_lag_and_a_full_write_buffer_limit_too() -> None:
    guard, clock, _ = _guard()
    _offer(guard, clock, 50, 1.5, lag=0.3)
    assert guard.shedding
    depth = [0]
    guard, clock, _ = _guard(depth)
    _offer(guard, clock, 50, 1.5)
    depth[0] = 150
    _offer(guard, clock, 50, 0.2)
    assert guard.shedding


def test_one_pause_of_the_loop_is_not_an_overload() -> None:
    guard, clock, _ = _guard()
    _offer(guard, clock, 50, 1.0)
    _offer(guard, clock, 50, 0.1, lag=0.5)  # one 500 ms pause (a GC, say) in a second
    _offer(guard, clock, 50, 1.0)
    assert not guard.shedding and guard.refused == 0


def test_event_age_is_measured_against_the_clocks_offset() -> None:
    guard, clock, _ = _guard()
    # the switch's clock is 30 s behind ours: a steady offset is no backlog
    for n in range(5):
        guard.event_seen(str(int((1000.0 + n - 30.0) * 1e6)), 1000.0 + n)
    guard.sample(0.0)
    assert not guard.shedding and guard.event_age < 0.01
    guard.event_seen(str(int((1010.0 - 30.0) * 1e6)), 1012.5)  # handled 2.5 s late
    clock.now = 0.1
    guard.sample(0.0)
    assert guard.shedding and 2.4 < guard.event_age < 2.6


async def test_a_new_call_is_refused_before_answer_and_gets_its_cdr(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    guard, _, _ = _guard(max_rate=1, burst_s=0)
    rig.engine.overload = guard
    await rig.queued_call(CALLER)  # accepted: the bucket's one token
    assert guard.admitted == 1
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
