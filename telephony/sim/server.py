"""The simulator's Event Socket server: connections, subscriptions, filters, dispatch.

Each TCP client gets a :class:`Connection`: ``auth/request`` on connect, then commands
parsed by :class:`telephony.esl.parser.CommandParser`. Replies are byte-exact with
``mod_event_socket`` (``telephony.esl.serialize``). Commands other than ``auth`` and
``exit`` before authentication get no reply at all, as on FreeSWITCH.

Events: :class:`Simulator` is the switch's event sink. It asks each connection whether
it subscribed (``event plain|json NAMES``, ``ALL``, ``CUSTOM subclass...``), builds the
plain and/or JSON bytes once per event and writes them to every interested
connection whose filters (``filter HEADER VALUE``) let it through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal

from telephony.esl.messages import Malformed
from telephony.esl.parser import Command, CommandParser
from telephony.esl.serialize import (
    auth_request,
    command_reply,
    disconnect_notice,
    event_json,
    event_plain,
)
from telephony.sim import api as sim_api
from telephony.sim import wire
from telephony.sim.apps import run_app
from telephony.sim.channel import ExecRequest
from telephony.sim.clock import SimClock
from telephony.sim.dialplan import run_dialplan
from telephony.sim.scripts import Scripts
from telephony.sim.switch import OutEvent, Switch, new_uuid

log = logging.getLogger(__name__)

#: A client that lets this much output pile up is disconnected.
MAX_BACKLOG = 64 * 1024 * 1024


_LINE_CACHE: dict[tuple[str, str], str] = {}
_LINE_CACHE_MAX = 200_000


def event_plain_cached(headers: list[tuple[str, str]], body: str | None = None) -> bytes:
    """:func:`telephony.esl.serialize.event_plain` with the encoded header lines memoised
    across events: a channel's ~150 variables repeat in every one of its events. Values
    holding raw (non-UTF-8) bytes go through :func:`telephony.sim.wire.event_plain`."""
    if len(_LINE_CACHE) > _LINE_CACHE_MAX:
        _LINE_CACHE.clear()
    try:
        return event_plain(headers, body, line_cache=_LINE_CACHE)
    except UnicodeEncodeError:
        return wire.event_plain(headers, body)


def event_json_any(headers: list[tuple[str, str]], body: str | None = None) -> bytes:
    """:func:`telephony.esl.serialize.event_json`, or the raw-bytes form cJSON writes."""
    try:
        return event_json(headers, body)
    except (TypeError, UnicodeEncodeError):
        return wire.event_json(headers, body)


class Connection:
    """One inbound ESL client."""

    def __init__(
        self, sim: Simulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.authed = False
        self.format = "plain"
        self.all_events = False
        self.events: set[str] = set()
        self.custom: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        self.closing = False
        #: Output held while the simulator is frozen (``sim freeze``), sent at the thaw.
        self._held: list[bytes] = []
        self._held_bytes = 0
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    # ---------------------------------------------------------------- events

    def wants(self, name: str, subclass: str | None) -> bool:
        if not self.authed or self.closing:
            return False
        if self.all_events:
            return True
        if name == "CUSTOM":
            return subclass in self.custom
        return name in self.events

    def passes(self, headers: dict[str, str]) -> bool:
        """mod_event_socket's filters (``event_handler``): with none, every event; else
        none, unless a positive filter matches, and a matching negative (``-value``)
        filter drops it at once. Filters are tried in the order added; a value that
        starts with ``/`` is a regular expression, anything else is compared
        case-insensitively; a filter whose header the event lacks is skipped."""
        if not self.filters:
            return True
        send = False
        for name, value in self.filters:
            hval = _header(headers, name)
            if hval is None:
                continue
            comp = value.lstrip("+- ")
            positive = True
            for sign in value[: len(value) - len(comp)]:
                if sign in "+-":
                    positive = sign == "+"
            if send and positive:
                continue
            if not comp:
                continue
            matched = _regex(hval, comp) if value.startswith("/") else hval.lower() == comp.lower()
            if matched:
                if not positive:
                    return False
                send = True
        return send

    def send(self, data: bytes, *, control: bool = False) -> None:
        """Write ``data``; while the simulator is frozen it is held (``control``: the reply
        to an ``api sim`` command, which is never held)."""
        if self.closing or self.writer.is_closing():
            return
        if self.sim.frozen and not control:
            self._held.append(data)
            self._held_bytes += len(data)
            if self._held_bytes > MAX_BACKLOG:
                log.warning("esl client backlog while frozen, dropping", extra={"peer": self.peer})
                self.drop()
            return
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            log.warning("esl client too slow, disconnecting", extra={"peer": self.peer})
            self.closing = True
            self.writer.transport.abort()

    def flush_held(self) -> None:
        held, self._held, self._held_bytes = self._held, [], 0
        for data in held:
            self.send(data)

    def drop(self) -> None:
        """Close the socket at once, without a disconnect-notice (a network break)."""
        self.closing = True
        self._held, self._held_bytes = [], 0
        with contextlib.suppress(Exception):
            self.writer.transport.abort()

    # -------------------------------------------------------------- commands

    async def run(self) -> None:
        parser = CommandParser()
        self.send(auth_request())
        try:
            while not self.closing:
                data = await self.reader.read(65536)
                if not data:
                    break
                parser.feed(data)
                for cmd in parser.commands():
                    if isinstance(cmd, Malformed):
                        log.warning(
                            "malformed esl command",
                            extra={
                                "peer": self.peer,
                                "reason": cmd.reason,
                                "raw": cmd.raw[:200].decode("utf-8", "replace"),
                            },
                        )
                        if self.authed:
                            self.send(command_reply("-ERR command not found"))
                        continue
                    if self.sim.frozen and not _is_sim_api(cmd):
                        await self.sim.thawed()
                        if self.closing:
                            break
                    try:
                        await self.handle(cmd)
                    except Exception:
                        log.exception(
                            "esl command failed",
                            extra={"peer": self.peer, "command": cmd.line[:200]},
                        )
                        self.send(command_reply("-ERR command failed"))
                    if self.closing:
                        break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closing = True
            self.sim.connections.discard(self)
            with contextlib.suppress(Exception):
                self.writer.close()

    async def _bye(self, reply: str) -> None:
        self.send(command_reply(reply))
        self.send(disconnect_notice())
        self.closing = True
        with contextlib.suppress(Exception):
            await self.writer.drain()
        self.writer.close()

    async def handle(self, cmd: Command) -> None:
        line = cmd.line
        name = cmd.name
        if name == "exit" or line.startswith("..."):
            await self._bye("+OK bye")
            return
        if not self.authed:
            if name == "auth":
                if cmd.arg == self.sim.password:
                    self.authed = True
                    self.send(command_reply("+OK accepted"))
                else:
                    await self._bye("-ERR invalid")
            return  # FreeSWITCH answers nothing else before auth
        handler = _COMMANDS.get(name)
        if handler is None:
            self.send(command_reply("-ERR command not found"))
            return
        await handler(self, cmd)

    async def _event(self, cmd: Command) -> None:
        words = cmd.arg.split()
        fmt = "plain"
        if words and words[0].lower() in ("plain", "json", "xml"):
            fmt = words.pop(0).lower()
        if fmt == "xml":
            self.send(command_reply("-ERR xml events are not simulated"))
            return
        self.format = fmt
        custom = False
        for word in words:
            if word.upper() == "ALL":
                self.all_events = True
            elif word.upper() == "CUSTOM":
                custom = True
            elif custom and "::" in word:
                self.custom.add(word)
            else:
                self.events.add(word.upper())
        self.send(command_reply(f"+OK event listener enabled {fmt}"))

    async def _myevents(self, cmd: Command) -> None:
        """``myevents <uuid> [plain|json]``: every event of one channel."""
        words = cmd.arg.split()
        if not words or self.sim.switch.get(words[0]) is None:
            self.send(command_reply("-ERR invalid"))
            return
        self.format = words[1] if len(words) > 1 and words[1] in ("plain", "json") else "plain"
        self.all_events = True
        self.filters.append(("Unique-ID", words[0]))
        self.send(command_reply("+OK Events Enabled"))

    async def _noevents(self, cmd: Command) -> None:
        self.all_events = False
        self.events.clear()
        self.custom.clear()
        self.send(command_reply("+OK no longer listening for events"))

    async def _nixevent(self, cmd: Command) -> None:
        for word in cmd.arg.split():
            if word.upper() == "ALL":
                self.all_events = False
            self.events.discard(word.upper())
            self.custom.discard(word)
        self.send(command_reply("+OK events nixed"))

    async def _filter(self, cmd: Command) -> None:
        arg = cmd.arg.strip()
        if arg.startswith("delete"):
            rest = arg[len("delete") :].strip()
            if rest in ("", "all"):
                self.filters.clear()
                self.send(command_reply("+OK filter deleted."))
                return
            header, _, value = rest.partition(" ")
            self.filters = [
                (k, v)
                for k, v in self.filters
                if not (k.lower() == header.lower() and (not value or v == value))
            ]
            self.send(command_reply(f"+OK filter deleted. [{header}][{value}]"))
            return
        header, sep, value = arg.partition(" ")
        if header.lower() == "add":
            header, sep, value = value.partition(" ")
        if not sep:
            self.send(command_reply("-ERR invalid syntax"))
            return
        self.filters.append((header, value))
        self.send(command_reply(f"+OK filter added. [{header}]=[{value}]"))

    async def _linger(self, cmd: Command) -> None:
        self.send(command_reply("+OK will linger"))

    async def _nolinger(self, cmd: Command) -> None:
        self.send(command_reply("+OK will not linger"))

    async def _log(self, cmd: Command) -> None:
        self.send(command_reply("+OK log level 7 [7]"))

    async def _nolog(self, cmd: Command) -> None:
        self.send(command_reply("+OK no longer logging"))

    async def _api(self, cmd: Command) -> None:
        api_cmd, _, arg = cmd.arg.partition(" ")
        body, after = await sim_api.execute(self.sim.switch, self.sim.scripts, api_cmd, arg)
        self.send(wire.api_response(body), control=api_cmd == "sim")
        if after is not None:
            after()

    async def _bgapi(self, cmd: Command) -> None:
        api_cmd, _, arg = cmd.arg.partition(" ")
        job = cmd.headers.get("Job-UUID") or cmd.headers.get("job-uuid") or new_uuid()
        self.send(command_reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)]))
        self.sim.switch.spawn(self.sim.background_job(job, api_cmd, arg), name=f"bgapi-{job}")

    async def _sendmsg(self, cmd: Command) -> None:
        sw = self.sim.switch
        uid = cmd.arg.strip() or cmd.headers.get("session-id", "")
        ch = sw.get(uid)
        if ch is None:
            self.send(command_reply(f"-ERR invalid session id [{uid}]"))
            return
        h = {k.lower(): v for k, v in cmd.headers.items()}
        command = h.get("call-command", "")
        if command == "execute":
            app = h.get("execute-app-name", "")
            arg = h.get("execute-app-arg", "")
            if not arg and cmd.body and h.get("content-type", "") == "text/plain":
                arg = cmd.body.decode("utf-8", "replace")
            loops = int(h.get("loops", "1")) if h.get("loops", "1").lstrip("-").isdigit() else 1
            app_uuid = h.get("event-uuid") or new_uuid()
            self.send(command_reply("+OK"))
            sw.enqueue(ch, ExecRequest(app, arg, app_uuid, loops))
            return
        if command == "hangup":
            cause = h.get("hangup-cause", "NORMAL_CLEARING")
            self.send(command_reply("+OK"))
            disposition = "send_bye" if ch.answer_state == "answered" else "send_refuse"
            sw.hangup(ch, cause, disposition)
            return
        self.send(command_reply("+OK"))


def _is_sim_api(cmd: Command) -> bool:
    """``api sim ...``: the simulator's own controls still answer while it is frozen."""
    return cmd.name == "api" and cmd.arg.split(" ", 1)[0] == "sim"


_COMMANDS = {
    "event": Connection._event,
    "noevents": Connection._noevents,
    "myevents": Connection._myevents,
    "nixevent": Connection._nixevent,
    "filter": Connection._filter,
    "linger": Connection._linger,
    "nolinger": Connection._nolinger,
    "log": Connection._log,
    "nolog": Connection._nolog,
    "api": Connection._api,
    "bgapi": Connection._bgapi,
    "sendmsg": Connection._sendmsg,
}


class Simulator:
    """The whole simulator: a switch, its scripts, and the ESL server in front of them.

    >>> sim = Simulator(password="ClueCon", time_scale=20)
    >>> port = await sim.start("127.0.0.1", 0)   # doctest: +SKIP
    >>> ... ; await sim.stop()                    # doctest: +SKIP
    """

    def __init__(self, password: str = "ClueCon", *, time_scale: float = 1.0) -> None:
        self.password = password
        self.clock = SimClock(time_scale)
        self.switch = Switch(self.clock, self)
        self.switch.run_app = run_app
        self.switch.run_dialplan = run_dialplan
        self.scripts = Scripts(self.switch)
        self.switch.scripts = self.scripts
        self.switch.controls = self
        self.connections: set[Connection] = set()
        self._thaw_event = asyncio.Event()
        self._thaw_event.set()
        self._thaw_handle: asyncio.TimerHandle | None = None
        self._frozen_until = 0.0
        self._server: asyncio.Server | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------- EventSink

    def wants(self, name: str, subclass: str | None) -> bool:
        return any(c.wants(name, subclass) for c in self.connections)

    def publish(self, event: OutEvent) -> None:
        plain: bytes | None = None
        js: bytes | None = None
        hdict: dict[str, str] | None = None
        for conn in list(self.connections):
            if not conn.wants(event.name, event.subclass):
                continue
            if conn.filters:
                if hdict is None:
                    hdict = dict(event.headers)
                if not conn.passes(hdict):
                    continue
            if conn.format == "json":
                if js is None:
                    js = event_json_any(event.headers, event.body)
                conn.send(js)
            else:
                if plain is None:
                    plain = event_plain_cached(event.headers, event.body)
                conn.send(plain)

    # ------------------------------------------------------------ sim controls

    @property
    def frozen(self) -> bool:
        return not self._thaw_event.is_set()

    async def thawed(self) -> None:
        await self._thaw_event.wait()

    def freeze(self, seconds: float) -> None:
        """``sim freeze``: for ``seconds`` simulated seconds no connection gets a reply or
        an event (they are held, then sent in order); the calls go on. A hung switch
        with its TCP connections still up."""
        loop = asyncio.get_running_loop()
        real = self.clock.real_seconds(seconds)
        until = loop.time() + real
        if self.frozen and until <= self._frozen_until:
            return
        self._frozen_until = until
        self._thaw_event.clear()
        if self._thaw_handle is not None:
            self._thaw_handle.cancel()
        self._thaw_handle = loop.call_later(real, self._thaw)
        log.info("simulator frozen", extra={"seconds": seconds})

    def _thaw(self) -> None:
        self._thaw_handle = None
        self._thaw_event.set()
        for conn in list(self.connections):
            conn.flush_held()
        log.info("simulator thawed")

    def connection_count(self) -> int:
        return len(self.connections)

    def drop_connections(self) -> int:
        """``sim drop_connections``: every ESL connection is closed at once, without a
        disconnect-notice (a network break); the calls stay up."""
        conns = list(self.connections)
        for conn in conns:
            conn.drop()
        return len(conns)

    async def background_job(self, job: str, api_cmd: str, arg: str) -> None:
        body, after = await sim_api.execute(self.switch, self.scripts, api_cmd, arg)
        pre = [("Job-UUID", job), ("Job-Command", api_cmd)]
        if arg:
            pre.append(("Job-Command-Arg", arg))
        self.switch.fire("BACKGROUND_JOB", extra=pre, body=body)
        if after is not None:
            after()

    # ------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port (``port=0`` picks a free one)."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=1 << 20)
        bound = int(self._server.sockets[0].getsockname()[1])
        self.switch.spawn(self.switch.heartbeat(), name="heartbeat")
        log.info(
            "simulator listening",
            extra={"host": host, "port": bound, "time_scale": self.clock.time_scale},
        )
        return bound

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        self.connections.add(conn)
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        try:
            await conn.run()
        except asyncio.CancelledError:
            pass  # stop(): end quietly (asyncio logs a cancelled client task as an error)
        finally:
            if task is not None:
                self._conn_tasks.discard(task)

    async def stop(self) -> None:
        if self._thaw_handle is not None:
            self._thaw_handle.cancel()
            self._thaw_handle = None
        self._thaw_event.set()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.closing = True
            with contextlib.suppress(Exception):
                conn.writer.close()
        for task in list(self._conn_tasks):
            task.cancel()
        await self.switch.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None


def run(host: str, port: int, password: str, *, time_scale: float = 1.0) -> None:
    """Serve until SIGINT/SIGTERM (the ``telephony sim`` command)."""

    async def main() -> None:
        sim = Simulator(password, time_scale=time_scale)
        await sim.start(host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await sim.stop()

    asyncio.run(main())


def _header(headers: dict[str, str], name: str) -> str | None:
    """``switch_event_get_header``: header names compare case-insensitively."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _regex(value: str, expression: str) -> bool:
    """``switch_regex``: ``/pattern/flags`` (``i`` ignores case), searched, not anchored."""
    body = expression[1:]
    flags = 0
    if "/" in body:
        body, _, opts = body.rpartition("/")
        if "i" in opts:
            flags |= re.IGNORECASE
    try:
        return re.search(body, value, flags) is not None
    except re.error:
        return False
