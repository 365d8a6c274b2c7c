"""The transport (both wires: the loop's own socket, greenswitch) against a fake event socket."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Callable

import pytest

from telephony.esl import serialize
from telephony.esl.gevent_thread import shared_thread
from telephony.esl.messages import Event
from telephony.esl.parser import Command
from telephony.esl.port import (
    EslAuthError,
    EslChannelGone,
    EslCommandError,
    EslConnectError,
    EslDisconnected,
    EslTimeout,
    NodeAddress,
    NodeConnected,
    NodeDisconnected,
    SwitchEvent,
    SwitchPort,
    parse_nodes,
)
from telephony.esl.transport import Backoff, EslConnection, EventStream, Timeouts

from .fakeswitch import FakeSwitch, Session, background_job, channel_event, execute_complete

CALLER = "e0136acb-966a-4231-8574-d22bd659f5eb"
FAST = Backoff(initial=0.05, maximum=0.2)


def _gevent_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "esl-gevent" and t.is_alive()]


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def _next(stream: EventStream, timeout: float = 5.0) -> SwitchEvent:
    async with asyncio.timeout(timeout):
        return await anext(stream)


async def _next_event(stream: EventStream, timeout: float = 5.0) -> Event:
    item = await _next(stream, timeout)
    assert isinstance(item, Event), item
    return item


@pytest.fixture
async def switch() -> AsyncIterator[FakeSwitch]:
    server = FakeSwitch()
    await server.start()
    yield server
    await server.stop()


def _connection(switch: FakeSwitch, **options: object) -> EslConnection:
    options.setdefault("backoff", FAST)
    options.setdefault("timeouts", Timeouts(connect=2.0, command=2.0, bgapi=2.0, execute=2.0))
    return EslConnection(switch.url, **options)  # type: ignore[arg-type]


@pytest.fixture(params=["json", "plain"])
async def conn(request: pytest.FixtureRequest, switch: FakeSwitch) -> AsyncIterator[EslConnection]:
    connection = _connection(switch, event_format=request.param)
    await connection.connect()
    yield connection
    await connection.close()
    assert not _gevent_threads()


def test_the_connection_is_a_switch_port() -> None:
    port: SwitchPort = EslConnection("esl://:x@127.0.0.1:1")
    assert port.node == "127.0.0.1:1"
    assert not port.connected


async def test_connect_authenticates_and_subscribes(switch: FakeSwitch) -> None:
    connection = _connection(switch, events=["CHANNEL_PARK", "sofia::register"])
    stream = connection.events()
    await connection.connect()
    try:
        assert connection.connected
        assert isinstance(await _next(stream), NodeConnected)
        (line,) = switch.lines("event")
        names = line.split()[2:]
        assert line.startswith("event json ")
        # ours first, then what the connection needs itself, then CUSTOM and its subclasses
        assert names[0] == "CHANNEL_PARK"
        assert {"BACKGROUND_JOB", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP_COMPLETE"} <= set(
            names
        )
        assert "CHANNEL_DESTROY" not in names  # HANGUP_COMPLETE always comes first
        assert names[-2:] == ["CUSTOM", "sofia::register"]
    finally:
        await connection.close()


async def test_api_round_trip(conn: EslConnection, switch: FakeSwitch) -> None:
    async def on_command(command: Command, session: Session) -> bool:
        if command.line == "api status":
            session.send(serialize.api_response("UP 0 years, 0 days\nready"))
            return True
        return False

    switch.on_command = on_command
    response = await conn.api("status")
    assert response.body == "UP 0 years, 0 days\nready"
    assert switch.commands[-1].line == "api status"


async def test_api_err_raises_with_the_text_unless_unchecked(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    async def on_command(command: Command, session: Session) -> bool:
        session.send(serialize.api_response("-ERR No such channel!\n"))
        return True

    switch.on_command = on_command
    with pytest.raises(EslCommandError) as info:
        await conn.api("uuid_kill", CALLER)
    assert info.value.reply == "-ERR No such channel!"
    response = await conn.api("uuid_kill", CALLER, check=False)
    assert not response.ok


async def test_bgapi_is_resolved_by_its_own_background_job(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    async def on_command(command: Command, session: Session) -> bool:
        if command.name != "bgapi":
            return False
        job = command.headers["Job-UUID"]
        session.send(serialize.command_reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)]))
        session.event(background_job("someone-elses-job"), "+OK not-ours\n")
        await asyncio.sleep(0.05)
        session.event(background_job(job), "+OK 0f2c-agent-leg\n")
        return True

    switch.on_command = on_command
    event = await conn.bgapi("originate", "user/1001", "&park()")
    assert event.body == "+OK 0f2c-agent-leg\n"
    sent = switch.commands[-1]
    assert sent.line == "bgapi originate user/1001 &park()"
    assert event.job_uuid == sent.headers["Job-UUID"]


async def test_bgapi_job_that_overtakes_its_command_reply(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    async def on_command(command: Command, session: Session) -> bool:
        if command.name != "bgapi":
            return False
        job = command.headers["Job-UUID"]
        session.send(
            session.event_bytes(background_job(job), "-ERR NO_ANSWER\n")
            + serialize.command_reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)])
        )
        return True

    switch.on_command = on_command
    event = await conn.bgapi("originate", "user/1003", "&park()")
    assert event.body == "-ERR NO_ANSWER\n"


async def test_bgapi_refused_raises_command_error(conn: EslConnection, switch: FakeSwitch) -> None:
    async def on_command(command: Command, session: Session) -> bool:
        if command.name != "bgapi":
            return False
        session.send(serialize.command_reply("-ERR unknown command"))
        return True

    switch.on_command = on_command
    with pytest.raises(EslCommandError, match="unknown command"):
        await conn.bgapi("nonsense")


async def test_execute_is_matched_by_application_uuid_not_app_name(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    sent: list[Command] = []

    async def on_command(command: Command, session: Session) -> bool:
        if command.name == "sendmsg":
            sent.append(command)
        return False

    switch.on_command = on_command
    first = asyncio.create_task(conn.execute(CALLER, "playback", "hold.wav"))
    second = asyncio.create_task(conn.execute(CALLER, "playback", "prompt.wav"))
    await _until(lambda: len(sent) == 2)
    by_arg = {c.headers["execute-app-arg"]: c.headers["Event-UUID"] for c in sent}
    session = switch.session
    # A dialplan playback (random Application-UUID) and the second one complete first.
    session.event(execute_complete(CALLER, "playback", "dialplan-random-uuid"))
    session.event(execute_complete(CALLER, "playback", by_arg["prompt.wav"]))
    done = await asyncio.wait_for(second, 5)
    assert done.application_uuid == by_arg["prompt.wav"]
    await asyncio.sleep(0.05)
    assert not first.done()
    session.event(execute_complete(CALLER, "playback", by_arg["hold.wav"], "PLAYBACK ERROR"))
    assert (await asyncio.wait_for(first, 5)).application_response == "PLAYBACK ERROR"
    assert sent[0].headers["call-command"] == "execute"
    assert sent[0].line == f"sendmsg {CALLER}"


async def test_execute_fails_when_the_channel_ends_without_completion(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    async def on_command(command: Command, session: Session) -> bool:
        if command.name != "sendmsg":
            return False
        session.send(serialize.command_reply("+OK"))
        session.event(channel_event("CHANNEL_HANGUP", CALLER))  # not yet the end
        session.event(channel_event("CHANNEL_HANGUP_COMPLETE", "another-channel"))
        session.event(channel_event("CHANNEL_HANGUP_COMPLETE", CALLER))
        return True

    switch.on_command = on_command
    with pytest.raises(EslChannelGone) as info:
        await conn.execute(CALLER, "play_and_get_digits", "1 1 3 5000 # a.wav b.wav digit \\d")
    assert info.value.event is not None and info.value.event.name == "CHANNEL_HANGUP_COMPLETE"


async def test_a_channel_that_ends_before_the_sendmsg_reply_leaves_no_unseen_error(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    """Under load the hang-up can come before the reply: what it says is raised (the
    channel is gone, EslChannelGone, as the port defines it), the -ERR that follows is
    dropped, and no error is left unseen (no 'exception was never retrieved')."""

    async def on_command(command: Command, session: Session) -> bool:
        if command.name != "sendmsg":
            return False
        session.event(channel_event("CHANNEL_HANGUP_COMPLETE", CALLER))
        session.send(serialize.command_reply("-ERR invalid session id [gone]"))
        return True

    switch.on_command = on_command
    unseen: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unseen.append(context))
    try:
        with pytest.raises(EslChannelGone):
            await conn.execute(CALLER, "playback", "a.wav")
        await conn.api("status")  # the -ERR has been read (the FIFO is past it)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert unseen == []


async def test_execute_refused_by_sendmsg(conn: EslConnection, switch: FakeSwitch) -> None:
    async def on_command(command: Command, session: Session) -> bool:
        if command.name != "sendmsg":
            return False
        session.send(serialize.command_reply("-ERR invalid session id [nope]"))
        return True

    switch.on_command = on_command
    with pytest.raises(EslCommandError, match="invalid session id"):
        await conn.execute("nope", "answer")


async def test_hangup_sends_sendmsg_hangup(conn: EslConnection, switch: FakeSwitch) -> None:
    await conn.hangup(CALLER, "USER_BUSY")
    command = switch.commands[-1]
    assert command.line == f"sendmsg {CALLER}"
    assert command.headers == {"call-command": "hangup", "hangup-cause": "USER_BUSY"}


async def test_timeout_keeps_later_replies_matched(conn: EslConnection, switch: FakeSwitch) -> None:
    held: list[Session] = []

    async def on_command(command: Command, session: Session) -> bool:
        if command.line == "api slow":
            held.append(session)
            return True
        if command.line == "api fast":
            # The late reply of "slow" comes first, then the one of "fast".
            session.send(serialize.api_response("slow result"))
            session.send(serialize.api_response("fast result"))
            return True
        return False

    switch.on_command = on_command
    with pytest.raises(EslTimeout):
        await conn.api("slow", timeout=0.2)
    assert isinstance(EslTimeout("x"), TimeoutError)
    assert (await conn.api("fast")).body == "fast result"
    assert conn.connected


async def test_execute_and_bgapi_time_out_and_forget_their_correlation(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    with pytest.raises(EslTimeout):
        await conn.execute(CALLER, "playback", "long.wav", timeout=0.2)
    with pytest.raises(EslTimeout):
        await conn.bgapi("originate", "user/1001", "&park()", timeout=0.2)
    assert not conn._executes and not conn._executes_by_channel and not conn._jobs
    # a completion that comes too late is ignored
    (sendmsg,) = [c for c in switch.commands if c.name == "sendmsg"]
    stream = conn.events()
    switch.session.event(execute_complete(CALLER, "playback", sendmsg.headers["Event-UUID"]))
    assert (await _next_event(stream)).name == "CHANNEL_EXECUTE_COMPLETE"


async def test_a_cancelled_call_leaves_the_connection_usable(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    async def on_command(command: Command, session: Session) -> bool:
        if command.line == "api slow":
            await asyncio.sleep(0.2)
            session.send(serialize.api_response("late"))
            return True
        return False

    switch.on_command = on_command
    task = asyncio.create_task(conn.api("slow"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await conn.api("status")).body == "+OK\n"


async def test_drop_fails_pending_calls_then_reconnects_and_resubscribes(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    stream = conn.events()

    async def on_command(command: Command, session: Session) -> bool:
        if command.line == "api hang":
            session.drop()
            return True
        return False

    switch.on_command = on_command
    job = asyncio.create_task(conn.bgapi("originate", "user/1001", "&park()"))
    execute = asyncio.create_task(conn.execute(CALLER, "playback", "x.wav"))
    await _until(lambda: len(switch.lines("sendmsg")) == 1)
    with pytest.raises(EslDisconnected) as info:
        await conn.api("hang")
    assert info.value.sent
    for task in (job, execute):
        with pytest.raises(EslDisconnected):
            await asyncio.wait_for(task, 5)
    assert isinstance(await _next(stream), NodeDisconnected)
    connected = await _next(stream)
    assert isinstance(connected, NodeConnected) and connected.reconnect
    assert conn.connected
    await conn.connect()  # already up again: no second connection
    assert len(switch.lines("auth")) == 2
    assert len(switch.lines("event")) == 2
    assert (await conn.api("status")).body == "+OK\n"
    # originate was not sent again
    assert len(switch.lines("bgapi")) == 1


async def test_calls_while_disconnected_fail_at_once_unsent(switch: FakeSwitch) -> None:
    connection = _connection(switch, reconnect=False)
    await connection.connect()
    try:
        switch.session.drop()
        await _until(lambda: not connection.connected)
        with pytest.raises(EslDisconnected) as info:
            await connection.api("status")
        assert info.value.sent is False
    finally:
        await connection.close()


async def test_malformed_frames_are_skipped(conn: EslConnection, switch: FakeSwitch) -> None:
    stream = conn.events()
    session = switch.session
    session.send(b"Content-Length: 12x\nContent-Type: text/event-plain\n\n")
    session.send(b"this is not a header line\n\n")
    session.send(b"Content-Length: 9\nContent-Type: text/event-json\n\n{not json")
    # a bad header block whose body has no newline: the body is skipped, not read as headers
    session.send(b'Content-Length: 9\nContent-Type: text/event-json\nno colon\n\n{"a":"b"}')
    session.event(channel_event("CHANNEL_PARK", CALLER))
    session.event(channel_event("CHANNEL_ANSWER", CALLER))
    event = await _next_event(stream)
    assert event.name == "CHANNEL_PARK" and event.unique_id == CALLER
    assert (await _next_event(stream)).name == "CHANNEL_ANSWER"
    assert (await conn.api("status")).ok


async def test_unsubscribed_names_are_not_delivered(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    stream = conn.events()
    switch.session.event(channel_event("HEARTBEAT", ""))
    switch.session.event(channel_event("CHANNEL_CREATE", CALLER))
    assert (await _next_event(stream)).name == "CHANNEL_CREATE"


@pytest.mark.parametrize("fmt", ["plain", "json"])
async def test_encoded_newline_in_caller_name_cannot_forge_unique_id(
    switch: FakeSwitch, fmt: str
) -> None:
    connection = _connection(switch, event_format=fmt)
    stream = connection.events()
    await connection.connect()
    try:
        evil = "Zhang\nUnique-ID: evil"
        wire = serialize.event_plain({"Caller-Caller-ID-Name": evil})
        if fmt == "plain":
            assert b"Zhang%0AUnique-ID%3A%20evil" in wire
        switch.session.event(
            channel_event("CHANNEL_PARK", CALLER, **{"Caller-Caller-ID-Name": evil})
        )
        await _next(stream)  # NodeConnected
        event = await _next_event(stream)
        assert event.unique_id == CALLER
        assert event.get("Caller-Caller-ID-Name") == evil
    finally:
        await connection.close()


async def test_wrong_password_is_a_clear_error(switch: FakeSwitch) -> None:
    connection = EslConnection(switch.url_with("wrong"), reconnect=False)
    with pytest.raises(EslAuthError):
        await connection.connect()
    assert not connection.connected
    await connection.close()
    assert not _gevent_threads()


async def test_nobody_listening_is_a_connect_error() -> None:
    server = FakeSwitch()
    port = await server.start()
    await server.stop()
    connection = EslConnection(f"esl://:ClueCon@127.0.0.1:{port}")
    with pytest.raises(EslConnectError):
        await connection.connect(timeout=2.0)
    await connection.close()


async def test_connect_times_out_when_no_auth_request_comes() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = EslConnection(f"esl://:ClueCon@127.0.0.1:{port}")
    try:
        with pytest.raises(EslTimeout):
            await connection.connect(timeout=0.3)
        assert not _gevent_threads()
    finally:
        await connection.close()
        server.close()


@pytest.mark.wire("greenswitch")
async def test_close_joins_the_gevent_thread(switch: FakeSwitch) -> None:
    connection = _connection(switch)
    stream = connection.events()
    await connection.connect()
    hub = connection.hub
    assert hub is not None and hub.thread is not None
    thread = hub.thread
    assert thread.is_alive()
    await connection.close()
    assert not thread.is_alive()
    assert shared_thread() is None
    assert not _gevent_threads()
    assert switch.lines("exit") == ["exit"]
    assert [type(item) for item in stream.drain()] == [NodeConnected]
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


@pytest.mark.wire("greenswitch")
async def test_two_nodes_share_one_gevent_thread() -> None:
    first, second = FakeSwitch(), FakeSwitch()
    await first.start()
    await second.start()
    connections = [_connection(first), _connection(second)]
    try:
        for connection in connections:
            await connection.connect()
        assert len(_gevent_threads()) == 1
        assert connections[0].hub is connections[1].hub
        await connections[0].close()
        assert len(_gevent_threads()) == 1
        assert (await connections[1].api("status")).ok
    finally:
        for connection in connections:
            await connection.close()
        await first.stop()
        await second.stop()
    assert not _gevent_threads()


def test_parse_nodes() -> None:
    assert parse_nodes() == [NodeAddress("127.0.0.1", 8021, "ClueCon")]
    assert parse_nodes("esl://:s3cr%40t@fs1.example:8022, esl://fs2.example") == [
        NodeAddress("fs1.example", 8022, "s3cr@t"),
        NodeAddress("fs2.example", 8021, "ClueCon"),
    ]
    assert parse_nodes("esl://:pw@[::1]:9000")[0].name == "[::1]:9000"
    for bad in ("http://x", "esl://", "", "esl://:pw@host:notaport", "esl://h/path"):
        with pytest.raises(ValueError):
            parse_nodes(bad)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.5)
    for attempt, base in enumerate([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        delays = {backoff.delay(attempt) for _ in range(20)}
        assert all(base * 0.5 <= d <= base for d in delays)
        assert len(delays) > 1


async def test_connect_during_a_reconnect_waits_for_it(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    switch.session.drop()
    await _until(lambda: not conn.connected)
    await conn.connect(timeout=5.0)
    assert conn.connected
    await asyncio.sleep(0.1)
    assert len(switch.lines("auth")) == 2


async def test_invalid_utf8_in_an_event_does_not_kill_the_connection(
    switch: FakeSwitch,
) -> None:
    connection = _connection(switch, event_format="plain")
    stream = connection.events()
    await connection.connect()
    try:
        body = b"Event-Name: CHANNEL_PARK\nUnique-ID: " + CALLER.encode()
        body += b"\nCaller-Caller-ID-Name: caf\xe9\n\n"
        switch.session.send(
            b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body
        )
        await _next(stream)  # NodeConnected
        event = await _next_event(stream)
        assert event.unique_id == CALLER
        assert event.get("Caller-Caller-ID-Name") == "caf\ufffd"
        assert (await connection.api("status")).ok
    finally:
        await connection.close()


async def test_no_file_descriptor_leaks_over_reconnects(switch: FakeSwitch) -> None:
    import os

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    connection = _connection(switch)
    await connection.connect()
    await connection.close()
    before = fds()
    for _ in range(5):
        connection = _connection(switch)
        await connection.connect()
        auths = len(switch.lines("auth"))
        switch.session.drop()
        await _until(lambda n=auths: len(switch.lines("auth")) == n + 1)  # type: ignore[misc]
        await _until(lambda c=connection: c.connected)  # type: ignore[misc]
        await connection.close()
    await asyncio.sleep(0.1)
    assert fds() <= before + 2


async def test_many_concurrent_calls_each_get_their_own_reply(
    conn: EslConnection, switch: FakeSwitch
) -> None:
    async def on_command(command: Command, session: Session) -> bool:
        if command.name == "api":
            session.send(serialize.api_response(command.arg))
            return True
        return False

    switch.on_command = on_command
    replies = await asyncio.gather(*(conn.api("uuid_exists", str(i)) for i in range(500)))
    assert [r.body for r in replies] == [f"uuid_exists {i}" for i in range(500)]


@pytest.mark.parametrize("fmt", ["json", "plain"])
async def test_a_gbk_caller_name_does_not_lose_the_event(switch: FakeSwitch, fmt: str) -> None:
    """FreeSWITCH passes a GBK caller-ID name through as raw bytes (JSON) or %-escapes (plain)."""
    connection = _connection(switch, event_format=fmt)
    stream = connection.events()
    await connection.connect()
    try:
        gbk = "李娜".encode("gbk")
        if fmt == "json":
            body = b'{"Event-Name":"CHANNEL_PARK","Unique-ID":"%s",' % CALLER.encode()
            body += b'"Caller-Caller-ID-Name":"' + gbk + b'","variable_hotline":"12345"}'
        else:
            body = b"Event-Name: CHANNEL_PARK\nUnique-ID: %s\n" % CALLER.encode()
            body += b"Caller-Caller-ID-Name: " + b"".join(b"%%%02X" % b for b in gbk)
            body += b"\nvariable_hotline: 12345\n\n"
        switch.session.send(
            b"Content-Length: %d\nContent-Type: text/event-%s\n\n" % (len(body), fmt.encode())
            + body
        )
        switch.session.event(channel_event("CHANNEL_HANGUP_COMPLETE", CALLER))
        await _next(stream)  # NodeConnected
        park = await _next_event(stream, timeout=2.0)
        assert park.name == "CHANNEL_PARK" and park.unique_id == CALLER
        assert park.variable("hotline") == "12345"
        assert park.get("Caller-Caller-ID-Name") == gbk.decode("utf-8", errors="replace")
        assert (await _next_event(stream)).name == "CHANNEL_HANGUP_COMPLETE"
    finally:
        await connection.close()
