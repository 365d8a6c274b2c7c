"""The dialer: works through due callback and follow-up tasks, one attempt per call.

Pacing. At most ``channels`` attempts run at once (the trunk channels reserved
for outbound out of the hotline's lines). A callback also needs a free agent
of its skill group and starts only while no inbound call waits in that group:
inbound calls always come first. An agent taken for a callback is rung first;
the citizen is called from the hotline's number only once the agent answered
(the engine's agent outbound call, :mod:`telephony.calls.dial`). A follow-up
needs no agent: the citizen's leg plays the campaign flow's survey.

Every attempt's row is committed (``dialing``, with the leg's uuid) before
anything is dialled, and its end is written with the task's next state in one
transaction. If the database cannot be reached, nothing new is claimed (the
dialer is *paused*, and says why); running attempts keep their result in
memory and write it once the database answers. At start, attempts left
``dialing`` by a controller that stopped during them are closed once, as
``interrupted`` (or ``answered`` when the CDR shows the agent talked to the
citizen), their legs hung up, and their tasks go on by the usual rules.

Missed calls are collected from the CDRs on every tick
(:func:`telephony.outbound.store.scan_missed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telephony.calls.outbound_port import CallOutcome, Unavailable
from telephony.outbound import store
from telephony.outbound.model import Disposition, Rules, disposition_of
from telephony.outbound.ports import OutboundLegs, SurveyFlows
from telephony.outbound.store import CAMPAIGNS, AttemptResult, Claimed, RuleBook

log = logging.getLogger(__name__)

#: What a database outage raises through SQLAlchemy and asyncpg.
DATABASE_ERRORS = (SQLAlchemyError, OSError, asyncio.TimeoutError)
#: Due tasks looked at per claim (the first whose agent group is free is taken).
CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class DialerSettings:
    """How the dialer paces itself."""

    #: Outbound trunk channels (attempts running at once).
    channels: int = 8
    #: How often due tasks and new missed calls are looked for.
    tick_s: float = 1.0
    #: Missed calls are looked for among CDRs that arrived this recently.
    scan_window_s: float = 6 * 3600.0
    #: How often they are looked for: the scan reads the window's unmatched CDRs (at
    #: 125 calls/s six hours are 2.7 million rows), a cost for PostgreSQL, not a tick's.
    scan_every_s: float = 10.0
    #: The longest wait between two tries to write an attempt's result.
    write_retry_max_s: float = 5.0


class Busy(Exception):
    """The callback cannot be taken now (the message says why)."""


class Dialer:
    """The dialer as a component of ``telephony serve``; see the module docstring."""

    def __init__(
        self,
        database: AsyncEngine,
        legs: OutboundLegs,
        *,
        surveys: SurveyFlows | None = None,
        blocked: Callable[[str], Awaitable[bool]] | None = None,
        settings: DialerSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database = database
        self.legs = legs
        self.surveys = surveys
        self.blocked = blocked or _never_blocked
        self.settings = settings or DialerSettings()
        self.clock = clock
        #: attempt id -> its task, while it runs
        self.active: dict[str, asyncio.Task[None]] = {}
        #: agents claimed for a callback whose Dial has not reached the engine yet
        self.reserved: set[str] = set()
        #: Why no new attempt starts (a database outage), or None.
        self.paused: str | None = None
        self._scanned_at: dt.datetime | None = None
        self.recovered = asyncio.Event()
        #: The most attempts seen running at once, and that of callbacks (tests, metrics).
        self.peak = 0
        self.book = RuleBook()
        self._loop: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- lifetime --------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="outbound dialer")

    async def stop(self) -> None:
        """Stop claiming; running attempts are cancelled (the next start recovers them)."""
        tasks = [t for t in (self._loop, *self.active.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.active.clear()

    def wake(self) -> None:
        """Look for work now (a campaign was posted)."""
        self._wake.set()

    async def _run(self) -> None:
        await self._recover()
        while True:
            try:
                await self.tick()
                self.paused = None
            except DATABASE_ERRORS as exc:
                self._pause(exc)
            except Exception:
                log.exception("dialer tick failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.tick_s)

    def _pause(self, exc: BaseException) -> None:
        if self.paused is None:
            log.warning("database unreachable: dialing paused", extra={"error": str(exc)})
        self.paused = f"database unreachable: {type(exc).__name__}"

    def _now(self) -> dt.datetime:
        return store.utc(self.clock())

    # -- one tick --------------------------------------------------------------------------

    async def tick(self) -> None:
        """Collect new missed calls, then start what the channels and agents allow."""
        now = self._now()
        if self._scanned_at is None or (now - self._scanned_at).total_seconds() >= (
            self.settings.scan_every_s
        ):
            since = now - dt.timedelta(seconds=self.settings.scan_window_s)
            async with self.database.begin() as connection:
                self.book = await RuleBook.load(connection)
                found = await store.scan_missed(connection, self.book, since, now, self.blocked)
            # a full batch: more are waiting, look again at the next tick
            self._scanned_at = None if found >= store.SCAN_BATCH else now
        if not self.legs.connected:
            return
        while self._slots() and await self._claim_callback():
            pass
        while self._slots() and await self._claim_survey():
            pass

    def _slots(self) -> int:
        return max(0, self.settings.channels - len(self.active))

    async def _claim_callback(self) -> bool:
        now = self._now()
        async with self.database.begin() as connection:
            for task in await store.due_tasks(connection, "callback", now, CANDIDATES):
                rules = self.book.of(task.hotline)
                if not await self._callable(connection, task, rules, now):
                    continue
                group = task.skill_group or rules.skill_group
                if self.legs.inbound_waiting(group):
                    continue  # inbound first
                agent = self.legs.free_agent(group, frozenset(self.reserved))
                if agent is None:
                    continue
                claimed = await store.claim(connection, task, agent, now)
                break
            else:
                return False
        self._launch(claimed, rules)
        return True

    async def _claim_survey(self) -> bool:
        now = self._now()
        async with self.database.begin() as connection:
            for task in await store.due_tasks(connection, "survey", now, CANDIDATES):
                rules = await self._survey_rules(connection, task)
                if rules is None or not await self._callable(connection, task, rules, now):
                    continue
                claimed = await store.claim(connection, task, None, now)
                break
            else:
                return False
        self._launch(claimed, rules)
        return True

    async def _callable(
        self, connection: AsyncConnection, task: Any, rules: Rules, now: dt.datetime
    ) -> bool:
        """Whether the task may be dialled now; otherwise it is deferred or closed."""
        if await self.blocked(task.number):
            await store.not_required(connection, task, "blocked", now)
            return False
        if task.kind == "callback" and await store.got_through(connection, task):
            await store.not_required(connection, task, "got_through", now)
            return False
        until = rules.quiet_until(now)
        if until is not None:
            await store.defer(connection, task, until, now)
            return False
        return True

    async def _survey_rules(self, connection: AsyncConnection, task: Any) -> Rules | None:
        campaign = (
            await connection.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == task.campaign_id))
        ).first()
        if campaign is None:
            return None
        return survey_rules(self.book.of(task.hotline), campaign.retry_seconds)

    # -- the agent's own callback (POST /v1/missed-calls/{id}/callback) --------------------

    async def take(self, task_id: Any, agent_id: str) -> Claimed:
        """Start the task's next attempt now with ``agent_id``; raises :class:`Busy`."""
        if self.paused:
            raise Busy(self.paused)
        if not self._slots():
            raise Busy("every outbound channel is in use")
        if not self.legs.connected:
            raise Busy("no FreeSWITCH node is connected")
        if agent_id in self.reserved or not self.legs.agent_free(agent_id):
            raise Busy(f"agent {agent_id!r} is not available")
        now = self._now()
        async with self.database.begin() as connection:
            task = (
                await connection.execute(
                    select(store.TASKS).where(store.TASKS.c.id == task_id).with_for_update()
                )
            ).first()
            if task is None or task.kind != "callback":
                raise Busy("no such callback")
            if task.state != "pending":
                raise Busy(f"the callback is {task.state}")
            if await self.blocked(task.number):
                raise Busy("the number is blocked")
            claimed = await store.claim(connection, task, agent_id, now)
        self._launch(claimed, self.book.of(claimed.hotline))
        return claimed

    # -- attempts --------------------------------------------------------------------------

    def _launch(self, claimed: Claimed, rules: Rules) -> None:
        if claimed.agent_id:
            self.reserved.add(claimed.agent_id)
        task = asyncio.create_task(
            self._attempt(claimed, rules), name=f"outbound attempt {claimed.attempt_id}"
        )
        self.active[claimed.attempt_id] = task
        self.peak = max(self.peak, len(self.active))
        task.add_done_callback(lambda _t: self._done(claimed))

    def _done(self, claimed: Claimed) -> None:
        self.active.pop(claimed.attempt_id, None)
        if claimed.agent_id:
            self.reserved.discard(claimed.agent_id)
        self._wake.set()  # a channel (and maybe an agent) is free

    async def _attempt(self, claimed: Claimed, rules: Rules) -> None:
        log.info(
            "outbound attempt",
            extra={"task": claimed.task_id, "attempt": claimed.attempt_id, "kind": claimed.kind},
        )
        try:
            if claimed.kind == "callback":
                result = await self._callback(claimed)
            else:
                result = await self._survey(claimed)
        except Unavailable as exc:
            log.info("callback not dialled", extra={"task": claimed.task_id, "why": str(exc)})
            await self._write(lambda c: store.release(c, claimed, self._now()))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("outbound attempt failed", extra={"attempt": claimed.attempt_id})
            result = AttemptResult(Disposition.ERROR, cause=type(exc).__name__)
        state = await self._write(
            lambda c: store.finish(c, claimed.attempt_id, result, rules, self._now())
        )
        log.info(
            "outbound attempt ended",
            extra={
                "task": claimed.task_id,
                "attempt": claimed.attempt_id,
                "disposition": result.disposition.value,
                "task_state": state,
            },
        )

    async def _callback(self, claimed: Claimed) -> AttemptResult:
        assert claimed.agent_id is not None
        try:
            outcome = await self.legs.call_with_agent(
                claimed.agent_id,
                claimed.number,
                caller_id=claimed.hotline,
                call_uuid=claimed.call_uuid,
            )
        finally:
            self.reserved.discard(claimed.agent_id)
        return callback_result(outcome)

    async def _survey(self, claimed: Claimed) -> AttemptResult:
        leg = claimed.call_uuid
        async with self.database.connect() as connection:
            flow = await connection.scalar(
                select(CAMPAIGNS.c.flow).where(CAMPAIGNS.c.id == claimed.campaign_id)
            )
        try:
            reply, port = await self.legs.call_alone(
                claimed.number,
                caller_id=claimed.hotline,
                leg=leg,
                variables={"tel_outbound": claimed.attempt_id},
            )
            if not reply.startswith("+OK"):
                return AttemptResult(
                    disposition_of(reply), cause=reply.removeprefix("-ERR").strip()
                )
            answered = self.clock()
            score = None
            if self.surveys is not None and flow:
                reference = claimed.reference or ""
                score = await self.surveys.outbound_survey(
                    flow,
                    port,
                    leg,
                    caller=claimed.number,
                    hotline=claimed.hotline,
                    variables={"ticket": reference, "reference": reference},
                )
            return AttemptResult(
                Disposition.ANSWERED,
                talk_seconds=round(self.clock() - answered, 3),
                score=score,
            )
        finally:
            await self.legs.hang_up(leg)  # its purpose ended: never left parked

    async def _write(self, work: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        """Run ``work`` in a transaction, again and again while the database is down."""
        delay = 0.1
        while True:
            try:
                async with self.database.begin() as connection:
                    return await work(connection)
            except DATABASE_ERRORS as exc:
                self._pause(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.write_retry_max_s)

    # -- after a restart -------------------------------------------------------------------

    async def _recover(self) -> None:
        """Close, once, the attempts a stopped controller left ``dialing``."""
        while True:
            try:
                async with self.database.connect() as connection:
                    self.book = await RuleBook.load(connection)
                    stale = await store.running_attempts(connection)
                break
            except DATABASE_ERRORS as exc:
                self._pause(exc)
                await asyncio.sleep(self.settings.tick_s)
        for attempt in stale:
            result = AttemptResult(Disposition.INTERRUPTED, cause="controller restarted")
            if attempt.kind == "callback":
                async with self.database.connect() as connection:
                    cdr = await store.connected_in_cdr(connection, attempt.call_uuid)
                if cdr is not None:
                    result = AttemptResult(
                        Disposition.ANSWERED, agent_id=cdr.agent_id, talk_seconds=cdr.talk_seconds
                    )
            if self.legs.connected:
                await self.legs.hang_up(str(attempt.call_uuid))
            rules = self.book.of(attempt.hotline)
            if attempt.kind == "survey":
                async with self.database.connect() as connection:
                    retry = await connection.scalar(
                        select(CAMPAIGNS.c.retry_seconds).where(
                            CAMPAIGNS.c.id == attempt.campaign_id
                        )
                    )
                rules = survey_rules(rules, float(retry or 60.0))
            await self._write(
                functools.partial(
                    _finish_interrupted,
                    attempt_id=str(attempt.id),
                    result=result,
                    rules=rules,
                    now=self._now(),
                )
            )
            log.warning(
                "attempt interrupted by a restart recorded",
                extra={"attempt": str(attempt.id), "disposition": result.disposition.value},
            )
        self.recovered.set()


def callback_result(outcome: CallOutcome) -> AttemptResult:
    """An agent-first call's end as an attempt's result."""
    if outcome.connected:
        disposition = Disposition.ANSWERED
    elif not outcome.agent_answered:
        disposition = Disposition.AGENT_MISSED
    else:
        disposition = disposition_of(outcome.cause)
    return AttemptResult(
        disposition,
        cause=outcome.cause,
        agent_id=outcome.agent_id,
        talk_seconds=None if outcome.talk_seconds is None else round(outcome.talk_seconds, 3),
        recording_id=outcome.recording_id,
    )


def survey_rules(base: Rules, retry_seconds: float) -> Rules:
    """A campaign's retries: the same delay after every disposition (quiet hours kept)."""
    names = [d.value for d in Disposition]
    return base.model_copy(update={"retry_seconds": {n: (retry_seconds,) for n in names}})


async def _finish_interrupted(
    connection: AsyncConnection,
    *,
    attempt_id: str,
    result: AttemptResult,
    rules: Rules,
    now: dt.datetime,
) -> str:
    return await store.finish(connection, attempt_id, result, rules, now, interrupted=True)


async def _never_blocked(number: str) -> bool:
    return False
