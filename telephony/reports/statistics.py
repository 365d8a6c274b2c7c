"""Statistics per agent, per skill group and per hotline, per interval, from the rows only.

* **Agents** (坐席话务统计): calls answered, talk and hold time (``calls``, in the
  interval the agent answered), missed offers (``agent_state_changes`` event
  ``no_answer``), and the time spent in each state (``agent_state_changes``:
  each change lasts until the agent's next one, or until now): busy (置忙),
  idle (置闲, ``available``), wrap-up, signed in (every state but
  ``logged_out``), and occupancy = (ringing + in call + wrap-up) / (that +
  idle), the share of the time the agent was ready to work spent on calls.
* **Skill groups** (技能组话务统计), from ``queue_entries`` (one per call and
  group, in the interval it joined): offered, answered, abandoned (the citizen
  hung up), lost (the system ended it), answered within the group's
  ``service_level_seconds``, average speed of answer (wait of the answered),
  longest wait, and average handle time = talk (hold included) + the agent's
  wrap-up after the call, over the answered.
* **Hotlines**, from ``calls`` (in the interval of arrival): calls by outcome,
  average wait and talk, longest wait.

Several changes of one agent at the same instant (a deferred busy applied as
wrap-up ends) are ordered by their chain: the one whose new state no other
change of that instant leaves is the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    and_,
    bindparam,
    cast,
    column,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.calls.model import Outcome
from telephony.reports.kpis import SYSTEM_LOSSES
from telephony.reports.periods import Interval, Window, bucket, interval_bounds
from telephony.store.models import AgentStateChange, Call, QueueEntry, SkillGroup, table_of

_CALLS = table_of(Call)
_QUEUE = table_of(QueueEntry)
_GROUPS = table_of(SkillGroup)
_CHANGES = table_of(AgentStateChange)
DEFAULT_SERVICE_LEVEL_SECONDS = 30
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class StatRow:
    """One group's statistics in one interval (``interval_start`` None: the whole window)."""

    interval_start: datetime | None
    key: str
    values: dict[str, Any]


def _sorted(rows: list[StatRow]) -> list[StatRow]:
    return sorted(rows, key=lambda r: (r.interval_start or _EPOCH, r.key))


def _rows(result: Sequence[Any], key: str) -> list[StatRow]:
    rows = []
    for row in result:
        values = dict(row._mapping)
        start, name = values.pop("interval_start"), values.pop(key)
        rows.append(StatRow(start, name, values))
    return _sorted(rows)


def _empty_agent() -> dict[str, Any]:
    return {
        "calls": 0,
        "talk_seconds": 0.0,
        "hold_seconds": 0.0,
        "wrap_up_seconds": 0.0,
        "busy_seconds": 0.0,
        "idle_seconds": 0.0,
        "ringing_seconds": 0.0,
        "in_call_seconds": 0.0,
        "signed_in_seconds": 0.0,
        "missed_offers": 0,
    }


# -- agents ----------------------------------------------------------------------------------

_AGENT_TIMES = text(
    """
WITH final AS (
    SELECT DISTINCT ON (x.agent_id, x.at) x.agent_id, x.at, x.to_state
    FROM agent_state_changes x
    WHERE x.at < :end
    ORDER BY x.agent_id, x.at, EXISTS (
        SELECT 1 FROM agent_state_changes y
        WHERE y.agent_id = x.agent_id AND y.at = x.at AND y.id <> x.id
          AND y.from_state = x.to_state AND y.from_state <> y.to_state
    )
), spans AS (
    SELECT agent_id, to_state, at AS s,
           coalesce(lead(at) OVER (PARTITION BY agent_id ORDER BY at), :now) AS e
    FROM final
), buckets AS (
    SELECT * FROM unnest(:names, :froms, :tos) AS b(name, b_from, b_to)
)
SELECT b.name AS interval_start, s.agent_id, s.to_state,
       sum(extract(epoch FROM least(s.e, b.b_to) - greatest(s.s, b.b_from)))::float AS seconds
FROM spans s JOIN buckets b ON s.s < b.b_to AND s.e > b.b_from
WHERE s.agent_id = ANY(:agents) OR :all_agents
GROUP BY b.name, s.agent_id, s.to_state
"""
).bindparams(
    bindparam("names", type_=ARRAY(TIMESTAMP(timezone=True))),
    bindparam("froms", type_=ARRAY(TIMESTAMP(timezone=True))),
    bindparam("tos", type_=ARRAY(TIMESTAMP(timezone=True))),
    bindparam("agents", type_=ARRAY(String())),
)

_STATE_FIELDS = {
    "available": "idle_seconds",
    "busy": "busy_seconds",
    "ringing": "ringing_seconds",
    "in_call": "in_call_seconds",
    "wrap_up": "wrap_up_seconds",
}


async def agent_statistics(
    connection: AsyncConnection,
    window: Window,
    interval: Interval,
    *,
    now: datetime,
    agents: Sequence[str] | None = None,
) -> list[StatRow]:
    """Per agent and interval; ``agents`` None: every agent."""
    bounds = interval_bounds(window, interval)
    end = min(window.end, now)
    by_key: dict[tuple[datetime | None, str], dict[str, Any]] = {}

    def entry(start: datetime | None, agent: str) -> dict[str, Any]:
        return by_key.setdefault((start, agent), _empty_agent())

    times = await connection.execute(
        _AGENT_TIMES,
        {
            "end": end,
            "now": end,
            "names": [b[0] for b in bounds],
            "froms": [b[1] for b in bounds],
            "tos": [min(b[2], end) for b in bounds],
            "agents": list(agents or ()),
            "all_agents": agents is None,
        },
    )
    for row in times.all():
        values = entry(row.interval_start, row.agent_id)
        values["signed_in_seconds"] += row.seconds if row.to_state != "logged_out" else 0.0
        field = _STATE_FIELDS.get(row.to_state)
        if field is not None:
            values[field] += row.seconds
    start_col = bucket(_CALLS.c.agent_answered_at, interval, window.zone).label("interval_start")
    calls = select(
        start_col,
        _CALLS.c.agent_id,
        func.count().label("calls"),
        func.coalesce(func.sum(_CALLS.c.talk_seconds), 0.0).label("talk_seconds"),
        func.coalesce(func.sum(_CALLS.c.hold_seconds), 0.0).label("hold_seconds"),
    ).where(
        _CALLS.c.agent_answered_at >= window.start,
        _CALLS.c.agent_answered_at < window.end,
        _CALLS.c.agent_id.is_not(None),
    )
    if agents is not None:
        calls = calls.where(_CALLS.c.agent_id.in_(list(agents)))
    for row in (await connection.execute(calls.group_by(start_col, _CALLS.c.agent_id))).all():
        values = entry(row.interval_start, row.agent_id)
        values.update(calls=row.calls, talk_seconds=row.talk_seconds, hold_seconds=row.hold_seconds)
    changes = _CHANGES
    missed_start = bucket(changes.c.at, interval, window.zone).label("interval_start")
    missed = (
        select(missed_start, changes.c.agent_id, func.count().label("missed"))
        .where(
            changes.c.event == "no_answer", changes.c.at >= window.start, changes.c.at < window.end
        )
        .group_by(missed_start, changes.c.agent_id)
    )
    if agents is not None:
        missed = missed.where(changes.c.agent_id.in_(list(agents)))
    for row in (await connection.execute(missed)).all():
        entry(row.interval_start, row.agent_id)["missed_offers"] = row.missed
    rows = []
    for (start, agent), values in by_key.items():
        working = values["ringing_seconds"] + values["in_call_seconds"] + values["wrap_up_seconds"]
        ready = working + values["idle_seconds"]
        values["occupancy"] = working / ready if ready else None
        rows.append(StatRow(start, agent, values))
    return _sorted(rows)


# -- skill groups ----------------------------------------------------------------------------

_WRAP_UP_AFTER_CALL = text(
    """
SELECT coalesce(extract(epoch FROM coalesce(
           (SELECT min(n.at) FROM agent_state_changes n
            WHERE n.agent_id = w.agent_id AND n.at > w.at),
           :now) - w.at), 0)::float
FROM agent_state_changes w
WHERE w.agent_id = calls.agent_id AND w.to_state = 'wrap_up' AND w.from_state = 'in_call'
  AND w.at >= calls.agent_answered_at
  AND w.at <= calls.agent_answered_at
              + (coalesce(calls.talk_seconds, 0) + :slack) * interval '1 second'
ORDER BY w.at LIMIT 1
"""
)
#: How long after the end of its talk an agent's wrap-up may start and still be that call's.
WRAP_UP_SLACK_SECONDS = 5.0


async def skill_group_statistics(
    connection: AsyncConnection,
    window: Window,
    interval: Interval,
    *,
    now: datetime,
    conditions: Sequence[ColumnElement[bool]] = (),
) -> list[StatRow]:
    """Per skill group and interval; ``conditions`` on ``skill_groups`` narrow the groups."""
    q, calls, groups = _QUEUE.c, _CALLS.c, _GROUPS.c
    wait = cast(func.extract("epoch", func.coalesce(q.left_at, now) - q.entered_at), Float)
    level = func.coalesce(groups.service_level_seconds, DEFAULT_SERVICE_LEVEL_SECONDS)
    answered = q.result == "answered"
    abandoned = and_(q.result == "abandoned", calls.hung_up_by == "caller")
    lost = and_(q.result == "abandoned", calls.outcome.in_(SYSTEM_LOSSES))
    wrap = (
        _WRAP_UP_AFTER_CALL.bindparams(now=now, slack=WRAP_UP_SLACK_SECONDS)
        .columns(column("seconds", Float()))
        .scalar_subquery()
    )
    handle = func.coalesce(calls.talk_seconds, 0.0) + func.coalesce(wrap, 0.0)
    start = bucket(q.entered_at, interval, window.zone).label("interval_start")
    query = (
        select(
            start,
            q.skill_group_id,
            func.count().label("offered"),
            func.count().filter(answered).label("answered"),
            func.count().filter(abandoned).label("abandoned"),
            func.count().filter(lost).label("lost"),
            func.count()
            .filter(and_(answered, wait <= level))
            .label("answered_within_service_level"),
            func.max(level).label("service_level_seconds"),
            func.avg(wait).filter(answered).label("average_speed_of_answer"),
            func.avg(handle).filter(answered).label("average_handle_time"),
            func.max(wait).label("longest_wait"),
        )
        .select_from(
            _QUEUE.join(_CALLS, calls.uuid == q.call_uuid).outerjoin(
                _GROUPS, groups.id == q.skill_group_id
            )
        )
        .where(q.entered_at >= window.start, q.entered_at < window.end, *conditions)
        .group_by(start, q.skill_group_id)
    )
    return _rows((await connection.execute(query)).all(), "skill_group_id")


# -- hotlines --------------------------------------------------------------------------------


async def hotline_statistics(
    connection: AsyncConnection,
    window: Window,
    interval: Interval,
    *,
    conditions: Sequence[ColumnElement[bool]] = (),
) -> list[StatRow]:
    """Per hotline and interval, citizens' calls by outcome; ``conditions`` on ``calls``."""
    calls = _CALLS.c
    start = bucket(calls.arrived_at, interval, window.zone).label("interval_start")
    by_outcome = [
        func.count().filter(calls.outcome == outcome.value).label(outcome.value)
        for outcome in Outcome
    ]
    answered = calls.agent_answered_at.is_not(None)
    query = (
        select(
            start,
            calls.hotline,
            func.count().label("calls"),
            *by_outcome,
            func.count().filter(calls.queued_at.is_not(None)).label("queued"),
            func.avg(calls.wait_seconds).filter(answered).label("average_speed_of_answer"),
            func.avg(calls.talk_seconds).filter(answered).label("average_talk_seconds"),
            func.max(calls.wait_seconds).label("longest_wait"),
        )
        .where(
            calls.arrived_at >= window.start,
            calls.arrived_at < window.end,
            func.coalesce(calls.direction, "inbound") == "inbound",
            *conditions,
        )
        .group_by(start, calls.hotline)
    )
    return _rows((await connection.execute(query)).all(), "hotline")
