"""The recording probe against the simulator over real ESL, and the health it keeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from telephony.esl.messages import ApiResponse, Event
from telephony.esl.port import EslCommandError
from telephony.esl.transport import EslConnection
from telephony.metrics import Metrics
from telephony.recording.probe import (
    NOT_CHECKED,
    PROBE_ENDPOINT,
    NodeProbe,
    ProbeResult,
    RecordingHealth,
    probe_recording,
)
from telephony.sim import Simulator

SWITCH = 499
RECORD_S = 0.1




@pytest.fixture
async def switch() -> AsyncIterator[tuple[Simulator, EslConnection]]:
    sim = Simulator(time_scale=20)
    port = await sim.start("127.0.0.1", 0)
    connection = EslConnection(f"esl://:ClueCon@127.0.0.1:{port}")
    await connection.connect()
    try:
        yield sim, connection
    finally:
        await connection.close()
        await sim.stop()


async def _as(connection: EslConnection, uid: int, gid: int) -> None:
    await connection.api("sim", "set", "switch_uid", str(uid))
    await connection.api("sim", "set", "switch_gid", str(gid))


def _folder(base: Path, mode: int) -> Path:
    folder = base / "recordings"
    folder.mkdir()
    folder.chmod(mode)
    return folder


async def test_a_folder_the_switch_can_write_passes_and_leaves_nothing_behind(
    switch: tuple[Simulator, EslConnection], shared_dir: Path
) -> None:
    sim, connection = switch
    folder = _folder(shared_dir, 0o2775)
    await _as(connection, SWITCH, folder.stat().st_gid)
    result = await probe_recording(connection, folder, connection.node, 10, record_s=RECORD_S)
    assert result.ok, result.reason
    assert result.node == connection.node and result.folder == folder
    assert result.audio_bytes > 0
    assert list(folder.iterdir()) == []  # the probe file is removed
    await asyncio.sleep(0.05)
    probes = [c for c in sim.switch.channels.values() if c.name == PROBE_ENDPOINT]
    assert all(not c.is_up for c in probes)  # the probe channel was hung up


async def test_a_folder_the_switch_cannot_write_fails_with_the_switchs_reply(
    switch: tuple[Simulator, EslConnection], shared_dir: Path
) -> None:
    _, connection = switch
    folder = _folder(shared_dir, 0o755)  # root's, as `serve` used to make it
    await _as(connection, SWITCH, SWITCH)
    result = await probe_recording(connection, folder, connection.node, 10, record_s=RECORD_S)
    assert not result.ok
    assert result.reason is not None
    assert result.reason.startswith("-ERR Cannot record session!")
    assert str(folder) in result.reason
    assert list(folder.iterdir()) == []


class _ElsewhereSwitch:
    """The switch sees ``folder`` at another place: it records, but not where we look."""

    def __init__(self, connection: EslConnection, seen: Path, real: Path) -> None:
        self.connection = connection
        self.seen, self.real = str(seen), str(real)

    @property
    def node(self) -> str:
        return self.connection.node

    @property
    def connected(self) -> bool:
        return True

    async def api(self, command: str, *args: str, **kw: Any) -> ApiResponse:
        moved = [a.replace(self.seen, self.real) for a in args]
        return await self.connection.api(command, *moved, **kw)

    async def bgapi(self, command: str, *args: str, **kw: Any) -> Event:
        return await self.connection.bgapi(command, *args, **kw)


async def test_a_folder_the_two_do_not_share_fails(
    switch: tuple[Simulator, EslConnection], shared_dir: Path
) -> None:
    _, connection = switch
    here = _folder(shared_dir, 0o2775)
    there = shared_dir / "on-the-switch-host"
    there.mkdir()
    port = _ElsewhereSwitch(connection, here, there)
    result = await probe_recording(port, here, port.node, 2, record_s=RECORD_S)  # type: ignore[arg-type]
    assert not result.ok
    assert result.reason is not None and "do not share" in result.reason


class _NoLoopback:
    node = "fs9:8021"
    connected = True

    async def bgapi(self, command: str, *args: str, **kw: Any) -> Event:
        return Event({"Event-Name": "BACKGROUND_JOB"}, "-ERR CHAN_NOT_IMPLEMENTED\n")

    async def api(self, command: str, *args: str, **kw: Any) -> ApiResponse:
        raise AssertionError(f"no api expected: {command} {args}")


async def test_a_switch_without_the_null_endpoint_fails_and_says_why(shared_dir: Path) -> None:
    result = await probe_recording(_NoLoopback(), shared_dir, "fs9:8021", 2)  # type: ignore[arg-type]
    assert not result.ok
    assert result.reason is not None
    assert "CHAN_NOT_IMPLEMENTED" in result.reason and "mod_loopback" in result.reason


class _Hung(_NoLoopback):
    async def bgapi(self, command: str, *args: str, **kw: Any) -> Event:
        return Event({"Event-Name": "BACKGROUND_JOB"}, "+OK x\n")

    async def api(self, command: str, *args: str, **kw: Any) -> ApiResponse:
        if command == "uuid_kill":
            return ApiResponse("+OK\n")
        await asyncio.sleep(60)
        raise EslCommandError("-ERR never")


async def test_a_switch_that_does_not_answer_fails_within_the_timeout(shared_dir: Path) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await probe_recording(_Hung(), shared_dir, "fs9:8021", 1.5)  # type: ignore[arg-type]
    assert loop.time() - started < 3
    assert not result.ok
    assert result.reason == "the switch did not answer within 1.5 s (uuid_record start)"


def test_health_per_node_and_folder_and_its_gauge(tmp_path: Path) -> None:
    metrics = Metrics()
    health = RecordingHealth(metrics)
    calls, messages = tmp_path / "r", tmp_path / "r" / "voicemail"
    assert health.status("fs1") == NOT_CHECKED and health.ok("fs1") is None
    health.record(ProbeResult("fs1", calls, True))
    assert health.status("fs1") == "ok"
    gauge = metrics.recording_probe_ok.labels("fs1")
    assert gauge._value.get() == 1
    health.record(ProbeResult("fs1", messages, False, "-ERR Cannot record session!"))
    assert health.ok("fs1") is False
    assert health.status("fs1") == "-ERR Cannot record session!"
    assert health.reason("fs1", messages) == "-ERR Cannot record session!"
    assert health.reason("fs1", calls) is None
    assert gauge._value.get() == 0
    health.record(ProbeResult("fs1", messages, True))  # the next connect's probe
    assert health.status("fs1") == "ok" and gauge._value.get() == 1
    assert health.status("fs2") == NOT_CHECKED


async def test_the_node_probe_checks_both_folders(
    switch: tuple[Simulator, EslConnection], shared_dir: Path
) -> None:
    _, connection = switch
    calls = _folder(shared_dir, 0o2775)
    messages = calls / "voicemail"
    messages.mkdir()
    messages.chmod(0o755)
    await _as(connection, SWITCH, calls.stat().st_gid)
    health = RecordingHealth(Metrics())
    await NodeProbe(connection, [calls, messages], health, record_s=RECORD_S)()
    assert health.reason(connection.node, calls) is None
    reason = health.reason(connection.node, messages)
    assert reason is not None and reason.startswith("-ERR Cannot record session!")
    assert health.status(connection.node) == reason


async def test_a_failed_probe_is_tried_again_until_the_folder_is_fixed(
    switch: tuple[Simulator, EslConnection], shared_dir: Path
) -> None:
    _, connection = switch
    folder = _folder(shared_dir, 0o755)
    await _as(connection, SWITCH, SWITCH)
    health = RecordingHealth(Metrics())
    probe = NodeProbe(connection, [folder], health, record_s=RECORD_S, retry_s=0.2)
    await probe()
    assert health.ok(connection.node) is False
    folder.chmod(0o777)  # an operator fixes it by hand
    try:
        for _ in range(100):
            if health.ok(connection.node):
                break
            await asyncio.sleep(0.05)
        assert health.status(connection.node) == "ok"
    finally:
        await probe.close()
