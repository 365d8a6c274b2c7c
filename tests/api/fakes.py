"""Test doubles for the API tests (imported as ``tests.api.fakes`` everywhere)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from telephony.api.ports import LiveCall
from telephony.auth import Role, create_principal
from telephony.services import Services


@dataclass
class FakeCalls:
    """A CallDirectory holding whatever calls a test puts in it."""

    calls: list[LiveCall] = field(default_factory=list)

    def live_calls(self) -> Sequence[LiveCall]:
        return list(self.calls)

    def live_call(self, uuid: str) -> LiveCall | None:
        return next((c for c in self.calls if c.uuid == uuid), None)


@dataclass
class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeSwitch:
    """Only what /readyz reads of a SwitchPort."""

    node: str
    connected: bool


class Tokens:
    """Creates principals and hands out their bearer headers."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def headers(
        self, name: str, role: Role, *, area: str | None = None, agent_id: str | None = None
    ) -> dict[str, str]:
        async with self._services.database.begin() as connection:
            _, token = await create_principal(connection, name, role, area=area, agent_id=agent_id)
        return {"Authorization": f"Bearer {token}"}
