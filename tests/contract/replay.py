"""Replay a real trace's client commands against the simulator over raw TCP.

How one connection is replayed (:func:`replay_connection`):

1. Connect, wait for ``auth/request``, then for each real command ``k`` in order:
   first send the scenario's set-up commands due before ``k`` (``api sim
   phone ...`` / ``api sim call ...``), then wait until the simulator has sent,
   per stream (leg alias, ``job:<uuid>``, ``sofia:<user>``) and in replies, at
   least as many items as FreeSWITCH had sent before ``k`` in the real trace
   (so ``answer`` is not sent before the caller's CHANNEL_PARK), then
   optionally keep the real pause between commands (scaled by
   ``time_scale``), then send the command with every real leg uuid replaced by
   the simulator's uuid of the same leg (legs pair by CHANNEL_CREATE order;
   uuids inside arguments too, e.g. ``/tmp/rec-<uuid>.wav``,
   ``&eavesdrop(<uuid>)``, ``hotline_call=<uuid>``). The client's own
   ``Event-UUID`` and ``Job-UUID`` values are kept.
2. After the last command, wait until every stream has as many items as the
   real trace has, or the time limit; then read until the server closes
   (after ``exit``), or drop the socket without ``exit`` (``controller_restart``
   connection 1).

A wait that times out does not stop the replay: it is logged (the log is part
of the failure message) and the comparison then reports what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .compare import Race, Timing
from .traces import UUID_RE, Received, Sent, Session, SessionRecorder


@dataclass(frozen=True, slots=True)
class SetupStep:
    """A simulator-only command sent before real command ``before`` (an index into the trace).

    ``{A}`` in ``command`` stands for the simulator's uuid of leg A. With
    ``at_event=(leg, name, n)`` the step waits until the simulator's leg has
    sent as many events as the real leg had before its ``n``-th ``name`` event
    (e.g. the caller's DTMF goes out once the prompt has stopped, as in the
    capture). With ``after_gap`` it goes out after the real pause before
    command ``before`` has been waited out, right before that command (for
    something that happened just before it in the capture, such as an expiry).
    With ``at`` it waits until that moment of the capture (``+<sec>`` in the
    annotated trace, divided by the time scale, from the replay's connect), for
    what a SIPp script did at a fixed time (a citizen pressing ``*``).
    """

    before: int
    command: str
    at_event: tuple[str, str, int] | None = None
    after_gap: bool = False
    #: Not before this moment of the capture (seconds since its start, scaled).
    at: float | None = None


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """How to replay one connection of a scenario."""

    trace: str
    setup: tuple[SetupStep, ...] = ()
    #: Reproduce the real pauses between commands (divided by the time scale).
    keep_gaps: bool = True
    #: Close the socket without ``exit`` at the end (the real controller crashed).
    drop_without_exit: bool = False
    #: Real pause before connecting (seconds, scaled), e.g. the 2 s between restart connections.
    connect_delay: float = 0.0
    #: Real pause after the last expected event before closing (seconds, scaled).
    end_delay: float = 0.0
    #: Replies not compared, as (command index, reason): capture races only, each justified.
    skip_replies: tuple[tuple[int, str], ...] = ()
    #: Timing rules checked on the real and on the simulated session (``compare.Timing``).
    timing: tuple[Timing, ...] = ()
    #: Header values a capture race decided (``compare.Race``), each justified.
    races: tuple[Race, ...] = ()


@dataclass
class ReplayResult:
    """The two sessions of one connection and how the replay went."""

    real: Session
    sim: Session
    #: Per real command: (command, real reply, simulator reply).
    replies: list[tuple[Sent, Received | None, Received | None]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    #: Real uuid -> simulator uuid, for the legs both sides created.
    uuid_map: dict[str, str] = field(default_factory=dict)


class _Client:
    """A raw ESL client: bytes go into a :class:`SessionRecorder`, waiters are woken on change."""

    def __init__(self, recorder: SessionRecorder) -> None:
        self.recorder = recorder
        self.changed = asyncio.Event()
        self.closed = False
        self._t0 = time.monotonic()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def session(self) -> Session:
        return self.recorder.session

    def now(self) -> float:
        return time.monotonic() - self._t0

    async def connect(self, host: str, port: int) -> None:
        self._reader, self._writer = await asyncio.open_connection(host, port)
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        assert self._reader is not None
        try:
            while data := await self._reader.read(65536):
                self.recorder.on_received(data, self.now())
                self.changed.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self.changed.set()

    async def send(self, raw: bytes) -> int:
        """Send one command; returns its index in the simulator session."""
        assert self._writer is not None
        index = len(self.session.sent)
        self.recorder.on_sent(raw, self.now())
        self._writer.write(raw)
        await self._writer.drain()
        return index

    async def wait(self, check: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``check()`` is true (tested on each change), the socket closes, or timeout."""
        deadline = time.monotonic() + timeout
        while not check():
            if self.closed:
                return bool(check())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def close(self, *, abrupt: bool) -> None:
        if self._writer is not None:
            if abrupt:
                transport = self._writer.transport
                transport.abort()
            else:
                self._writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _missing(need: Mapping[str, int], have: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    return {k: (n, have.get(k, 0)) for k, n in need.items() if have.get(k, 0) < n}


def _sim_counts(sim: Session, setup_replies: int) -> dict[str, int]:
    counts = sim.counts()
    counts["replies"] = counts.get("replies", 0) - setup_replies
    return counts


def _substitute(raw: bytes, uuid_map: Mapping[str, str]) -> bytes:
    text = raw.decode("utf-8")
    return UUID_RE.sub(lambda m: uuid_map.get(m.group(0), m.group(0)), text).encode("utf-8")


async def replay_connection(
    plan: ConnectionPlan,
    real: Session,
    host: str,
    port: int,
    *,
    time_scale: float,
    sim_known_legs: Mapping[str, str] | None = None,
    min_wait: float = 3.0,
) -> ReplayResult:
    """Replay ``real``'s commands against the simulator at ``host:port`` (see the module doc)."""
    recorder = SessionRecorder(real.name + " (simulator)", sim_known_legs)
    client = _Client(recorder)
    result = ReplayResult(real=real, sim=client.session)
    log = result.log
    real_legs = real.legs
    setup = sorted(plan.setup, key=lambda s: s.before)
    setup_sent = 0
    sim_index: list[int] = []

    def timeout_for(gap: float) -> float:
        return min_wait + 3 * gap / time_scale

    if plan.connect_delay:
        await asyncio.sleep(plan.connect_delay / time_scale)
    await client.connect(host, port)
    started = time.monotonic()
    if not await client.wait(lambda: bool(client.session.received), min_wait):
        log.append("no auth/request from the simulator")
    last_send = time.monotonic()

    def uuid_map() -> dict[str, str]:
        sim_by_alias = {alias: uid for uid, alias in client.session.legs.items()}
        return {
            uid: sim_by_alias[alias] for uid, alias in real_legs.items() if alias in sim_by_alias
        }

    async def wait_counts(need: Mapping[str, int], what: str, timeout: float) -> None:
        def done() -> bool:
            return not _missing(need, _sim_counts(client.session, setup_sent))

        if not await client.wait(done, timeout):
            missing = _missing(need, _sim_counts(client.session, setup_sent))
            detail = ", ".join(f"{k}: {have}/{n}" for k, (n, have) in missing.items())
            log.append(f"{what}: gave up after {timeout:.1f} s waiting for ({detail})")

    async def wait_leg_events(step: SetupStep) -> None:
        assert step.at_event is not None
        leg, name, n = step.at_event
        real_leg = real.per_leg().get(leg, [])
        hits = [i for i, e in enumerate(real_leg) if e.name == name]
        if len(hits) <= n:
            raise ValueError(f"set-up `{step.command}`: the real leg {leg} has no {name} #{n}")
        await wait_counts({leg: hits[n]}, f"set-up `{step.command}`", timeout_for(1.0))

    async def send_setup(k: int, *, after_gap: bool) -> None:
        nonlocal setup_sent
        while (
            setup_sent < len(setup)
            and setup[setup_sent].before <= k
            and setup[setup_sent].after_gap == after_gap
        ):
            step = setup[setup_sent]
            if step.at_event is not None:
                await wait_leg_events(step)
            if step.at is not None:
                delay = started + step.at / time_scale - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            before_replies = sum(1 for r in client.session.received if r.is_reply)
            command = step.command
            for alias, uid in {a: u for u, a in client.session.legs.items()}.items():
                command = command.replace("{" + alias + "}", uid)
            await client.send(command.encode("utf-8") + b"\n\n")
            setup_sent += 1

            def replied(n: int = before_replies) -> bool:
                return sum(1 for r in client.session.received if r.is_reply) > n

            ok = await client.wait(replied, min_wait)
            if not ok:
                log.append(f"set-up `{step.command}`: no reply")
            else:
                reply = [r for r in client.session.received if r.is_reply][-1]
                text = getattr(reply.message, "body", None) or getattr(
                    reply.message, "reply_text", ""
                )
                if not str(text).startswith("+OK"):
                    log.append(f"set-up `{step.command}` -> {str(text).strip()!r}")

    for cmd in real.sent:
        k = cmd.index
        gap = cmd.t - real.sent[k - 1].t if k else 0.0
        await send_setup(k, after_gap=False)
        await wait_counts(real.seen_before(k), f"before #{k} `{cmd.line[:60]}`", timeout_for(gap))
        if plan.keep_gaps and k:
            delay = last_send + gap / time_scale - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await send_setup(k, after_gap=True)
        if client.closed:
            log.append(f"before #{k} `{cmd.line[:60]}`: the simulator closed the connection")
            break
        mapping = uuid_map()
        raw = _substitute(cmd.raw, mapping)
        # A uuid the client gives a new leg (`origination_uuid=`) names no leg yet: sent as is.
        named = set(re.findall(r"origination_uuid=(" + UUID_RE.pattern + ")", cmd.text))
        unmapped = [
            u
            for u in UUID_RE.findall(cmd.text)
            if u in real_legs and u not in mapping and u not in named
        ]
        if unmapped:
            log.append(f"#{k} `{cmd.line[:60]}`: no simulator leg for {unmapped}")
        sim_index.append(await client.send(raw))
        last_send = time.monotonic()

    span = (real.received[-1].t - real.sent[-1].t) if real.received and real.sent else 0.0
    await wait_counts(real.counts(), "after the last command", timeout_for(max(span, 1.0)))
    if plan.end_delay:
        await asyncio.sleep(plan.end_delay / time_scale)
    if plan.drop_without_exit:
        await client.close(abrupt=True)
    else:
        if not await client.wait(lambda: client.closed, min_wait):
            log.append("the simulator did not close the connection after `exit`")
        await client.close(abrupt=False)

    result.uuid_map = uuid_map()
    # Replies are in command order on one connection: the n-th reply answers the n-th command
    # (set-up commands included, hence the index of each replayed command in the sim session).
    sim_replies = [r for r in client.session.received if r.is_reply]
    for k, (cmd, real_reply) in enumerate(real.replies()):
        at = sim_index[k] if k < len(sim_index) else len(sim_replies)
        sim_reply = sim_replies[at] if at < len(sim_replies) else None
        result.replies.append((cmd, real_reply, sim_reply))
    return result


def describe(results: Sequence[ReplayResult]) -> str:
    """The replay logs and uuid maps, for failure messages."""
    lines: list[str] = []
    for r in results:
        lines.append(f"replay of {r.real.name}:")
        lines += [f"  {line}" for line in r.log] or ["  (no waits timed out)"]
        legs = {r.real.legs.get(u, "?"): s for u, s in r.uuid_map.items()}
        lines.append(f"  legs: {legs}")
    return "\n".join(lines)
