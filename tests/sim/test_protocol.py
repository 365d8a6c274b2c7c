"""The simulator's Event Socket: auth, replies, subscriptions, filters, robustness (raw bytes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from telephony.sim import Simulator

from .conftest import RawClient, execute

TRACES = Path(__file__).resolve().parents[3] / "shared" / "freeswitch" / "traces"


async def test_must_show_call_park_answer_execute_complete(sim: tuple[Simulator, int]) -> None:
    """The issue's must-show: raw TCP, auth, subscribe, sim call, park, answer by sendmsg."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sim[1])
    buf = b""

    async def until(token: bytes) -> bytes:
        nonlocal buf
        while token not in buf:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            assert chunk, "connection closed"
            buf += chunk
        return buf

    assert await until(b"\n\n") == b"Content-Type: auth/request\n\n"
    writer.write(b"auth ClueCon\n\n")
    await until(b"Reply-Text: +OK accepted\n\n")
    writer.write(b"event plain CHANNEL_CREATE CHANNEL_PARK CHANNEL_EXECUTE_COMPLETE\n\n")
    await until(b"Reply-Text: +OK event listener enabled plain\n\n")
    writer.write(b"api sim call 12345 13800138000\n\n")
    await until(b"Event-Name: CHANNEL_PARK\n")
    assert b"Event-Name: CHANNEL_CREATE\n" in buf
    start = buf.index(b"Content-Type: api/response\n")
    uuid = buf[start:].split(b"\n\n", 1)[1][4:40].decode()
    assert f"Unique-ID: {uuid}\n".encode() in buf
    writer.write(
        f"sendmsg {uuid}\ncall-command: execute\nexecute-app-name: answer\n"
        "Event-UUID: x-answer-1\n\n".encode()
    )
    await until(b"Application-UUID: x-answer-1\n")
    tail = buf[buf.index(b"Application-UUID: x-answer-1\n") - 3000 :]
    assert b"Event-Name: CHANNEL_EXECUTE_COMPLETE\n" in buf
    assert b"Application: answer\n" in tail
    assert b"Content-Type: command/reply\nReply-Text: +OK\n\n" in buf
    writer.close()


async def test_wrong_password_is_byte_exact_with_freeswitch(sim: tuple[Simulator, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim[1])
    writer.write(b"auth NotTheRightPassword\n\n")
    data = b""
    while chunk := await asyncio.wait_for(reader.read(65536), 5):
        data += chunk
    expected = (TRACES / "esl_auth_failure.txt").read_bytes()
    assert data == expected


async def test_commands_before_auth_get_no_reply(sim: tuple[Simulator, int]) -> None:
    c = await RawClient.connect(sim[1])
    await c.wait(lambda: bool(c.frames))
    c.send("api status\n\n")
    await asyncio.sleep(0.1)
    assert [f.ctype for f in c.frames] == ["auth/request"]
    assert (await c.command("auth ClueCon")).headers["Reply-Text"] == "+OK accepted"
    await c.close()


async def test_exit_says_bye_and_closes(client: RawClient) -> None:
    reply = await client.command("exit")
    assert reply.raw == b"Content-Type: command/reply\nReply-Text: +OK bye\n\n"
    await client.wait(lambda: client.closed)
    assert client.frames[-1].ctype == "text/disconnect-notice"


async def test_api_replies_match_the_trace_formats(client: RawClient) -> None:
    assert await client.api("version") == "FreeSWITCH Version 1.11.1-release~64bit ( 64bit)\n"
    assert await client.api("show channels as json") == '{"row_count": 0}\n'
    assert await client.api("no_such_command") == "-ERR no_such_command Command not found!\n"
    assert (await client.api("status")).startswith("UP 0 years, 0 days")
    assert await client.api("uuid_exists 00000000-0000-0000-0000-000000000000") == "false"
    assert await client.api("sim help") == (await client.api("sim"))
    assert "sim call DEST CALLER" in await client.api("sim help")


async def test_malformed_command_keeps_the_connection(client: RawClient) -> None:
    reply = await client.command("sendmsg abc\nthis line has no colon\n\n")
    assert reply.headers["Reply-Text"] == "-ERR command not found"
    reply = await client.command("frobnicate now")
    assert reply.headers["Reply-Text"] == "-ERR command not found"
    reply = await client.command("sendmsg not-a-uuid\ncall-command: execute\n\n")
    assert reply.headers["Reply-Text"] == "-ERR invalid session id [not-a-uuid]"
    assert (await client.api("version")).startswith("FreeSWITCH Version")


async def test_bgapi_honours_the_job_uuid_header(client: RawClient) -> None:
    reply = await client.command("bgapi status\nJob-UUID: my-job-1")
    assert reply.raw == (
        b"Content-Type: command/reply\nReply-Text: +OK Job-UUID: my-job-1\nJob-UUID: my-job-1\n\n"
    )
    job = await client.wait_event("BACKGROUND_JOB")
    assert job.h["Job-UUID"] == "my-job-1"
    assert job.h["Job-Command"] == "status"
    assert "Job-Command-Arg" not in job.h
    assert job.body is not None and job.body.startswith("UP ")


async def test_json_events_filters_and_two_connections(sim: tuple[Simulator, int]) -> None:
    a = await RawClient.connect(sim[1])
    b = await RawClient.connect(sim[1])
    for c in (a, b):
        await c.wait(lambda c=c: bool(c.frames))  # type: ignore[misc]
        await c.command("auth ClueCon")
    reply = await a.command("event json CHANNEL_CREATE CHANNEL_PARK")
    assert reply.headers["Reply-Text"] == "+OK event listener enabled json"
    await b.command("event plain ALL")
    first = (await a.api("sim call 12345 13800138000")).split()[1]
    await a.wait(lambda: sum(f.ctype == "text/event-json" for f in a.frames) >= 2)
    created = json.loads(next(f.body for f in a.frames if f.ctype == "text/event-json"))
    assert created["Event-Name"] == "CHANNEL_CREATE"
    assert created["Unique-ID"] == first
    await b.wait_event("CHANNEL_PARK", first)
    reply = await b.command(f"filter Unique-ID {first}")
    assert reply.headers["Reply-Text"] == f"+OK filter added. [Unique-ID]=[{first}]"
    second = (await b.api("sim call 12315 13900139000")).split()[1]
    await a.wait(lambda: sum(f.ctype == "text/event-json" for f in a.frames) >= 4)
    await asyncio.sleep(0.05)
    assert b.events(second) == []
    await execute(b, first, "answer")
    reply = await b.command("noevents")
    assert reply.headers["Reply-Text"] == "+OK no longer listening for events"
    for c in (a, b):
        await c.close()


async def test_sofia_registration_events_and_contact(client: RawClient) -> None:
    assert await client.api("sofia_contact */1001@127.0.0.1") == "error/user_not_registered"
    assert await client.api("sim phone 1001") == "+OK\n"
    reg = await client.wait_event("sofia::register")
    assert reg.h["from-user"] == "1001"
    assert reg.h["contact"] == '"" <sip:1001@127.0.0.1:5081>'
    assert reg.h["expires"] == "3600"
    assert "Unique-ID" not in reg.h
    assert await client.api("sofia_contact */1001@127.0.0.1") == (
        "sofia/internal/sip:1001@127.0.0.1:5081"
    )
    status = await client.api("sofia status profile internal reg")
    assert "User:       \t1001@127.0.0.1" in status and "Total items returned: 1" in status
    assert await client.api("sim unregister 1001") == "+OK\n"
    unreg = await client.wait_event("sofia::unregister")
    assert unreg.h["expires"] == "0"
    await client.api("sim phone 1003 expires=10")
    await client.api("sim expire 1003")
    expire = await client.wait_event("sofia::expire")
    assert expire.h["user"] == "1003" and "from-user" not in expire.h
    assert int(expire.h["expires"]) > 1_000_000_000


async def test_many_calls_at_once() -> None:
    """250 calls placed at once all park (functional; the rate is measured, not asserted)."""
    simulator = Simulator("ClueCon", time_scale=1.0)  # no park_timeout during the test
    port = await simulator.start("127.0.0.1", 0)
    client = await RawClient.connect(port)
    try:
        await client.wait(lambda: bool(client.frames))
        await client.command("auth ClueCon")
        await client.command("event plain CHANNEL_CREATE CHANNEL_PARK")
        for _ in range(250):
            client.send("api sim call 12345 13800138000\n\n")
        await client.wait(
            lambda: sum(1 for e in client.decoded if e.name == "CHANNEL_PARK") >= 250, 30
        )
        assert len(simulator.switch.channels) == 250
        assert len({e.uuid for e in client.decoded}) == 250
    finally:
        await client.close()
        await simulator.stop()
