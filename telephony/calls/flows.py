"""The port through which the engine runs IVR flows on calls (implemented by ``telephony.ivr``).

The engine does not know the flow language: it asks for a call's flow to be
run and gets back what to do with the call, in plain data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from telephony.esl.messages import Event
from telephony.esl.port import SwitchPort

FlowAction = Literal["queue", "transfer", "voicemail", "hangup", "blocked"]


@dataclass(frozen=True, slots=True)
class FlowOutcome:
    """How a flow ended: queue in ``group`` with ``priority``, transfer to ``number``, ..."""

    action: FlowAction
    group: str | None = None
    priority: int = 0
    number: str | None = None
    reason: str | None = None
    keys: str = ""
    flow: str = ""
    version: str = ""
    #: The citizen's voice message could not be recorded: the switch's reason
    #: (the action is then the voicemail node's fallback, or a hang-up).
    voicemail_failed: str | None = None


class CallFlows(Protocol):
    """IVR flows, per hotline, run on live calls."""

    def feed(self, event: Event) -> None:
        """Every event of the node (for the key-press-to-prompt timing)."""
        ...

    async def run(
        self, port: SwitchPort, call_uuid: str, *, hotline: str, caller: str
    ) -> FlowOutcome | None:
        """Run the hotline's current flow on the call; None when no flow serves the hotline.

        The call keeps the flow version it started with (for its survey). A flow cut
        short by the switch port failing (not by the caller) ends with ``reason``
        ``channel_error``.
        """
        ...

    async def survey(
        self, port: SwitchPort, call_uuid: str, *, caller: str, hotline: str
    ) -> int | None:
        """The call's satisfaction survey (its flow version's, or the hotline's current one
        for a call re-adopted after a restart); the key pressed, or None."""
        ...

    def forget(self, call_uuid: str) -> None:
        """The call ended: drop what was kept for it."""
        ...
