"""The simulator's failure controls, over raw ESL: raw caller-ID bytes, a hung switch,
a network break, and what a hung-up channel looks like to ``show`` and ``uuid_dump``."""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest

from telephony.sim import Simulator
from telephony.sim.wire import cjson_dumps

from .conftest import TIME_SCALE, RawClient, execute, parked_call

GBK_LI_NA = "c0eec4c8"  # 李娜 in GBK: not valid UTF-8


async def connect(
    port: int, subscribe: str = "event plain CHANNEL_PARK CHANNEL_HANGUP"
) -> RawClient:
    c = await RawClient.connect(port)
    await c.wait(lambda: bool(c.frames))
    assert (await c.command("auth ClueCon")).headers["Reply-Text"] == "+OK accepted"
    await c.command(subscribe)
    return c


async def test_raw_caller_name_bytes_in_plain_json_and_api(sim: tuple[Simulator, int]) -> None:
    port = sim[1]
    plain = await connect(port)
    as_json = await connect(port, "event json CHANNEL_PARK")
    try:
        reply = await plain.api(f"sim call 12345 13800138000 name_hex={GBK_LI_NA}")
        a = reply.split()[1]
        await plain.wait_event("CHANNEL_PARK", a)
        frame = next(f for f in plain.frames if b"CHANNEL_PARK" in f.body)
        assert b"Caller-Caller-ID-Name: %C0%EE%C4%C8\n" in frame.body
        assert b"Caller-Orig-Caller-ID-Name: %C0%EE%C4%C8\n" in frame.body
        assert b"variable_sip_from_display: %C0%EE%C4%C8\n" in frame.body
        assert b"Caller-Caller-ID-Number: 13800138000\n" in frame.body
        await as_json.wait(lambda: any(f.ctype == "text/event-json" for f in as_json.frames))
        body = next(f for f in as_json.frames if f.ctype == "text/event-json").body
        assert b'"Caller-Caller-ID-Name":"\xc0\xee\xc4\xc8"' in body
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(body)
        with pytest.raises(UnicodeDecodeError):
            body.decode("utf-8")
        event = json.loads(body.decode("latin-1"))  # the bytes are otherwise valid JSON
        assert event["Caller-Caller-ID-Name"].encode("latin-1") == bytes.fromhex(GBK_LI_NA)
        assert event["Unique-ID"] == a
        # api bodies: uuid_dump plain is URL-encoded, json and show channels carry the bytes.
        dump = (await plain.command(f"api uuid_dump {a}")).body
        assert b"Caller-Caller-ID-Name: %C0%EE%C4%C8\n" in dump
        dump_json = (await plain.command(f"api uuid_dump {a} json")).body
        assert b'"Caller-Caller-ID-Name":"\xc0\xee\xc4\xc8"' in dump_json
        rows = (await plain.command("api show channels as json")).body
        assert b'"cid_name":"\xc0\xee\xc4\xc8"' in rows
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(rows)
        assert (await plain.command(f"api uuid_getvar {a} sip_from_display")).body == (
            bytes.fromhex(GBK_LI_NA)
        )
    finally:
        await plain.close()
        await as_json.close()


async def test_utf8_caller_name_stays_valid_json(sim: tuple[Simulator, int]) -> None:
    c = await connect(sim[1], "event json CHANNEL_PARK")
    try:
        a = (await c.api("sim call 12345 13800138000 name=李娜")).split()[1]
        await c.wait(lambda: any(f.ctype == "text/event-json" for f in c.frames))
        event = orjson.loads(next(f for f in c.frames if f.ctype == "text/event-json").body)
        assert event["Unique-ID"] == a
        assert event["Caller-Caller-ID-Name"] == "李娜"
    finally:
        await c.close()


def test_cjson_escapes_like_print_string_ptr() -> None:
    assert cjson_dumps({"a": 'x"\\\n\x01/\x7f'}) == b'{"a":"x\\"\\\\\\n\\u0001/\x7f"}'
    assert cjson_dumps({"n": 2, "l": ["\udcc0"]}) == b'{"n":2,"l":["\xc0"]}'
    assert cjson_dumps({"a": "中"}) == orjson.dumps({"a": "中"})


async def test_freeze_holds_replies_and_events_then_delivers_them(
    sim: tuple[Simulator, int],
) -> None:
    simulator, port = sim
    c = await connect(port)
    control = await connect(port, "event plain HEARTBEAT")
    try:
        a = (await c.api("sim call 12345 13800138000")).split()[1]
        await c.wait_event("CHANNEL_PARK", a)
        assert await control.api("sim freeze 25") == "+OK\n"  # 0.5 s real
        assert simulator.frozen
        before = len(c.frames)
        c.send("api status\n\n")
        assert await control.api(f"sim hangup {a}") == "+OK\n"  # sim controls still answer
        await asyncio.sleep(10 / TIME_SCALE)
        assert len(c.frames) == before  # no reply, no CHANNEL_HANGUP: a hung switch
        assert not c.closed
        await c.wait_event("CHANNEL_HANGUP", a, timeout=5)
        assert not simulator.frozen
        after = [f.ctype for f in c.frames[before:]]
        assert "api/response" in after and "text/event-plain" in after
        assert any(b"UP " in f.body for f in c.frames[before:] if f.ctype == "api/response")
        assert (await c.command("api uuid_exists " + a)).body == b"false"
        assert (await control.api("sim freeze -1")).startswith("-ERR")
    finally:
        await c.close()
        await control.close()


async def test_drop_connections_closes_every_client_and_keeps_the_calls(
    sim: tuple[Simulator, int],
) -> None:
    port = sim[1]
    first = await connect(port)
    second = await connect(port)
    try:
        a = (await first.api("sim call 12345 13800138000")).split()[1]
        await first.wait_event("CHANNEL_PARK", a)
        first.send("api sim drop_connections\n\n")
        await first.wait(lambda: first.closed, 5)
        await second.wait(lambda: second.closed, 5)
        assert not any(f.ctype == "text/disconnect-notice" for f in second.frames)
        third = await connect(port)
        try:
            assert await third.api(f"uuid_exists {a}") == "true"
            assert a in await third.api("show channels as json")
        finally:
            await third.close()
    finally:
        await first.close()
        await second.close()


async def test_hung_up_channels_in_show_and_uuid_dump(client: RawClient) -> None:
    """uuid_dump refuses a hung-up channel at once (switch_core_session_locate); the core
    database row lingers past CHANNEL_DESTROY with its last state and call state."""
    assert await client.api("sim set linger_ms 10000") == "+OK\n"  # 0.2 s real
    a = await parked_call(client)
    await execute(client, a, "answer")
    await client.api(f"uuid_kill {a}")
    await client.wait_event("CHANNEL_HANGUP", a)
    assert await client.api(f"uuid_dump {a}") == "-ERR No such channel!\n"
    assert await client.api(f"uuid_dump {a} json") == "-ERR No such channel!\n"
    assert await client.api(f"uuid_getvar {a} hotline") == "-ERR No such channel!\n"
    assert await client.api(f"uuid_exists {a}") == "false"
    await client.wait_event("CHANNEL_DESTROY", a)
    rows = orjson.loads(await client.api("show channels as json"))["rows"]
    row = next(r for r in rows if r["uuid"] == a)
    assert row["state"] == "CS_EXECUTE" and row["callstate"] == "ACTIVE"
    await asyncio.sleep(11.0 / TIME_SCALE)  # gone linger_ms after CHANNEL_DESTROY
    assert await client.api("show channels as json") == '{"row_count": 0}\n'


async def test_uuid_dump_formats(client: RawClient) -> None:
    a = await parked_call(client)
    txt = await client.api(f"uuid_dump {a}")
    plain = await client.api(f"uuid_dump {a} plain")
    assert "Event-Date-Local: 20" in txt and "%20" in txt  # URL-encoded (switch_event_serialize)
    assert "%20" not in plain.split("Event-Date-GMT")[0] and plain.endswith("\n\n")
    assert orjson.loads(await client.api(f"uuid_dump {a} json"))["Unique-ID"] == a
    assert await client.api("uuid_dump") == "-USAGE: <uuid> [format]\n"
