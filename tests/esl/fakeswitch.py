"""A small fake FreeSWITCH event socket for transport tests: asyncio + ``telephony.esl.serialize``.

It speaks the real wire protocol (auth/request, command/reply, api/response,
events in the subscribed format, BACKGROUND_JOB, disconnect-notice) and lets
a test script every answer through ``on_command``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping

from telephony.esl import serialize
from telephony.esl.messages import Malformed
from telephony.esl.parser import Command, CommandParser


class Session:
    """One client connection as the fake switch sees it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.fmt = "plain"
        self.authenticated = False
        self.subscribed = asyncio.Event()
        self.closed = asyncio.Event()

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def event(self, headers: Mapping[str, str], body: str | None = None) -> None:
        """Send an event in the format the client subscribed with."""
        make = serialize.event_json if self.fmt == "json" else serialize.event_plain
        self.send(make(headers, body))

    def event_bytes(self, headers: Mapping[str, str], body: str | None = None) -> bytes:
        make = serialize.event_json if self.fmt == "json" else serialize.event_plain
        return make(headers, body)

    def drop(self) -> None:
        """Close the socket abruptly (no disconnect-notice)."""
        self.writer.close()


Handler = Callable[[Command, Session], Awaitable[bool]]


class FakeSwitch:
    """Listens on 127.0.0.1; replies ``+OK`` to everything unless ``on_command`` handles it."""

    def __init__(self, password: str = "ClueCon") -> None:
        self.password = password
        self.port = 0
        self.commands: list[Command] = []
        self.sessions: list[Session] = []
        self.on_command: Handler | None = None
        self.new_session = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"esl://:{self.password}@127.0.0.1:{self.port}"

    def url_with(self, password: str) -> str:
        return f"esl://:{password}@127.0.0.1:{self.port}"

    @property
    def session(self) -> Session:
        """The latest client connection."""
        return self.sessions[-1]

    def lines(self, name: str) -> list[str]:
        """Command lines received whose command is ``name``."""
        return [c.line for c in self.commands if c.name == name]

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in self.sessions:
                session.drop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        self.sessions.append(session)
        self.new_session.set()
        session.send(serialize.auth_request())
        parser = CommandParser()
        try:
            while data := await reader.read(65536):
                parser.feed(data)
                for command in parser.commands():
                    if isinstance(command, Malformed):
                        continue
                    self.commands.append(command)
                    await self._handle(command, session)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            session.closed.set()
            writer.close()

    async def _handle(self, command: Command, session: Session) -> None:
        name = command.name
        if name == "auth":
            if command.arg == self.password:
                session.authenticated = True
                session.send(serialize.command_reply("+OK accepted"))
            else:
                session.send(serialize.command_reply("-ERR invalid"))
                session.send(serialize.disconnect_notice())
                session.drop()
            return
        if self.on_command is not None and await self.on_command(command, session):
            return
        if name == "event":
            session.fmt = command.arg.split(" ", 1)[0]
            session.send(serialize.command_reply(f"+OK event listener enabled {session.fmt}"))
            session.subscribed.set()
        elif name == "api":
            session.send(serialize.api_response("+OK\n"))
        elif name == "bgapi":
            job = command.headers.get("Job-UUID", "")
            session.send(serialize.command_reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)]))
        elif name == "exit":
            session.send(serialize.command_reply("+OK bye"))
            session.send(serialize.disconnect_notice())
            session.drop()
        else:
            session.send(serialize.command_reply("+OK"))


def background_job(job_uuid: str, command: str = "originate") -> dict[str, str]:
    """Headers of a BACKGROUND_JOB (its body is passed separately)."""
    return {
        "Event-Name": "BACKGROUND_JOB",
        "Core-UUID": "c0de",
        "Job-UUID": job_uuid,
        "Job-Command": command,
        "Job-Command-Arg": "user/1001 &park()",
    }


def execute_complete(
    channel: str, app: str, app_uuid: str, response: str = "FILE PLAYED"
) -> dict[str, str]:
    return {
        "Event-Name": "CHANNEL_EXECUTE_COMPLETE",
        "Unique-ID": channel,
        "Application": app,
        "Application-Data": "x",
        "Application-Response": response,
        "Application-UUID": app_uuid,
    }


def channel_event(name: str, channel: str, **extra: str) -> dict[str, str]:
    return {"Event-Name": name, "Unique-ID": channel, **extra}
