"""The event hub alone: numbering, scope, replay ring, slow subscribers (no I/O)."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from telephony.auth import Caller, Role
from telephony.live.hub import (
    Audience,
    EventHub,
    EventKind,
    LiveEvent,
    Scope,
    SubscriberDropped,
    TooManySubscribers,
)


def _caller(role: Role, areas: str = "", agent_id: str | None = None) -> Caller:
    return Caller(
        uuid.uuid4(), role.value, role, frozenset(filter(None, areas.split(","))), agent_id
    )


AGENT = Scope.of(_caller(Role.AGENT, agent_id="a1"))
EAST = Scope.of(_caller(Role.SUPERVISOR, "east"))
ADMIN = Scope.of(_caller(Role.ADMIN))
AUDITOR = Scope.of(_caller(Role.AUDITOR))


def _event(kind: EventKind, agent: str | None = None, area: str | None = None) -> LiveEvent:
    audience = Audience(frozenset({agent} if agent else ()), frozenset({area} if area else ()))
    return LiveEvent(kind, audience, {"n": 1})


@pytest.mark.parametrize(
    ("scope", "event", "admitted"),
    [
        (AGENT, _event(EventKind.AGENT, "a1", "east"), True),
        (AGENT, _event(EventKind.AGENT, "a2", "east"), False),
        (AGENT, _event(EventKind.SCREEN_POP, "a1"), True),
        (AGENT, _event(EventKind.QUEUE, None, "east"), False),
        (EAST, _event(EventKind.AGENT, "a1", "east"), True),
        (EAST, _event(EventKind.CALL, "a2", "west"), False),
        (EAST, _event(EventKind.QUEUE, None, "east"), True),
        (EAST, _event(EventKind.SCREEN_POP, "a1", "east"), False),
        (ADMIN, _event(EventKind.CALL, None, None), True),
        (ADMIN, _event(EventKind.SCREEN_POP, "a1"), False),
        (AUDITOR, _event(EventKind.CALL, None, "west"), True),
        (AUDITOR, _event(EventKind.AGENT, "a1", "west"), False),
    ],
)
def test_each_scope_admits_what_the_api_would_show_it(
    scope: Scope, event: LiveEvent, admitted: bool
) -> None:
    assert scope.admits(event.kind, event.audience) is admitted


async def test_events_are_numbered_encoded_once_and_reach_only_their_scopes() -> None:
    hub = EventHub()
    agent, _ = hub.subscribe(AGENT)
    east, _ = hub.subscribe(EAST)
    assert hub.publish(_event(EventKind.AGENT, "a2", "east")) == 1
    assert hub.publish(_event(EventKind.AGENT, "a1", "east")) == 2
    got = orjson.loads(await agent.next())
    assert (got["type"], got["seq"], got["n"]) == ("agent", 2, 1)
    assert [orjson.loads(await east.next())["seq"] for _ in range(2)] == [1, 2]
    assert agent.queue.empty()


async def test_a_resume_replays_what_the_scope_missed_and_a_gap_asks_for_a_snapshot() -> None:
    hub = EventHub(ring_size=4)
    for n in range(3):
        hub.publish(_event(EventKind.AGENT, "a1" if n != 1 else "a2"))
    back, resume = hub.subscribe(AGENT, since=0, epoch=hub.epoch)
    assert resume.resumed and resume.replayed == 2
    assert [orjson.loads(await back.next())["seq"] for _ in range(2)] == [1, 3]
    assert hub.subscribe(AGENT, since=3, epoch=hub.epoch)[1].replayed == 0
    for _ in range(4):
        hub.publish(_event(EventKind.AGENT, "a1"))
    gone = hub.subscribe(AGENT, since=1, epoch=hub.epoch)[1]
    assert not gone.resumed and "no longer kept" in (gone.why or "")
    assert not hub.subscribe(AGENT, since=5, epoch="other")[1].resumed
    assert not hub.subscribe(AGENT, since=99, epoch=hub.epoch)[1].resumed
    assert hub.subscribe(AGENT, since=3, epoch=hub.epoch)[1].resumed  # 4.. are in the ring


async def test_a_slow_subscriber_is_dropped_and_publishing_never_waits_for_it() -> None:
    hub = EventHub(queue_size=10)
    slow, _ = hub.subscribe(ADMIN)
    fast, _ = hub.subscribe(ADMIN)
    started = time.perf_counter()
    for _ in range(1000):
        hub.publish(_event(EventKind.CALL))
        while not fast.queue.empty():
            await fast.next()
    assert time.perf_counter() - started < 1.0
    assert slow.dropped is not None and slow.dropped.startswith("too slow")
    assert slow.ended.is_set() and fast.dropped is None
    assert hub.subscribers == 1 and hub.dropped == 1
    with pytest.raises(SubscriberDropped):
        await slow.next()  # what was queued is not sent: the client resumes from the ring


async def test_unsubscribe_and_close_end_readers_and_the_count_is_bounded() -> None:
    hub = EventHub(max_subscribers=2)
    first, _ = hub.subscribe(EAST)
    hub.subscribe(AGENT)
    with pytest.raises(TooManySubscribers):
        hub.subscribe(ADMIN)
    hub.unsubscribe(first)
    hub.unsubscribe(first)  # idempotent
    assert hub.subscribers == 1
    with pytest.raises(SubscriberDropped):
        await first.next()
    hub.close()
    assert hub.subscribers == 0
