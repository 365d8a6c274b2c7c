"""The node connection history, and 呼叫接入系统可用率's outage arithmetic.

:class:`NodeHistory` is a :class:`~telephony.services.Component` that stores
one ``node_connection_events`` row (through the write buffer) each time a
node's ESL connection comes up or goes down (``EslConnection(on_state=...)``),
one "down" row per configured node when the control plane starts (a node is
down until it connects) and one when it stops cleanly (no call is taken while
the control plane is not running).

:func:`system_uptime` reads the history: the call-access system is up while
at least one node is connected (a node's loss routes new work to the others);
its service time starts with the first row ever stored and ends now.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, union_all
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.esl.port import NodeConnected, NodeDisconnected
from telephony.reports.periods import Interval, Window, interval_bounds
from telephony.store.buffer import Write, WriteBuffer
from telephony.store.models import NodeConnectionEvent, table_of

_HISTORY = table_of(NodeConnectionEvent)
STARTED = "control plane started"
STOPPED = "control plane stopped"
_REASON_CHARS = 256
_MICROSECOND = timedelta(microseconds=1)


class NodeHistory:
    """Records every node connect and disconnect; see the module docstring."""

    def __init__(
        self, buffer: WriteBuffer, clock: Callable[[], float], nodes: Iterable[str]
    ) -> None:
        self._buffer = buffer
        self._clock = clock
        self._nodes = tuple(nodes)
        self._connected: set[str] = set()

    def observe(self, notice: NodeConnected | NodeDisconnected) -> None:
        """The ESL connection's ``on_state`` callback (on the event loop)."""
        if isinstance(notice, NodeConnected):
            self._connected.add(notice.node)
            self._put(notice.node, True, "reconnected" if notice.reconnect else "connected")
        else:
            self._connected.discard(notice.node)
            self._put(notice.node, False, notice.reason)

    async def start(self) -> None:
        for node in self._nodes:
            if node not in self._connected:
                self._put(node, False, STARTED)

    async def stop(self) -> None:
        for node in sorted(self._connected):
            self._put(node, False, STOPPED)
        self._connected.clear()

    def _put(self, node: str, connected: bool, reason: str | None) -> None:
        self._buffer.put(
            Write(
                _HISTORY,
                {
                    "id": uuid.uuid4(),
                    "node": node,
                    "at": datetime.fromtimestamp(self._clock(), UTC),
                    "connected": connected,
                    "reason": None if reason is None else reason[:_REASON_CHARS],
                },
            )
        )


@dataclass(frozen=True, slots=True)
class Uptime:
    """One interval's service time and the part of it with no node connected (microseconds)."""

    start: datetime | None
    service_us: int
    outage_us: int


@dataclass(frozen=True, slots=True)
class _Change:
    node: str
    at: datetime
    connected: bool


async def system_uptime(
    connection: AsyncConnection, window: Window, interval: Interval, now: datetime
) -> list[Uptime]:
    """Service and outage time of the call-access system in each interval of ``window``."""
    before = (
        select(_HISTORY.c.node, _HISTORY.c.at, _HISTORY.c.connected)
        .where(_HISTORY.c.at < window.start)
        .ext(distinct_on(_HISTORY.c.node))
        .order_by(_HISTORY.c.node, _HISTORY.c.at.desc())
    )
    inside = select(_HISTORY.c.node, _HISTORY.c.at, _HISTORY.c.connected).where(
        _HISTORY.c.at >= window.start, _HISTORY.c.at < window.end
    )
    query = union_all(before, inside).subquery()
    rows = (await connection.execute(select(query).order_by(query.c.at))).all()
    changes = [_Change(r.node, r.at, r.connected) for r in rows]
    return uptime(changes, window, interval, now)


def down_periods(changes: Sequence[_Change], until: datetime) -> list[tuple[datetime, datetime]]:
    """The periods (from the first change to ``until``) in which no node was connected."""
    up: set[str] = set()
    down: list[tuple[datetime, datetime]] = []
    since: datetime | None = changes[0].at if changes else None
    for change in changes:
        if change.connected:
            up.add(change.node)
        else:
            up.discard(change.node)
        if up and since is not None:
            if since < change.at:
                down.append((since, change.at))
            since = None
        elif not up and since is None:
            since = change.at
    if since is not None and since < until:
        down.append((since, until))
    return down


def uptime(
    changes: Sequence[_Change], window: Window, interval: Interval, now: datetime
) -> list[Uptime]:
    """:func:`system_uptime` on changes already read (oldest first)."""
    end = min(window.end, now)
    in_service = changes[0].at if changes else end
    down = down_periods(changes, end)
    result = []
    for name, start, stop in interval_bounds(window, interval):
        start, stop = max(start, in_service), min(stop, end)
        service = max(stop - start, timedelta(0))
        outage = sum(
            (max(min(stop, b) - max(start, a), timedelta(0)) for a, b in down), timedelta(0)
        )
        result.append(Uptime(name, service // _MICROSECOND, outage // _MICROSECOND))
    return result
