"""What the dialer needs from the call engine and from the IVR, as Protocols.

The engine side is :class:`telephony.calls.outbound_port.EngineOutbound`; the
IVR side is :class:`telephony.ivr.service.IvrService` (``outbound_survey``).
Tests may put doubles behind them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from telephony.calls.outbound_port import CallOutcome
from telephony.esl.port import SwitchPort


class OutboundLegs(Protocol):
    """Agents, waiting calls and outbound legs, from the engine."""

    @property
    def connected(self) -> bool: ...

    def inbound_waiting(self, group: str) -> int:
        """Inbound calls waiting in ``group`` (they come first)."""
        ...

    def free_agent(self, group: str, exclude: frozenset[str] = frozenset()) -> str | None:
        """The longest-idle available agent of ``group``, or None."""
        ...

    def agent_free(self, agent_id: str) -> bool:
        """Whether the agent is available and no call needs it."""
        ...

    async def call_with_agent(
        self, agent_id: str, number: str, *, caller_id: str, call_uuid: str
    ) -> CallOutcome:
        """Agent first, then the citizen, bridged; returns once the call ended."""
        ...

    async def call_alone(
        self,
        number: str,
        *,
        caller_id: str,
        leg: str,
        variables: Mapping[str, str] | None = None,
    ) -> tuple[str, SwitchPort]:
        """Originate ``number`` on ``leg``: the reply and the port the leg lives on."""
        ...

    async def hang_up(self, leg: str) -> None: ...

    async def exists(self, leg: str) -> bool: ...


class SurveyFlows(Protocol):
    """The IVR's survey entry point, on a leg we originated."""

    async def outbound_survey(
        self,
        flow: str,
        port: SwitchPort,
        uuid: str,
        *,
        caller: str,
        hotline: str,
        variables: Mapping[str, str],
    ) -> int | None:
        """Play flow ``flow``'s survey (greeting, key-press score, retries, thanks);
        the score, or None (no valid key, or the citizen hung up)."""
        ...
