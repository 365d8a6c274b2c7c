"""The live-event hub: sequence numbers, a bounded replay ring, bounded subscribers.

Theory of operation
-------------------
:meth:`EventHub.publish` takes a :class:`LiveEvent` (a kind, its audience and a
JSON-ready body) on the engine's loop, gives it the next sequence number, encodes
it to JSON once, keeps it in a ring of the last ``ring_size`` events, and offers
the encoded text to every subscriber whose :class:`Scope` admits it. Publishing
never awaits and never blocks: each subscriber has its own queue of at most
``queue_size`` events; one that is full when an event arrives is *dropped* (its
queue is closed and its connection is ended by its reader), so a slow client
costs the engine one failed ``put_nowait`` and then nothing.

Subscribers are indexed by what they may see (an agent's own id, a supervisor's
areas, everything), so an event costs the subscribers it is for, not all of them.

Sequence numbers grow by one per published event, in one process (``epoch``
names the process's run: a number from another run means nothing here). A
client that comes back with the last number it saw (and the epoch) gets every
event after it that its scope admits, from the ring, before the live ones; if
the ring no longer holds the event after it, :meth:`EventHub.subscribe` says the
gap cannot be filled and the caller sends a fresh snapshot instead.

Bounds: the ring (``ring_size`` events), each subscriber's queue (``queue_size``),
the number of subscribers (``max_subscribers``; more are refused).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from telephony.auth import Caller, Role

log = logging.getLogger(__name__)

DEFAULT_RING_SIZE = 10_000
DEFAULT_QUEUE_SIZE = 1_000
DEFAULT_MAX_SUBSCRIBERS = 5_000


class EventKind(StrEnum):
    """What a live event is about (its ``type`` on the wire)."""

    AGENT = "agent"  # an agent's state changed
    CALL = "call"  # a live call changed (state, agent, step), or ended
    QUEUE = "queue"  # a skill group's waiting calls changed
    SCREEN_POP = "screen_pop"  # an agent's phone rings: the citizen and its history


@dataclass(frozen=True, slots=True)
class Audience:
    """Who may see an event: the agent it concerns, and the areas it belongs to."""

    agent_ids: frozenset[str] = frozenset()
    areas: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event before it is numbered: its kind, audience and body (JSON-ready values)."""

    kind: EventKind
    audience: Audience
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Published:
    """A numbered event as kept in the ring: its audience and its encoded text."""

    seq: int
    kind: EventKind
    audience: Audience
    text: str


#: What each role may receive, by kind (``API.md``: an agent gets its own state, calls and
#: screen pops; a supervisor its areas' agents, queues and calls; an auditor reads calls
#: and queues as ``GET /v1/calls`` lets it; an admin everything but other agents' screen
#: pops, which carry a citizen's history to the agent taking the call only).
_KINDS: dict[Role, frozenset[EventKind]] = {
    Role.AGENT: frozenset({EventKind.AGENT, EventKind.CALL, EventKind.SCREEN_POP}),
    Role.SUPERVISOR: frozenset({EventKind.AGENT, EventKind.CALL, EventKind.QUEUE}),
    Role.ADMIN: frozenset({EventKind.AGENT, EventKind.CALL, EventKind.QUEUE}),
    Role.AUDITOR: frozenset({EventKind.CALL, EventKind.QUEUE}),
}


@dataclass(frozen=True, slots=True)
class Scope:
    """What one principal may receive, made from its :class:`~telephony.auth.Caller`."""

    kinds: frozenset[EventKind]
    agent_id: str | None = None  # an agent: only events about itself
    areas: frozenset[str] = frozenset()  # a supervisor: events of these areas
    everything: bool = False  # admin, auditor: every area

    @classmethod
    def of(cls, caller: Caller) -> Scope:
        """The scope of ``caller``, as the HTTP API scopes it (``telephony.auth``)."""
        kinds = _KINDS[caller.role]
        if caller.role is Role.AGENT:
            return cls(kinds, agent_id=caller.agent_id)
        if caller.role is Role.SUPERVISOR:
            return cls(kinds, areas=caller.areas)
        return cls(kinds, everything=True)

    def admits(self, kind: EventKind, audience: Audience) -> bool:
        """Whether an event of ``kind`` for ``audience`` is for this scope."""
        if kind not in self.kinds:
            return False
        if self.agent_id is not None:
            return self.agent_id in audience.agent_ids
        if kind is EventKind.SCREEN_POP:
            return False
        return self.everything or not self.areas.isdisjoint(audience.areas)


@dataclass(eq=False)
class Subscriber:
    """One client's subscription: a bounded queue of encoded events, filled by the hub.

    ``backlog`` holds the replayed events, sent before the queue's. Once
    :attr:`dropped` (too slow, unsubscribed, the hub closed), :attr:`ended` is set
    and :meth:`next` raises :class:`SubscriberDropped` at once: what is still
    queued is not sent (a client that comes back with its last number gets it
    from the ring).
    """

    scope: Scope
    queue: asyncio.Queue[str | None]
    backlog: collections.deque[str] = field(default_factory=collections.deque)
    dropped: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def next(self) -> str:
        """The next event's text to send (backlog first); waits for one."""
        if self.dropped is None and self.backlog:
            return self.backlog.popleft()
        text = None if self.dropped is not None else await self.queue.get()
        if text is None or self.dropped is not None:
            raise SubscriberDropped(self.dropped or "closed")
        return text

    def offer(self, text: str) -> bool:
        """Queue one event; False (and the subscriber dropped) if its queue is full."""
        if self.dropped is not None:
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.drop("too slow: more events waiting than its queue holds")
            return False
        return True

    def drop(self, why: str) -> None:
        """End the subscription (idempotent): wake its reader and whoever awaits ``ended``."""
        if self.dropped is not None:
            return
        self.dropped = why
        if self.queue.empty():  # a reader may be waiting on it; a full queue's is not
            self.queue.put_nowait(None)
        self.ended.set()


class SubscriberDropped(Exception):
    """The subscription ended (the message says why): the connection is to be closed."""


class TooManySubscribers(Exception):
    """The hub holds ``max_subscribers`` already."""


@dataclass(frozen=True, slots=True)
class Resume:
    """What :meth:`EventHub.subscribe` did with the client's last sequence number."""

    resumed: bool  # every event after ``since`` that the scope admits is in the backlog
    replayed: int  # how many
    why: str | None = None  # when not resumed: why a snapshot is needed


class EventHub:
    """Numbers, keeps and fans out live events; see the module docstring. One event loop."""

    def __init__(
        self,
        *,
        ring_size: int = DEFAULT_RING_SIZE,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
    ) -> None:
        if ring_size < 1 or queue_size < 1:
            raise ValueError("ring_size and queue_size must be at least 1")
        self.epoch = secrets.token_hex(6)
        self.seq = 0  # the last number given
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self.ring: collections.deque[Published] = collections.deque(maxlen=ring_size)
        self.dropped = 0  # subscribers dropped for being slow, since start
        self._by_agent: dict[str, set[Subscriber]] = {}
        self._by_area: dict[str, set[Subscriber]] = {}
        self._everything: set[Subscriber] = set()
        self._count = 0

    @property
    def subscribers(self) -> int:
        """How many clients are subscribed now."""
        return self._count

    def publish(self, event: LiveEvent) -> int:
        """Number, keep and fan out ``event``; returns its sequence number. Never blocks."""
        self.seq += 1
        at = datetime.now(UTC).isoformat()
        text = orjson.dumps(
            {"type": event.kind.value, "seq": self.seq, "at": at, **event.body}
        ).decode()
        kept = Published(self.seq, event.kind, event.audience, text)
        self.ring.append(kept)
        for subscriber in self._targets(event.audience):
            if subscriber.scope.admits(event.kind, event.audience) and not subscriber.offer(text):
                self._slow(subscriber)
        return self.seq

    def _targets(self, audience: Audience) -> set[Subscriber]:
        targets = set(self._everything)
        for agent_id in audience.agent_ids:
            targets |= self._by_agent.get(agent_id, set())
        for area in audience.areas:
            targets |= self._by_area.get(area, set())
        return targets

    def _slow(self, subscriber: Subscriber) -> None:
        self.dropped += 1
        log.warning(
            "live events: a slow client is dropped",
            extra={"queue_size": self.queue_size, "agent": subscriber.scope.agent_id},
        )
        self.unsubscribe(subscriber, subscriber.dropped or "too slow")

    def subscribe(
        self, scope: Scope, since: int | None = None, epoch: str | None = None
    ) -> tuple[Subscriber, Resume]:
        """A new subscriber for ``scope``, with the events after ``since`` when the ring has
        them (``Resume.resumed``); otherwise the caller owes the client a snapshot."""
        if self._count >= self.max_subscribers:
            raise TooManySubscribers(f"{self._count} clients are subscribed already")
        subscriber = Subscriber(scope, asyncio.Queue(self.queue_size))
        resume = self._replay(subscriber, since, epoch)
        if scope.agent_id is not None:
            self._by_agent.setdefault(scope.agent_id, set()).add(subscriber)
        elif scope.everything:
            self._everything.add(subscriber)
        else:
            for area in scope.areas:
                self._by_area.setdefault(area, set()).add(subscriber)
        self._count += 1
        return subscriber, resume

    def _replay(self, subscriber: Subscriber, since: int | None, epoch: str | None) -> Resume:
        if since is None:
            return Resume(False, 0, "no last sequence number given")
        if epoch is not None and epoch != self.epoch:
            return Resume(False, 0, "the server restarted since (another epoch)")
        if since > self.seq or since < 0:
            return Resume(False, 0, f"sequence number {since} was never given")
        oldest = self.ring[0].seq if self.ring else self.seq + 1
        if since + 1 < oldest:
            return Resume(False, 0, f"events after {since} are no longer kept")
        start = since + 1 - oldest
        scope = subscriber.scope
        for index in range(start, len(self.ring)):
            kept = self.ring[index]
            if scope.admits(kept.kind, kept.audience):
                subscriber.backlog.append(kept.text)
        return Resume(True, len(subscriber.backlog))

    def unsubscribe(self, subscriber: Subscriber, why: str = "unsubscribed") -> None:
        """Take ``subscriber`` out and end it (idempotent)."""
        subscriber.drop(why)
        scope = subscriber.scope
        if scope.agent_id is not None:
            found = _discard(self._by_agent, scope.agent_id, subscriber)
        elif scope.everything:
            found = subscriber in self._everything
            self._everything.discard(subscriber)
        else:
            found = any([_discard(self._by_area, area, subscriber) for area in scope.areas])
        self._count -= found

    def close(self) -> None:
        """Drop every subscriber (shutdown)."""
        for subscriber in list(self._all()):
            self.unsubscribe(subscriber, "the server is stopping")

    def _all(self) -> set[Subscriber]:
        found = set(self._everything)
        for bucket in (*self._by_agent.values(), *self._by_area.values()):
            found |= bucket
        return found


def _discard(index: dict[str, set[Subscriber]], key: str, subscriber: Subscriber) -> bool:
    """Take ``subscriber`` out of ``index[key]`` (the key too once empty); whether it was in."""
    bucket = index.get(key)
    if bucket is None or subscriber not in bucket:
        return False
    bucket.discard(subscriber)
    if not bucket:
        del index[key]
    return True
