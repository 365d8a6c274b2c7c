"""A scripted switch port: every command recorded, every answer and event given by the test.

The engine's failure paths depend on orders of events that a real switch gives
only sometimes (a HANGUP_COMPLETE before a CHANNEL_BRIDGE, a re-park before a
hangup, a CHANNEL_PARK during a re-adoption). Here the test decides them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from telephony.acd.agent_state import Agent, AgentEvent
from telephony.acd.roster import Roster
from telephony.calls.core import EngineSettings
from telephony.calls.engine import CallEngine
from telephony.calls.flows import FlowOutcome
from telephony.esl.messages import ApiResponse, Event
from telephony.esl.port import EslCommandError, EslDisconnected, SwitchEvent
from telephony.store.buffer import Write, WriteBuffer

CALLER = "0f8e6a9e-1111-4c1e-9a6b-000000000001"


class Rows(WriteBuffer):
    """A write buffer that keeps what it was given (no database)."""

    def __init__(self) -> None:
        self.rows: list[Write] = []

    def put(self, write: Write) -> None:
        self.rows.append(write)

    def last(self, table: str, key: str, value: Any) -> dict[str, Any] | None:
        for write in reversed(self.rows):
            if write.table.name == table and str(write.row.get(key)) == str(value):
                return dict(write.row)
        return None


class ScriptedPort:
    """Records commands; jobs wait for :meth:`job`, music plays until broken or stopped."""

    node = "test:8021"

    def __init__(self) -> None:
        self.connected = True
        self.apis: list[tuple[str, ...]] = []
        self.executes: list[tuple[str, str, str]] = []
        self.jobs: dict[str, asyncio.Future[Event]] = {}
        self.replies: dict[str, Callable[[tuple[str, ...]], str]] = {}
        self._playing: dict[str, asyncio.Event] = {}

    def sent(self, command: str) -> list[tuple[str, ...]]:
        return [c for c in self.apis if c[0] == command]

    async def api(self, command: str, *args: str, check: bool = True, **_: Any) -> ApiResponse:
        if not self.connected:
            raise EslDisconnected("down", sent=False)
        self.apis.append((command, *args))
        if command == "uuid_break" and args and args[0] in self._playing:
            self._playing[args[0]].set()
        reply = self.replies.get(command)
        response = ApiResponse(reply((command, *args)) if reply else "+OK\n")
        if check and not response.ok:
            raise EslCommandError(response.body.strip(), command=command)
        return response

    async def bgapi(self, command: str, *args: str, **_: Any) -> Event:
        if not self.connected:
            raise EslDisconnected("down", sent=False)
        leg = args[0].split("origination_uuid=")[1].split(",")[0]
        self.apis.append((command, *args))
        future = self.jobs[leg] = asyncio.get_running_loop().create_future()
        return await future

    def job(self, leg: str, body: str) -> None:
        """The BACKGROUND_JOB of the offer whose leg is ``leg``."""
        self.jobs[leg].set_result(Event({"Event-Name": "BACKGROUND_JOB"}, body))

    def drop(self) -> None:
        """The connection is lost: pending jobs and executes fail as the transport fails them."""
        self.connected = False
        for future in self.jobs.values():
            if not future.done():
                future.set_exception(EslDisconnected("lost", sent=True))
        for playing in self._playing.values():
            playing.set()

    async def execute(self, uuid: str, app: str, arg: str = "", **_: Any) -> Event:
        if not self.connected:
            raise EslDisconnected("down", sent=False)
        self.executes.append((uuid, app, arg))
        if app == "playback" and arg.startswith("local_stream://"):
            stop = self._playing[uuid] = asyncio.Event()
            await stop.wait()
            if not self.connected:
                raise EslDisconnected("lost", sent=True)
        return Event({"Event-Name": "CHANNEL_EXECUTE_COMPLETE", "Unique-ID": uuid})

    def music_ends(self, uuid: str) -> None:
        self._playing[uuid].set()

    def playing(self, uuid: str) -> bool:
        return uuid in self._playing and not self._playing[uuid].is_set()

    async def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING", **_: Any) -> None:
        self.apis.append(("hangup", uuid, cause))

    async def events(self) -> AsyncIterator[SwitchEvent]:  # pragma: no cover - not used
        if False:
            yield


class ScriptedFlows:
    """IVR flows whose outcome (``outcome(call_uuid)``) and survey score the test gives."""

    def __init__(
        self,
        outcome: Callable[[str], Awaitable[FlowOutcome | None]] | None = None,
        score: int | None = None,
    ) -> None:
        self._outcome = outcome
        self.score = score
        self.runs: list[str] = []
        self.surveyed: list[str] = []

    def feed(self, event: object) -> None:
        pass

    async def run(self, port: object, call_uuid: str, **_: object) -> FlowOutcome | None:
        self.runs.append(call_uuid)
        return await self._outcome(call_uuid) if self._outcome is not None else None

    async def survey(self, port: object, call_uuid: str, **_: object) -> int | None:
        self.surveyed.append(call_uuid)
        return self.score

    def forget(self, call_uuid: str) -> None:
        pass


class Rig:
    """An engine on a scripted port, with agents and the rows it stored."""

    def __init__(self, tmp_path: Path, *agents: str, peers: list[CallEngine] | None = None):
        self.port = ScriptedPort()
        self.rows = Rows()
        self.now = 1000.0
        self.roster = Roster(self.rows, clock=lambda: self.now)
        self.roster.load([Agent(a, f"10{i:02d}") for i, a in enumerate(agents, 1)])
        self.engine = CallEngine(
            self.port,  # type: ignore[arg-type]
            self.roster,
            self.rows,
            EngineSettings(recordings_dir=tmp_path, wrap_up_s=0.05, reoffer_after_s=10.0),
            clock=lambda: self.now,
            peers=peers,
        )

    def sign_in(self, *agents: str) -> None:
        for agent in agents:
            self.roster.apply(agent, AgentEvent.SIGN_IN)

    def event(self, name: str, uuid: str, **headers: str) -> None:
        self.engine.dispatch(Event({"Event-Name": name, "Unique-ID": uuid, **headers}))

    def park(self, uuid: str = CALLER, caller: str = "13800138000", state: str = "CS_EXECUTE"):
        self.event(
            "CHANNEL_PARK",
            uuid,
            **{
                "Channel-State": state,
                "Call-Direction": "inbound",
                "Caller-Caller-ID-Number": caller,
                "variable_hotline": "12345",
            },
        )

    async def taken_call(self, uuid: str = CALLER, caller: str = "13800138000") -> None:
        """A citizen's call, taken out of the dialplan's park (the intake then runs)."""
        self.park(uuid, caller)
        await self.until(lambda: any(c[1] == uuid for c in self.port.sent("uuid_park")))
        self.park(uuid, caller, state="CS_PARK")  # the core's re-park after uuid_park

    async def queued_call(self, uuid: str = CALLER, caller: str = "13800138000") -> None:
        """A citizen's call, taken out of the dialplan's park, answered and queued."""
        await self.taken_call(uuid, caller)
        await self.until(lambda: self.port.playing(uuid))

    def hangup_complete(
        self, uuid: str, disposition: str = "recv_bye", cause: str = "NORMAL_CLEARING"
    ) -> None:
        self.event(
            "CHANNEL_HANGUP_COMPLETE",
            uuid,
            **{"Hangup-Cause": cause, "variable_sip_hangup_disposition": disposition},
        )

    async def answered(self, uuid: str = CALLER) -> str:
        """The offered agent answers: the job's ``+OK``, then the engine's uuid_bridge."""
        leg = self.offered_leg(uuid)
        self.port.job(leg, "+OK " + leg)
        await self.until(lambda: [c for c in self.port.sent("uuid_bridge") if c[1] == uuid])
        return leg

    async def connected(self, uuid: str = CALLER) -> str:
        """The offered agent answers and the switch reports the bridge."""
        leg = await self.answered(uuid)
        bridge = {"Bridge-A-Unique-ID": uuid, "Bridge-B-Unique-ID": leg}
        self.event("CHANNEL_BRIDGE", uuid, **bridge)
        return leg

    def offered_leg(self, uuid: str = CALLER) -> str:
        leg = self.engine.calls[uuid].offer_leg
        assert leg is not None
        return leg

    async def until(self, check: Callable[[], object], timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.005)

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
