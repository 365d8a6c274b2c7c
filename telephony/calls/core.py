"""What the engine's parts share: the settings and the engine as its parts see it.

The call engine (:mod:`telephony.calls.engine`) is a dispatcher over parts
that each own one concern: :mod:`~telephony.calls.intake` (park, answer,
IVR), :mod:`~telephony.calls.routing` (queues, music on hold, offers),
:mod:`~telephony.calls.agent_legs` (ringing, bridging, recording, the
agent's side of a call) and :mod:`~telephony.calls.adoption` (re-adoption and
reconciliation after a (re)connect). The parts depend on
:class:`EngineCore`, never on the engine class, so no part imports another
part or the engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from telephony.acd.agent_state import Agent
from telephony.acd.roster import Roster
from telephony.calls.flows import CallFlows
from telephony.calls.leg import LegInput
from telephony.calls.model import Call, CallEffect, CallInput
from telephony.calls.overload import OverloadGuard
from telephony.esl.port import SwitchPort
from telephony.metrics import Metrics
from telephony.store.buffer import WriteBuffer


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """What the engine needs to know besides the switch, the roster and the database."""

    recordings_dir: Path
    greeting: str = "tone_stream://%(500,0,440)"
    hold_music: str = "local_stream://moh"
    ring_timeout_s: int = 15
    wrap_up_s: float = 10.0
    default_group: str = "general"
    #: An agent who missed a call (or whose bridge failed) is not offered that same call
    #: again for this long; after it, they may be (a one-agent group must not freeze).
    reoffer_after_s: float = 10.0
    #: How long after ``uuid_bridge +OK`` the bridge event may take before the offer fails.
    bridge_timeout_s: float = 5.0
    #: How many times an IVR interrupted by a lost connection is started again.
    ivr_restarts: int = 2
    #: Outside numbers (transfers, three-way, agents' outbound calls) are dialled through
    #: this template; ``{number}`` and ``{gateway}`` are filled in.
    outbound_dial: str = "sofia/gateway/{gateway}/{number}"
    outbound_gateway: str = "carrier"
    #: The caller ID of agents' outbound calls (the hotline's number).
    outbound_caller_id: str = "12345"


class EngineCore(Protocol):
    """The engine as its parts see it: shared state, the ports, and the cross-part steps."""

    port: SwitchPort
    roster: Roster
    buffer: WriteBuffer
    settings: EngineSettings
    metrics: Metrics
    flows: CallFlows | None
    clock: Callable[[], float]
    calls: dict[str, Call]
    agent_legs: dict[str, str]  # agent leg uuid -> caller uuid
    overload: OverloadGuard | None
    #: Run after every (re)connect, once the node's calls are adopted (the recording probe).
    connect_hooks: Sequence[Callable[[], Awaitable[None]]]

    # -- bookkeeping every part uses -------------------------------------------------------
    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> Any: ...
    def adopt(self, call: Call) -> None: ...
    def move(self, call: Call, event: CallInput) -> bool: ...
    def carry(self, call: Call, effects: tuple[CallEffect, ...]) -> None: ...
    def leg(self, call: Call, uuid: str, event: LegInput, **facts: str | None) -> None: ...
    async def mark(self, call: Call, **facts: str | float) -> None: ...
    async def kill(self, leg: str, cause: str = "NORMAL_CLEARING") -> None: ...
    async def hang_up(self, call: Call, cause: str = "NORMAL_CLEARING") -> None: ...
    def caller_gone(
        self, call: Call, cause: str | None, disposition: str | None, *, seen: bool = True
    ) -> None: ...

    # -- steps owned by one part, used by others ------------------------------------------
    async def take(self, call: Call) -> None: ...
    async def intake(self, call: Call) -> None: ...
    async def run_flow(self, call: Call) -> None: ...
    def enqueue(self, call: Call) -> None: ...
    def requeue(self, call: Call) -> None: ...
    def ensure_music(self, call: Call) -> None: ...
    def route(self) -> None: ...
    def offer(self, call: Call, agent: Agent) -> None: ...
    def offer_failed(
        self, call: Call, agent_id: str, leg: str, cause: str, *, agent_missed: bool = True
    ) -> None: ...
    def agent_leg_gone(self, leg: str, cause: str | None, disposition: str | None) -> None: ...
    def bridge_ended(self, call: Call) -> None: ...
    def voicemail_failed(self, call: Call, reason: str) -> None: ...
    async def record(self, call: Call) -> None:
        """Record the conversation; claimed (row, CDR) at RECORD_STOP with audio."""
        ...

    def end_agent_call(self, agent_id: str) -> None: ...
    def wrap_up(self, agent_id: str, extend_s: float | None = None) -> bool:
        """End the agent's wrap-up now, or extend it by ``extend_s``; False if none runs."""
        ...

    # -- several nodes --------------------------------------------------------------------
    adopted_once: bool

    def peers(self) -> Iterable[EngineCore]:
        """Every engine of this control plane (one per node), this one included."""
        ...

    def engaged_agents(self) -> set[str]:
        """Agents this engine's live calls need (talking, or being offered a call)."""
        ...

    def wrapping_up(self) -> set[str]:
        """Agents whose wrap-up timer runs in this engine."""
        ...
