"""Tasks, attempts, missed calls and rules in PostgreSQL (the dialer's only memory).

Every change of a task is one transaction that also writes its attempt: an
attempt's row exists (``dialing``, with the leg uuid) before the leg is
dialled, and its end and the task's next state are written together. The
task's state moves only through :func:`telephony.outbound.model.next_state`.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.outbound.model import (
    OPEN_STATES,
    AttemptInput,
    Disposition,
    Rules,
    TaskInput,
    TaskState,
    after_attempt,
    attempt_state,
    next_state,
)
from telephony.store.models import (
    Call,
    MissedCall,
    OutboundAttempt,
    OutboundRule,
    OutboundTask,
    SurveyCampaign,
    table_of,
)

TASKS = table_of(OutboundTask)
ATTEMPTS = table_of(OutboundAttempt)
MISSED = table_of(MissedCall)
RULES = table_of(OutboundRule)
CAMPAIGNS = table_of(SurveyCampaign)
CALLS = table_of(Call)

#: The hotline key of the rules every hotline without its own uses.
ANY_HOTLINE = "*"
#: At most this many CDRs are turned into missed calls per scan.
SCAN_BATCH = 500


def utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class RuleBook:
    """Every hotline's rules, read from ``outbound_rules`` (the ``*`` row for the rest)."""

    def __init__(self, rules: dict[str, Rules] | None = None) -> None:
        self.rules = rules or {}

    def of(self, hotline: str) -> Rules:
        return self.rules.get(hotline) or self.rules.get(ANY_HOTLINE) or Rules()

    def outcomes(self) -> set[str]:
        found = {o for r in self.rules.values() for o in r.outcomes}
        return found | set(self.of(ANY_HOTLINE).outcomes)

    def counts(self, hotline: ColumnElement[Any], outcome: ColumnElement[Any]) -> Any:
        """SQL: the CDR's outcome counts as missed under its hotline's rules."""
        own = [h for h in self.rules if h != ANY_HOTLINE]
        cases = [and_(hotline == h, outcome.in_(sorted(self.rules[h].outcomes))) for h in own]
        rest = outcome.in_(sorted(self.of(ANY_HOTLINE).outcomes))
        cases.append(and_(hotline.not_in(own), rest) if own else rest)
        return or_(*cases)

    @classmethod
    async def load(cls, connection: AsyncConnection) -> RuleBook:
        rows = (await connection.execute(select(RULES.c.hotline, RULES.c.rules))).all()
        return cls({r.hotline: Rules.model_validate(r.rules) for r in rows})


async def save_rules(connection: AsyncConnection, hotline: str, rules: Rules) -> None:
    """Store ``hotline``'s rules (``*``: the default)."""
    data = rules.model_dump(mode="json")
    await connection.execute(
        insert(RULES)
        .values(hotline=hotline, rules=data)
        .on_conflict_do_update(
            index_elements=["hotline"], set_={"rules": data, "updated_at": func.now()}
        )
    )


# -- missed calls -> callback tasks --------------------------------------------------------


async def scan_missed(
    connection: AsyncConnection,
    book: RuleBook,
    since: dt.datetime,
    now: dt.datetime,
    blocked: Callable[[str], Awaitable[bool]],
) -> int:
    """Turn ended CDRs since ``since`` that reached no agent into missed calls, each
    joining its citizen's open callback task within the merge window or opening one.
    Idempotent (a CDR is a missed call once); returns how many were added."""
    # Only rows it takes: a row it skipped would come first in every later scan, and a
    # full batch of them (anonymous callers, say) would hide every missed call after it.
    c = CALLS.c
    rows = (
        await connection.execute(
            select(c.uuid, c.hotline, c.caller, c.arrived_at, c.outcome)
            .where(
                c.arrived_at >= since,
                c.ended_at.is_not(None),
                book.counts(c.hotline, c.outcome),
                c.hotline.is_not(None),
                c.hotline != "",
                c.caller != "",
                func.coalesce(c.direction, "inbound") == "inbound",
                ~select(MISSED.c.call_uuid).where(MISSED.c.call_uuid == CALLS.c.uuid).exists(),
            )
            .order_by(CALLS.c.arrived_at)
            .limit(SCAN_BATCH)
        )
    ).all()
    added = 0
    for row in rows:
        rules = book.of(row.hotline)
        task_id = await _task_for(connection, row, rules, now, await blocked(row.caller))
        await connection.execute(
            insert(MISSED)
            .values(
                call_uuid=row.uuid,
                hotline=row.hotline,
                caller=row.caller,
                arrived_at=row.arrived_at,
                outcome=row.outcome,
                task_id=task_id,
            )
            .on_conflict_do_nothing(index_elements=["call_uuid"])
        )
        added += 1
    return added


async def _task_for(
    connection: AsyncConnection, row: Any, rules: Rules, now: dt.datetime, blocked: bool
) -> uuidlib.UUID:
    window = dt.timedelta(seconds=rules.merge_window_seconds)
    open_task = (
        await connection.execute(
            select(TASKS.c.id, TASKS.c.state)
            .where(
                TASKS.c.kind == "callback",
                TASKS.c.hotline == row.hotline,
                TASKS.c.number == row.caller,
                TASKS.c.state.in_(OPEN_STATES),
                TASKS.c.last_missed_at >= row.arrived_at - window,
            )
            .order_by(TASKS.c.created_at.desc())
            .limit(1)
            .with_for_update()
        )
    ).first()
    if open_task is not None:
        state = next_state(open_task.state, TaskInput.MERGE, str(open_task.id))
        await connection.execute(
            update(TASKS)
            .where(TASKS.c.id == open_task.id)
            .values(
                state=state,
                missed_count=TASKS.c.missed_count + 1,
                last_missed_at=func.greatest(TASKS.c.last_missed_at, row.arrived_at),
                updated_at=now,
            )
        )
        return uuidlib.UUID(str(open_task.id))
    task_id = uuidlib.uuid4()
    state = TaskState.PENDING.value
    if blocked:  # 拦截: never called back
        state = next_state(state, TaskInput.NOT_REQUIRED, str(task_id))
    await connection.execute(
        insert(TASKS).values(
            id=task_id,
            kind="callback",
            hotline=row.hotline,
            number=row.caller,
            state=state,
            skill_group=rules.skill_group,
            attempts=0,
            max_attempts=rules.max_attempts,
            next_at=now,
            missed_count=1,
            first_missed_at=row.arrived_at,
            last_missed_at=row.arrived_at,
            disposition="blocked" if blocked else None,
            created_at=now,
            updated_at=now,
        )
    )
    return task_id


# -- claiming and finishing attempts ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A task claimed for one attempt, whose row was written before dialling."""

    task_id: str
    kind: str
    hotline: str
    number: str
    attempt_id: str
    call_uuid: str
    attempts: int  # before this one
    agent_id: str | None
    campaign_id: str | None
    reference: str | None


async def due_tasks(
    connection: AsyncConnection, kind: str, now: dt.datetime, limit: int
) -> list[Any]:
    """Pending tasks of ``kind`` due by ``now``, oldest first, locked (skip locked)."""
    return list(
        (
            await connection.execute(
                select(TASKS)
                .where(TASKS.c.state == "pending", TASKS.c.kind == kind, TASKS.c.next_at <= now)
                .order_by(TASKS.c.next_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )


async def defer(
    connection: AsyncConnection, task: Any, until: dt.datetime, now: dt.datetime
) -> None:
    """Not now (quiet hours): the task stays pending until ``until``."""
    await connection.execute(
        update(TASKS).where(TASKS.c.id == task.id).values(next_at=until, updated_at=now)
    )


async def not_required(connection: AsyncConnection, task: Any, why: str, now: dt.datetime) -> None:
    """Never to be called (blocked number, the citizen got through)."""
    state = next_state(task.state, TaskInput.NOT_REQUIRED, str(task.id))
    await connection.execute(
        update(TASKS)
        .where(TASKS.c.id == task.id)
        .values(state=state, disposition=why, updated_at=now)
    )


async def got_through(connection: AsyncConnection, task: Any) -> bool:
    """Whether the citizen called again and reached an agent after the missed call."""
    found = await connection.scalar(
        select(CALLS.c.uuid)
        .where(
            CALLS.c.caller == task.number,
            CALLS.c.hotline == task.hotline,
            CALLS.c.outcome == "answered",
            func.coalesce(CALLS.c.direction, "inbound") == "inbound",
            CALLS.c.arrived_at > task.last_missed_at,
        )
        .limit(1)
    )
    return found is not None


async def claim(
    connection: AsyncConnection, task: Any, agent_id: str | None, now: dt.datetime
) -> Claimed:
    """The task goes ``dialing`` and its attempt row is written (commit before dialling)."""
    state = next_state(task.state, TaskInput.CLAIM, str(task.id))
    attempt_id, call_uuid = uuidlib.uuid4(), uuidlib.uuid4()
    await connection.execute(
        update(TASKS)
        .where(TASKS.c.id == task.id)
        .values(state=state, agent_id=agent_id, updated_at=now)
    )
    await connection.execute(
        insert(ATTEMPTS).values(
            id=attempt_id,
            task_id=task.id,
            number=task.number,
            caller_id=task.hotline,
            state="dialing",
            call_uuid=call_uuid,
            agent_id=agent_id,
            started_at=now,
        )
    )
    return Claimed(
        task_id=str(task.id),
        kind=task.kind,
        hotline=task.hotline,
        number=task.number,
        attempt_id=str(attempt_id),
        call_uuid=str(call_uuid),
        attempts=task.attempts,
        agent_id=agent_id,
        campaign_id=str(task.campaign_id) if task.campaign_id else None,
        reference=task.reference,
    )


async def release(connection: AsyncConnection, claimed: Claimed, now: dt.datetime) -> None:
    """Nothing was dialled (the engine refused at once): no attempt, the task waits again."""
    await connection.execute(
        ATTEMPTS.delete().where(ATTEMPTS.c.id == uuidlib.UUID(claimed.attempt_id))
    )
    task = (
        await connection.execute(
            select(TASKS).where(TASKS.c.id == uuidlib.UUID(claimed.task_id)).with_for_update()
        )
    ).one()
    state = next_state(task.state, TaskInput.RELEASE, claimed.task_id)
    await connection.execute(
        update(TASKS)
        .where(TASKS.c.id == task.id)
        .values(state=state, agent_id=None, updated_at=now)
    )


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How an attempt ended."""

    disposition: Disposition
    cause: str | None = None
    agent_id: str | None = None
    talk_seconds: float | None = None
    recording_id: str | None = None
    score: int | None = None


async def finish(
    connection: AsyncConnection,
    attempt_id: str,
    result: AttemptResult,
    rules: Rules,
    now: dt.datetime,
    *,
    interrupted: bool = False,
) -> str:
    """Write the attempt's end and the task's next state together; returns that state.

    An attempt already ended (its result written by an earlier try) changes nothing.
    """
    attempt = (
        await connection.execute(
            select(ATTEMPTS).where(ATTEMPTS.c.id == uuidlib.UUID(attempt_id)).with_for_update()
        )
    ).first()
    if attempt is None or attempt.state != "dialing":
        return "gone"
    event = AttemptInput.INTERRUPT if interrupted else AttemptInput.END
    await connection.execute(
        update(ATTEMPTS)
        .where(ATTEMPTS.c.id == attempt.id)
        .values(
            state=attempt_state(attempt.state, event, attempt_id),
            ended_at=now,
            disposition=result.disposition.value,
            hangup_cause=(result.cause or None) and result.cause[:64],
            agent_id=result.agent_id or attempt.agent_id,
            talk_seconds=result.talk_seconds,
            recording_id=uuidlib.UUID(result.recording_id) if result.recording_id else None,
            score=result.score,
        )
    )
    task = (
        await connection.execute(
            select(TASKS).where(TASKS.c.id == attempt.task_id).with_for_update()
        )
    ).one()
    attempts = task.attempts + 1
    event_, delay = after_attempt(
        rules.model_copy(update={"max_attempts": task.max_attempts}), attempts, result.disposition
    )
    values: dict[str, Any] = {
        "state": next_state(task.state, event_, str(task.id)),
        "attempts": attempts,
        "disposition": result.disposition.value,
        "agent_id": None,
        "updated_at": now,
    }
    if event_ is TaskInput.RETRY:
        values["next_at"] = now + dt.timedelta(seconds=delay)
    if event_ is TaskInput.REACHED:
        values["reached_at"] = now
    if result.score is not None:
        values["score"] = result.score
    await connection.execute(update(TASKS).where(TASKS.c.id == task.id).values(**values))
    return str(values["state"])


async def running_attempts(connection: AsyncConnection) -> list[Any]:
    """Attempts left ``dialing`` (a controller stopped during them)."""
    return list(
        (
            await connection.execute(
                select(ATTEMPTS, TASKS.c.hotline, TASKS.c.kind, TASKS.c.campaign_id)
                .join(TASKS, TASKS.c.id == ATTEMPTS.c.task_id)
                .where(ATTEMPTS.c.state == "dialing")
            )
        ).all()
    )


async def connected_in_cdr(connection: AsyncConnection, call_uuid: Any) -> Any:
    """The CDR of an agent-first attempt's call, when its agent talked to the citizen."""
    return (
        await connection.execute(
            select(CALLS.c.agent_id, CALLS.c.talk_seconds).where(
                and_(CALLS.c.uuid == call_uuid, CALLS.c.agent_answered_at.is_not(None))
            )
        )
    ).first()
