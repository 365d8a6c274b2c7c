"""A fake ESL server that plays a real trace back: the replay driver's own test double.

Connection ``i`` plays session ``i``. It sends the bytes FreeSWITCH had sent
before the first command, then, after each real command it reads, the bytes
FreeSWITCH had sent before the next one. ``api sim ...`` set-up commands get
``+OK`` and are otherwise ignored. Every leg uuid is replaced by a fresh one
of the same length (so ``Content-Length`` stays right) in what it sends, and
it checks that each command it reads is the real command with those fresh
uuids: so the driver's uuid mapping is tested too.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Sequence

from telephony.esl import serialize
from telephony.esl.parser import Command, CommandParser

from .traces import UUID_RE, Session


class TracePlaybackServer:
    """Plays ``sessions`` (one per accepted connection, in order) with renamed leg uuids
    (but a uuid the client chose for a new leg, ``origination_uuid=``, is kept, as the
    switch keeps it)."""

    def __init__(self, sessions: Sequence[Session]) -> None:
        self.sessions = list(sessions)
        self.rename: dict[str, str] = {}
        chosen = {
            m.group(1)
            for session in self.sessions
            for cmd in session.sent
            for m in re.finditer(r"origination_uuid=(" + UUID_RE.pattern + ")", cmd.text)
        }
        for session in self.sessions:
            for uid in session.legs:
                self.rename.setdefault(uid, uid if uid in chosen else str(uuid.uuid4()))
        self.mismatches: list[str] = []
        self._server: asyncio.Server | None = None
        self._next = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _renamed(self, data: bytes) -> bytes:
        text = data.decode("utf-8")
        return UUID_RE.sub(lambda m: self.rename.get(m.group(0), m.group(0)), text).encode()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            session = self.sessions[self._next]
            self._next += 1
            await self._play(session, reader, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _play(
        self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        def send_due(sent: int) -> None:
            for before, data in session.chunks:
                if before == sent:
                    writer.write(self._renamed(data))

        send_due(0)
        await writer.drain()
        parser = CommandParser()
        done = 0
        while done < len(session.sent):
            data = await reader.read(65536)
            if not data:
                return
            parser.feed(data)
            for cmd in parser.commands():
                if not isinstance(cmd, Command):
                    self.mismatches.append(f"{session.name}: malformed command {cmd}")
                    continue
                if cmd.line.startswith("api sim "):
                    writer.write(serialize.api_response("+OK\n"))
                    continue
                expected = self._renamed(session.sent[done].raw).decode().rstrip("\n")
                got = "\n".join([cmd.line, *(f"{k}: {v}" for k, v in cmd.headers.items())])
                if got != expected:
                    self.mismatches.append(
                        f"{session.name} #{done}: got {got!r}, want {expected!r}"
                    )
                done += 1
                send_due(done)
            await writer.drain()
        await writer.drain()
        if session.sent and session.sent[-1].line == "exit":
            return  # FreeSWITCH closes the socket after `+OK bye` and the disconnect-notice
        with contextlib.suppress(ConnectionError, OSError):
            await reader.read()  # a dropped controller: wait for it to go
