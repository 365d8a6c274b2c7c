"""The engine as the outbound dialer sees it: free agents, waiting calls, and outbound legs.

:mod:`telephony.outbound` (callbacks, follow-up surveys) never handles a call
itself. It asks this port for:

* whether inbound calls wait in a skill group (inbound always comes first) and
  which agents of the group are free, longest idle first;
* an agent-first call (:meth:`EngineOutbound.call_with_agent`): the engine's own
  agent outbound call (:mod:`~telephony.calls.dial`: ring the agent, then the
  citizen from the hotline's number, bridge), awaited to its end, with what
  the call's record says about it;
* a lone outbound leg (:meth:`EngineOutbound.call_alone`) through the same
  originate call control uses, for a survey played by the IVR, and its hang-up.

Every leg made here carries ``hotline_call``, so that the re-adoption after a
restart or a reconnect hangs up those it does not know (no leg is left parked).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from telephony.acd.agent_state import AgentState
from telephony.acd.queue import longest_idle_agent
from telephony.acd.roster import Roster
from telephony.calls import values
from telephony.calls.control_model import Dial, Party, Refused
from telephony.calls.model import Call, CallState
from telephony.calls.values import clean
from telephony.esl.port import EslError, SwitchPort

if TYPE_CHECKING:
    from telephony.calls.engine import CallEngine

#: How often a running agent-first call is looked at (it is the engine's; we only wait).
WATCH_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How an agent-first outbound call ended, as its record says.

    ``agent_answered``: the agent's phone was answered (else the citizen was never
    dialled); ``connected``: the citizen answered and was bridged to the agent;
    ``cause``: the hang-up cause (or the ``-ERR`` word of the failed originate).
    """

    call_uuid: str
    agent_id: str | None
    agent_answered: bool
    connected: bool
    cause: str | None
    talk_seconds: float | None
    recording_id: str | None


class Unavailable(Exception):
    """The engine cannot make this call now (no node, agent not free, bad number)."""


class EngineOutbound:
    """The outbound port over every node's engine (one control plane)."""

    def __init__(self, engines: Sequence[CallEngine], roster: Roster) -> None:
        self.engines = engines
        self.roster = roster

    def _engine(self) -> CallEngine:
        engine = next((e for e in self.engines if e.port.connected), None)
        if engine is None:
            raise Unavailable("no FreeSWITCH node is connected")
        return engine

    @property
    def connected(self) -> bool:
        return any(e.port.connected for e in self.engines)

    def inbound_waiting(self, group: str) -> int:
        """Inbound calls waiting in ``group`` (queued, or ringing an agent) on every node."""
        return sum(len(e.queues[group]) if group in e.queues else 0 for e in self.engines)

    def free_agent(self, group: str, exclude: frozenset[str] = frozenset()) -> str | None:
        """The available agent of ``group`` idle the longest that no call needs (None)."""
        engaged: set[str] = set(exclude)
        for engine in self.engines:
            engaged |= engine.engaged_agents()
        agent = longest_idle_agent(self.roster.agents.values(), group, frozenset(engaged))
        return None if agent is None else agent.id

    def agent_free(self, agent_id: str) -> bool:
        """Whether ``agent_id`` is available and no call needs it."""
        agent = self.roster.agents.get(agent_id)
        if agent is None or agent.state is not AgentState.AVAILABLE:
            return False
        return not any(agent_id in e.engaged_agents() for e in self.engines)

    async def call_with_agent(
        self, agent_id: str, number: str, *, caller_id: str, call_uuid: str
    ) -> CallOutcome:
        """Ring the agent, then the citizen from ``caller_id``, bridge; wait for the end.

        Raises :class:`Unavailable` when the engine refuses (nothing was dialled).
        """
        engine = self._engine()
        try:
            await engine.command(
                Dial(agent=agent_id, number=number, caller_id=caller_id, call_uuid=call_uuid)
            )
        except Refused as exc:
            raise Unavailable(exc.detail) from exc
        call = engine.calls.get(call_uuid)
        if call is not None:
            while call.state is not CallState.ENDED:
                await asyncio.sleep(WATCH_INTERVAL_S)
        return _outcome(call, call_uuid, agent_id)

    async def call_alone(
        self,
        number: str,
        *,
        caller_id: str,
        leg: str,
        variables: Mapping[str, str] | None = None,
    ) -> tuple[str, SwitchPort]:
        """Originate ``number`` from ``caller_id`` on our leg ``leg`` (parked once answered).

        Returns the originate's reply (``+OK <uuid>`` or ``-ERR <cause>``) and the port
        the leg lives on. Nothing is adopted: the leg is the caller's to play to and to
        hang up (:meth:`hang_up`).
        """
        engine = self._engine()
        placeholder = Call(
            uuid=leg,
            node=clean(engine.port.node, values.NODE),
            hotline=caller_id,
            caller=number,
            arrived_at=engine.clock(),
            direction="outbound",
        )
        reply = await engine.control.originate(
            placeholder,
            leg,
            Party("number", number),
            caller_id=caller_id,
            extra=dict(variables or {}),
        )
        return reply, engine.port

    async def hang_up(self, leg: str) -> None:
        """Hang up a leg of ours on whichever node has it (gone already: nothing)."""
        for engine in self.engines:
            if engine.port.connected:
                await engine.kill(leg)

    async def exists(self, leg: str) -> bool:
        """Whether any node still has the channel ``leg``."""
        for engine in self.engines:
            if not engine.port.connected:
                continue
            with contextlib.suppress(EslError):
                reply = await engine.port.api("uuid_exists", leg)
                if reply.body.strip() == "true":
                    return True
        return False


def new_leg() -> str:
    """A fresh leg uuid (``origination_uuid``), chosen before the leg is dialled."""
    return str(uuidlib.uuid4())


def _outcome(call: Call | None, call_uuid: str, agent_id: str) -> CallOutcome:
    if call is None:  # ended before the command returned (a refusal's HANGUP first)
        return CallOutcome(call_uuid, agent_id, False, False, "UNKNOWN", None, None)
    return CallOutcome(
        call_uuid=call_uuid,
        agent_id=call.agent_id or agent_id,
        agent_answered=call.agent_leg is not None,
        connected=call.agent_answered_at is not None,
        cause=call.hangup_cause,
        talk_seconds=call.talk_seconds,
        recording_id=call.recording_id if call.recording_claimed else None,
    )
