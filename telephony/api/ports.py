"""What the API needs from the call engine, as Protocols and plain data.

The engine (``telephony/calls/``) implements :class:`CallDirectory`; the API
only reads through it. Until an engine is plugged in, :class:`NoCalls`
answers "no live calls".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A call in progress, as the engine sees it now (a snapshot, never mutated by the API).

    ``area`` is the area of the hotline that was dialled (``hotlines.area``);
    supervisors see a call when it or its agent's area is one of theirs.
    ``state`` is the engine's word for where the call is (``ivr``, ``queued``,
    ``ringing``, ``talking``, ``held``, ``transferring``, ...).
    """

    uuid: str
    node: str
    caller: str
    hotline: str
    state: str
    arrived_at: datetime
    area: str | None = None
    skill_group_id: str | None = None
    agent_id: str | None = None
    answered_at: datetime | None = None


class CallDirectory(Protocol):
    """Read access to the engine's live calls. Called on the engine's loop; must not block."""

    def live_calls(self) -> Sequence[LiveCall]:
        """Every call in progress, oldest first."""
        ...

    def live_call(self, uuid: str) -> LiveCall | None:
        """One call in progress by its caller leg's uuid, or None when there is none."""
        ...


class NoCalls:
    """The directory used when no call engine is running: there are no live calls."""

    def live_calls(self) -> Sequence[LiveCall]:
        return ()

    def live_call(self, uuid: str) -> LiveCall | None:
        return None
