"""The live feed: what the engine writes and what agents do, as live events.

Theory of operation
-------------------
Every change the engine makes to a call is written through the write buffer
(``telephony.calls.records``), and every agent state change through the roster
(``agent_state_changes``, also through the buffer). :meth:`LiveFeed.observe` is
the buffer's observer: it is called with each :class:`~telephony.store.buffer.Write`
as it is put, on the engine's loop, and does only dictionary work there:

* ``agent_state_changes`` -> an ``agent`` event at once (the agent as
  ``GET /v1/agents/{id}`` shows it, and the change);
* a new ``call_legs`` row of role ``agent`` (the agent's phone starts ringing)
  -> a ``screen_pop`` for that agent: the citizen's number, the hotline, the IVR
  keys, and the citizen's history, read by one query (:func:`history_query`) in a
  task of its own, bounded in number (``max_lookups``) and time (``lookup_timeout``);
  past either the pop goes out without history, saying why;
* ``calls``, ``call_legs``, ``call_events`` -> the call is marked changed;
  ``queue_entries`` -> its skill group is. Once the engine's current step is over
  (``loop.call_soon``) each marked call is published once as a ``call`` event (its
  live view from the :class:`~telephony.api.ports.CallDirectory`, the timeline
  steps since the last one, or ``ended`` with its outcome), and each marked
  group as a ``queue`` event (calls waiting, oldest wait).

Audiences: a call belongs to its agent (answering or offered) and to the areas
of its hotline and its agent; an agent to itself and its area; a queue to its
skill group's area and those of the calls waiting in it; a screen pop to the
ringing agent alone.

What it keeps (all bounded): the last view of each live call, the agent each
call was offered to, the calls waiting per group, the current screen pop per
ringing agent; a call's entries go when its CDR says it ended, and each map is
capped at ``max_calls`` entries (oldest out) against a call whose end is never
written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid as uuidlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, bindparam, exists, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.acd.agent_state import Agent, AgentState
from telephony.acd.roster import Roster
from telephony.api.ports import CallDirectory, LiveCall
from telephony.api.schemas import AgentView
from telephony.calls.model import Call
from telephony.live.hub import Audience, EventHub, EventKind, LiveEvent, Scope
from telephony.store.buffer import Write
from telephony.store.models import BlockedNumber, SkillGroup, table_of
from telephony.store.models import Call as CallRow

log = logging.getLogger(__name__)
_CALLS = table_of(CallRow)
_BLOCKED = table_of(BlockedNumber)
_GROUPS = table_of(SkillGroup)

HISTORY_DAYS = 30
HISTORY_LIMIT = 20
DEFAULT_MAX_LOOKUPS = 32
DEFAULT_LOOKUP_TIMEOUT = 2.0
DEFAULT_MAX_CALLS = 50_000

_K = TypeVar("_K")
_V = TypeVar("_V")


class CallSource(Protocol):
    """An engine's live calls (``CallEngine.calls``), read for the IVR keys and the offer."""

    @property
    def calls(self) -> Mapping[str, Call]: ...


def call_finder(engines: Iterable[CallSource]) -> Callable[[str], Call | None]:
    """Finds a live call by uuid in any of ``engines`` (read-only)."""
    engine_list = engines

    def find(call_uuid: str) -> Call | None:
        for engine in engine_list:
            call = engine.calls.get(call_uuid)
            if call is not None:
                return call
        return None

    return find


def history_query() -> Select[Any]:
    """One statement: whether ``:caller`` is blocked, and its calls since ``:since`` other
    than ``:current``, newest first (at most ``HISTORY_LIMIT``).

    One row per previous call, each with ``blocked``; one row with no call when
    there is none (a lateral-free left join of the blocked flag to the calls).
    Built once (:data:`_HISTORY`): every ring runs it, and building a statement and its
    cache key cost more than running it.
    """
    caller = bindparam("caller", type_=_CALLS.c.caller.type)
    blocked = select(exists().where(_BLOCKED.c.number == caller).label("blocked")).subquery("b")
    calls = (
        select(_CALLS.c.uuid, _CALLS.c.arrived_at, _CALLS.c.outcome, _CALLS.c.agent_id)
        .where(
            _CALLS.c.caller == caller,
            _CALLS.c.arrived_at >= bindparam("since", type_=_CALLS.c.arrived_at.type),
            _CALLS.c.uuid != bindparam("current", type_=_CALLS.c.uuid.type),
        )
        .order_by(_CALLS.c.arrived_at.desc())
        .limit(HISTORY_LIMIT)
        .subquery("h")
    )
    return (
        select(
            blocked.c.blocked, calls.c.uuid, calls.c.arrived_at, calls.c.outcome, calls.c.agent_id
        )
        .select_from(blocked.outerjoin(calls, true()))
        .order_by(calls.c.arrived_at.desc())
    )


_HISTORY = history_query()


def _put_bounded(mapping: dict[_K, _V], key: _K, value: _V, cap: int) -> None:
    """``mapping[key] = value``, the oldest entries dropped past ``cap``."""
    mapping.pop(key, None)
    mapping[key] = value
    while len(mapping) > cap:
        del mapping[next(iter(mapping))]


def _areas(*areas: str | None) -> frozenset[str]:
    return frozenset(a for a in areas if a)


class LiveFeed:
    """The write buffer's observer that publishes live events; see the module docstring.

    Also a :class:`~telephony.services.Component`: ``start`` reads the skill
    groups' areas, ``stop`` cancels the history look-ups and ends every subscription.
    """

    def __init__(
        self,
        hub: EventHub,
        roster: Roster,
        database: AsyncEngine,
        *,
        calls: Callable[[], CallDirectory],
        find_call: Callable[[str], Call | None] = lambda call_uuid: None,
        max_lookups: int = DEFAULT_MAX_LOOKUPS,
        lookup_timeout: float = DEFAULT_LOOKUP_TIMEOUT,
        max_calls: int = DEFAULT_MAX_CALLS,
    ) -> None:
        self.hub = hub
        self.roster = roster
        self.database = database
        self.calls = calls
        self.find_call = find_call
        self.max_lookups = max_lookups
        self.lookup_timeout = lookup_timeout
        self.max_calls = max_calls
        self.group_areas: dict[str, str | None] = {}
        self._last: dict[str, LiveCall] = {}  # call uuid -> its last published view
        self._offered: dict[str, str] = {}  # call uuid -> the agent its phone rang for
        self._waiting: dict[str, dict[str, datetime | None]] = {}  # group -> call -> entered
        self._pops: dict[str, dict[str, Any]] = {}  # agent -> its ringing call's screen pop
        self._dirty_calls: dict[str, list[str]] = {}  # call uuid -> timeline steps since
        self._ended: dict[str, Mapping[str, Any]] = {}  # call uuid -> its final CDR row
        self._dirty_groups: set[str] = set()
        self._flush_scheduled = False
        self._lookups: set[asyncio.Task[None]] = set()
        self._observers: dict[str, Callable[[Mapping[str, Any]], None]] = {
            "agent_state_changes": self._agent_changed,
            "calls": self._cdr,
            "call_legs": self._leg,
            "call_events": self._step,
            "queue_entries": self._queue_entry,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Read each skill group's area (a queue's audience)."""
        try:
            async with self.database.connect() as connection:
                rows = (await connection.execute(select(_GROUPS.c.id, _GROUPS.c.area))).all()
        except Exception as exc:  # live events go on without queue areas until the next read
            log.warning("live events: skill groups not read", extra={"error": str(exc)})
            return
        self.group_areas = {row.id: row.area for row in rows}

    async def stop(self) -> None:
        """Cancel the history look-ups and end every subscription."""
        for task in list(self._lookups):
            task.cancel()
        await asyncio.gather(*self._lookups, return_exceptions=True)
        self.hub.close()

    # -- the observer ------------------------------------------------------------------------

    def observe(self, write: Write) -> None:
        """The write buffer's observer: called with every write as it is put. Never raises."""
        handler = self._observers.get(write.table.name)
        if handler is None:
            return
        try:
            handler(write.row)
        except Exception:  # a bug here must never reach the engine's write
            log.exception(
                "live events: a write could not be translated", extra={"table": write.table.name}
            )

    def _agent_changed(self, row: Mapping[str, Any]) -> None:
        agent = self.roster.agents.get(row["agent_id"])
        if agent is None:
            return
        change = {
            "from": row["from_state"],
            "event": row["event"],
            "to": row["to_state"],
            "reason": row["reason"],
        }
        body = {"agent": AgentView.of(agent).model_dump(mode="json"), "change": change}
        self.hub.publish(LiveEvent(EventKind.AGENT, self._agent_audience(agent), body))
        if row["to_state"] != AgentState.RINGING.value:
            self._pops.pop(agent.id, None)

    @staticmethod
    def _agent_audience(agent: Agent) -> Audience:
        return Audience(frozenset({agent.id}), _areas(agent.area))

    def _cdr(self, row: Mapping[str, Any]) -> None:
        call_uuid = str(row["uuid"])
        if row.get("ended_at") is not None:
            _put_bounded(self._ended, call_uuid, row, self.max_calls)
        self._mark(call_uuid)

    def _leg(self, row: Mapping[str, Any]) -> None:
        call_uuid = str(row["call_uuid"])
        ringing = row["answered_at"] is None and row["ended_at"] is None
        if row["role"] == "agent" and ringing:
            self._ring(call_uuid, str(row["uuid"]), row["destination"])
        self._mark(call_uuid)

    def _step(self, row: Mapping[str, Any]) -> None:
        self._mark(str(row["call_uuid"]), row["kind"])

    def _queue_entry(self, row: Mapping[str, Any]) -> None:
        group = row["skill_group_id"]
        call_uuid = str(row["call_uuid"])
        waiting = self._waiting.setdefault(group, {})
        if row.get("result") is None:
            _put_bounded(waiting, call_uuid, row.get("entered_at"), self.max_calls)
        else:
            waiting.pop(call_uuid, None)
        self._dirty_groups.add(group)
        self._schedule()

    def _mark(self, call_uuid: str, step: str | None = None) -> None:
        steps = self._dirty_calls.setdefault(call_uuid, [])
        if step is not None:
            steps.append(step)
        self._schedule()

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    # -- publishing what changed -------------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty_calls = self._dirty_calls, {}
        groups, self._dirty_groups = self._dirty_groups, set()
        try:
            for call_uuid, steps in dirty.items():
                self._publish_call(call_uuid, steps)
            for group in groups:
                self._publish_queue(group)
        except Exception:
            log.exception("live events: changes could not be published")

    def _publish_call(self, call_uuid: str, steps: list[str]) -> None:
        ended = self._ended.pop(call_uuid, None)
        view = self.calls().live_call(call_uuid)
        if ended is None and view is None:
            return  # not live (yet, or any more) and not just ended: nothing to say
        body: dict[str, Any] = {"steps": steps}
        if ended is not None:
            last = self._last.pop(call_uuid, None) or view
            view = _ended_view(ended, last)
            body.update(outcome=ended.get("outcome"), hung_up_by=ended.get("hung_up_by"))
            agent_id = self._offered.pop(call_uuid, None)
            for waiting in self._waiting.values():
                waiting.pop(call_uuid, None)
            self._pops = {a: p for a, p in self._pops.items() if p["call_uuid"] != call_uuid}
        else:
            assert view is not None
            _put_bounded(self._last, call_uuid, view, self.max_calls)
            agent_id = self._offered.get(call_uuid)
        body["call"] = view
        self.hub.publish(LiveEvent(EventKind.CALL, self._call_audience(view, agent_id), body))

    def _call_audience(self, view: LiveCall, offered: str | None = None) -> Audience:
        agents = {a for a in (view.agent_id, offered) if a}
        agent_areas = (self.roster.agents[a].area for a in agents if a in self.roster.agents)
        return Audience(frozenset(agents), _areas(view.area, *agent_areas))

    def _publish_queue(self, group: str) -> None:
        waiting = self._waiting.get(group, {})
        if not waiting:
            self._waiting.pop(group, None)
        body = {"queue": self._queue_view(group, waiting)}
        self.hub.publish(LiveEvent(EventKind.QUEUE, self._queue_audience(group, waiting), body))

    @staticmethod
    def _queue_view(group: str, waiting: Mapping[str, datetime | None]) -> dict[str, Any]:
        entered = [t for t in waiting.values() if t is not None]
        return {
            "skill_group_id": group,
            "waiting": len(waiting),
            "oldest_entered_at": min(entered) if entered else None,
        }

    def _queue_audience(self, group: str, waiting: Mapping[str, Any]) -> Audience:
        call_areas = (self._last[c].area for c in waiting if c in self._last)
        return Audience(areas=_areas(self.group_areas.get(group), *call_areas))

    # -- screen pop --------------------------------------------------------------------------

    def _ring(self, call_uuid: str, leg_uuid: str, extension: str | None) -> None:
        call = self.find_call(call_uuid)
        agent_id = call.offered_agent if call is not None else None
        agent = self.roster.agents.get(agent_id) if agent_id else None
        if agent is None and extension:
            agent = self.roster.by_extension(extension)
        if agent is None:
            return
        _put_bounded(self._offered, call_uuid, agent.id, self.max_calls)
        view = self._last.get(call_uuid)
        pop: dict[str, Any] = {
            "call_uuid": call_uuid,
            "leg_uuid": leg_uuid,
            "agent_id": agent.id,
            "caller": call.caller if call else (view.caller if view else None),
            "hotline": call.hotline if call else (view.hotline if view else None),
            "ivr_path": (call.ivr_keys or None) if call else None,
            "skill_group_id": call.skill_group if call else None,
            "history_days": HISTORY_DAYS,
            "history": None,
            "blocked": None,
            "history_error": None,
        }
        if not pop["caller"]:
            self._publish_pop(agent, pop, "the caller's number is not known")
        elif len(self._lookups) >= self.max_lookups:
            self._publish_pop(agent, pop, "too many history look-ups at once")
        else:
            task = asyncio.create_task(self._pop_with_history(agent, pop), name="screen pop")
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

    async def _pop_with_history(self, agent: Agent, pop: dict[str, Any]) -> None:
        error: str | None = None
        try:
            async with asyncio.timeout(self.lookup_timeout):
                pop["blocked"], pop["history"] = await self.history(
                    pop["caller"], uuidlib.UUID(pop["call_uuid"])
                )
        except TimeoutError:
            error = f"the history took longer than {self.lookup_timeout} s"
        except Exception as exc:  # the pop still goes out, saying why it has no history
            error = f"the history could not be read: {type(exc).__name__}"
            log.warning("screen pop without history", extra={"error": str(exc)})
        self._publish_pop(agent, pop, error)

    async def history(
        self, caller: str, current: uuidlib.UUID
    ) -> tuple[bool, list[dict[str, Any]]]:
        """Whether ``caller`` is blocked, and its previous calls (``history_query``)."""
        since = datetime.now(UTC) - timedelta(days=HISTORY_DAYS)
        async with self.database.connect() as connection:
            rows = (
                await connection.execute(
                    _HISTORY, {"caller": caller, "since": since, "current": current}
                )
            ).all()
        blocked = bool(rows[0].blocked) if rows else False
        agents = self.roster.agents
        calls = [
            {
                "uuid": str(row.uuid),
                "arrived_at": row.arrived_at,
                "outcome": row.outcome,
                "agent_id": row.agent_id,
                "agent_name": agents[row.agent_id].name if row.agent_id in agents else None,
            }
            for row in rows
            if row.uuid is not None
        ]
        return blocked, calls

    def _publish_pop(self, agent: Agent, pop: dict[str, Any], error: str | None) -> None:
        pop["history_error"] = error
        if agent.state is AgentState.RINGING and self._offered.get(pop["call_uuid"]) == agent.id:
            _put_bounded(self._pops, agent.id, pop, self.max_calls)
        audience = Audience(frozenset({agent.id}))
        self.hub.publish(LiveEvent(EventKind.SCREEN_POP, audience, pop))

    # -- snapshot ----------------------------------------------------------------------------

    def snapshot(self, scope: Scope) -> dict[str, Any]:
        """What ``scope`` may see now: agents, live calls, queues, its ringing screen pop."""
        agents = [
            AgentView.of(a).model_dump(mode="json")
            for a in sorted(self.roster.agents.values(), key=lambda a: a.id)
            if scope.admits(EventKind.AGENT, self._agent_audience(a))
        ]
        calls = [
            c
            for c in self.calls().live_calls()
            if scope.admits(EventKind.CALL, self._call_audience(c, self._offered.get(c.uuid)))
        ]
        queues = [
            self._queue_view(g, w)
            for g, w in sorted(self._waiting.items())
            if scope.admits(EventKind.QUEUE, self._queue_audience(g, w))
        ]
        pop = self._pops.get(scope.agent_id) if scope.agent_id else None
        admitted = pop is not None and scope.admits(
            EventKind.SCREEN_POP, Audience(frozenset({pop["agent_id"]}))
        )
        return {
            "agents": agents,
            "calls": calls,
            "queues": queues,
            "screen_pop": pop if admitted else None,
        }


def _ended_view(row: Mapping[str, Any], last: LiveCall | None) -> LiveCall:
    """The final view of a call from its last CDR row (and its last live view, if any)."""
    if last is not None:
        return dataclasses.replace(
            last, state="ended", agent_id=row.get("agent_id") or last.agent_id
        )
    return LiveCall(
        uuid=str(row["uuid"]),
        node=row.get("node") or "",
        caller=row.get("caller") or "",
        hotline=row.get("hotline") or "",
        state="ended",
        arrived_at=row["arrived_at"],
        skill_group_id=row.get("skill_group_id"),
        agent_id=row.get("agent_id"),
        answered_at=row.get("agent_answered_at"),
    )
