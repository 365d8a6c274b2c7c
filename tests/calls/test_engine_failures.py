"""Engine failure paths, driven through a scripted switch port (no simulator needed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from telephony.acd.agent_state import Agent, AgentEvent, AgentState
from telephony.acd.roster import Roster
from telephony.calls.engine import CallEngine, EngineSettings
from telephony.calls.model import CallState
from telephony.esl.messages import ApiResponse, Event
from telephony.esl.port import EslCommandError, SwitchEvent
from telephony.store.buffer import WriteBuffer

CALLER = "0f8e6a9e-1111-4c1e-9a6b-000000000001"


class ScriptedPort:
    """Answers every command at once; the api commands named in ``fail`` are refused."""

    node = "test:8021"
    connected = True

    def __init__(self, fail: set[str]) -> None:
        self.fail = fail
        self.apis: list[tuple[str, ...]] = []

    async def api(self, command: str, *args: str, **_: Any) -> ApiResponse:
        self.apis.append((command, *args))
        if command in self.fail:
            raise EslCommandError("-ERR refused", command=command)
        return ApiResponse("+OK\n")

    async def bgapi(self, command: str, *args: str, **_: Any) -> Event:
        leg = args[0].split("origination_uuid=")[1].split(",")[0]
        return Event({"Event-Name": "BACKGROUND_JOB"}, f"+OK {leg}\n")

    async def execute(self, uuid: str, app: str, arg: str = "", **_: Any) -> Event:
        return Event({"Event-Name": "CHANNEL_EXECUTE_COMPLETE", "Unique-ID": uuid})

    async def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING", **_: Any) -> None:
        return None

    async def events(self) -> AsyncIterator[SwitchEvent]:  # pragma: no cover - not used
        if False:
            yield


def park(engine: CallEngine, caller: str = CALLER, number: str = "13800138000") -> None:
    """The dialplan's park, then the core's re-park that the engine's uuid_park asks for."""
    for state in ("CS_EXECUTE", "CS_PARK"):
        engine.dispatch(
            Event(
                {
                    "Event-Name": "CHANNEL_PARK",
                    "Unique-ID": caller,
                    "Channel-State": state,
                    "Call-Direction": "inbound",
                    "Caller-Caller-ID-Number": number,
                    "variable_hotline": "12345",
                }
            )
        )


async def test_a_failed_bridge_frees_the_agent_and_puts_the_call_back(tmp_path: Path) -> None:
    port = ScriptedPort(fail={"uuid_bridge"})
    buffer = WriteBuffer(engine=None)  # type: ignore[arg-type]  # never started: rows pile up
    roster = Roster(buffer, clock=lambda: 1.0)
    roster.load([Agent("a1", "1001")])
    engine = CallEngine(port, roster, buffer, EngineSettings(recordings_dir=tmp_path))  # type: ignore[arg-type]
    roster.apply("a1", AgentEvent.SIGN_IN)

    park(engine)
    async with asyncio.timeout(5):
        while not any(cmd[0] == "uuid_bridge" for cmd in port.apis):
            await asyncio.sleep(0.01)
        while engine._tasks:
            await asyncio.sleep(0.01)

    call = engine.calls[CALLER]
    assert call.state is CallState.QUEUED and set(call.tried_at) == {"a1"}
    assert roster.get("a1").state is AgentState.AVAILABLE  # not stuck ringing, not "no answer"
    killed = [cmd for cmd in port.apis if cmd[0] == "uuid_kill"]
    assert len(killed) == 1 and killed[0][1] == call.legs[killed[0][1]].uuid
    await engine.close()
