"""漏接回拨率 and 回访覆盖率, counted from the outbound rows (:mod:`telephony.outbound`).

* 漏接回拨率 ("对漏接电话一一回拨"): the missed calls (``missed_calls``) whose callback task
  has been dialled at least once, over the missed calls whose task is to be called at
  all (not ``not_required``: a blocked number, or a citizen who got through later).
  A citizen's repeated missed calls share one task, so one callback covers them all.
  Counted in the interval each missed call arrived in.
* 回访覆盖率: the follow-up (``survey``) tasks that are done, reached or given up after
  their maximum attempts, over the follow-up tasks due (not ``not_required``), in the
  interval each task was created in. This is the campaigns' own ``coverage``
  (:class:`telephony.outbound.campaigns.Coverage`).

Both are grouped as a whole (``all``) or per hotline. :class:`OutboundRows` does it in
SQL; :class:`OutboundCounts` is the shape :func:`telephony.reports.kpis.compute` takes.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.outbound.model import TaskState
from telephony.reports.periods import Interval, Window, bucket
from telephony.store.models import MissedCall, OutboundTask, table_of

#: (interval start, group key) -> (numerator, denominator)
Counts = dict[tuple[object, str], tuple[int, int]]

_MISSED = table_of(MissedCall)
_TASKS = table_of(OutboundTask)
_NOT_REQUIRED = TaskState.NOT_REQUIRED.value
_DONE = (TaskState.REACHED.value, TaskState.FAILED.value)


class OutboundCounts(Protocol):
    """Counts of 漏接回拨率 and 回访覆盖率 from the outbound rows."""

    #: Why the KPIs cannot be computed, or None when they can.
    unavailable: str | None

    async def missed_callbacks(
        self, connection: AsyncConnection, window: Window, interval: Interval, scope: str
    ) -> Counts:
        """Missed calls called back / missed calls, per interval start and group key."""
        ...

    async def follow_ups(
        self, connection: AsyncConnection, window: Window, interval: Interval, scope: str
    ) -> Counts:
        """Follow-ups made / follow-ups due, per interval start and group key."""
        ...


class OutboundRows:
    """The two KPIs from ``missed_calls`` and ``outbound_tasks`` (see the module docstring)."""

    unavailable: str | None = None

    async def missed_callbacks(
        self, connection: AsyncConnection, window: Window, interval: Interval, scope: str
    ) -> Counts:
        m, t = _MISSED.c, _TASKS.c
        query = (
            _counted(m.arrived_at, m.hotline, t.attempts > 0, window, interval, scope)
            .select_from(_MISSED.join(_TASKS, t.id == m.task_id))
            .where(t.state != _NOT_REQUIRED)
        )
        return await _counts(connection, query)

    async def follow_ups(
        self, connection: AsyncConnection, window: Window, interval: Interval, scope: str
    ) -> Counts:
        t = _TASKS.c
        query = _counted(
            t.created_at, t.hotline, t.state.in_(_DONE), window, interval, scope
        ).where(t.kind == "survey", t.state != _NOT_REQUIRED)
        return await _counts(connection, query)


def _counted(
    when: ColumnElement[Any],
    hotline: ColumnElement[Any],
    done: ColumnElement[bool],
    window: Window,
    interval: Interval,
    scope: str,
) -> Any:
    start = bucket(when, interval, window.zone).label("interval_start")
    group = (hotline if scope == "hotline" else literal("all")).label("group_key")
    return (
        select(start, group, func.count().filter(done).label("n"), func.count().label("d"))
        .where(and_(when >= window.start, when < window.end))
        .group_by(start, group)
    )


async def _counts(connection: AsyncConnection, query: Any) -> Counts:
    rows = (await connection.execute(query)).all()
    return {(r.interval_start, r.group_key): (int(r.n), int(r.d)) for r in rows}
