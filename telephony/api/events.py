"""``WS /v1/events``: live events for the token's scope (the agent console, wallboards).

Protocol (JSON text frames; ``telephony.live`` makes the events)
-----------------------------------------------------------------
1. Authenticate with the ``token`` query parameter, an ``Authorization: Bearer``
   header, or, the better choice for a browser (a URL may be logged), a first
   message ``{"token": "...", "since": N, "epoch": "..."}`` sent within
   ``AUTH_TIMEOUT_S`` seconds. ``since`` and ``epoch`` (query parameters too) are
   the last ``seq`` the client received and the ``epoch`` of that connection's
   ``welcome``.
2. The server answers ``{"type": "welcome", "epoch", "seq", "resumed", "replayed",
   "principal": {...}}``. If ``resumed``, the ``replayed`` events the client missed
   follow, each with its own ``seq``. Otherwise (no ``since``, another epoch, or the
   replay ring no longer holds them) a ``{"type": "snapshot", "seq", "reason",
   "agents", "calls", "queues", "screen_pop"}`` follows: the state at ``seq``.
3. Then every event the scope admits, as it happens: ``agent``, ``call``,
   ``queue``, ``screen_pop``, each ``{"type", "seq", "at", ...}``. ``seq`` grows
   (with gaps: other scopes' events). Events carry whole views, never deltas, so
   one seen twice (a snapshot then a change already in it) is harmless.
4. The client sends nothing more (anything it sends is ignored); protocol pings
   keep the connection alive.

Closing codes: 4400 a bad first message, 4401 no or a bad token, 4408 the client
was too slow (its queue filled up; reconnect with ``since``), 4429 too many
clients, 4503 the token cannot be checked now (database down), 1001 the server
is stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

import orjson
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from telephony.api.deps import get_services
from telephony.auth import Caller, PrincipalCache, PrincipalsUnavailable
from telephony.live.hub import EventHub, Scope, Subscriber, TooManySubscribers

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

AUTH_TIMEOUT_S = 10.0
MAX_FIRST_MESSAGE = 4096
CLOSE_TIMEOUT_S = 1.0


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Refused(4400, "since: the last sequence number received, an integer")
    try:
        return int(value)
    except ValueError:
        raise _Refused(4400, "since: the last sequence number received, an integer") from None


async def _first_message(websocket: WebSocket) -> dict[str, Any]:
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            text = await websocket.receive_text()
    except TimeoutError:
        raise _Refused(4401, f"send {{'token': ...}} within {AUTH_TIMEOUT_S:g} s") from None
    if len(text) > MAX_FIRST_MESSAGE:
        raise _Refused(4400, "the first message is too long")
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _Refused(4400, "the first message must be JSON") from None
    if not isinstance(message, dict):
        raise _Refused(4400, 'the first message must be an object {"token": ...}')
    return message


async def _authenticate(
    websocket: WebSocket, token: str | None, since: int | None, epoch: str | None
) -> tuple[Caller, int | None, str | None]:
    header = websocket.headers.get("authorization", "")
    scheme, _, bearer = header.partition(" ")
    if token is None and scheme.lower() == "bearer" and bearer.strip():
        token = bearer.strip()
    if token is None:
        first = await _first_message(websocket)
        token = first.get("token")
        since = _int_or_none(first.get("since", since))
        epoch = first.get("epoch", epoch)
    if not isinstance(token, str) or not token:
        raise _Refused(4401, "no token: send {'token': ...} or ?token=")
    principals = cast(PrincipalCache, websocket.app.state.principals)
    try:
        caller = await principals.authenticate(token)
    except PrincipalsUnavailable:
        raise _Refused(4503, "the token cannot be checked now (database unreachable)") from None
    if caller is None:
        raise _Refused(4401, "unknown or revoked token")
    return caller, since, epoch if isinstance(epoch, str) else None


@router.websocket("/v1/events", name="live events")
async def live_events(
    websocket: WebSocket,
    token: str | None = Query(None, description="bearer token (better: the first message)"),
    since: int | None = Query(None, description="the last sequence number received"),
    epoch: str | None = Query(None, description="the epoch that sequence number belongs to"),
) -> None:
    """Live events for the token's scope; see the module docstring for the protocol."""
    services = get_services(websocket)  # type: ignore[arg-type]  # HTTPConnection either way
    hub = services.live
    await websocket.accept()
    try:
        caller, since, epoch = await _authenticate(websocket, token, since, epoch)
        scope = Scope.of(caller)
        try:
            subscriber, resume = hub.subscribe(scope, since, epoch)
        except TooManySubscribers as exc:
            raise _Refused(4429, str(exc)) from None
    except _Refused as refused:
        await _close(websocket, refused.code, refused.reason)
        return
    except WebSocketDisconnect:
        return
    # Nothing awaited since subscribe: the snapshot is the state at hub.seq.
    welcome = {
        "type": "welcome",
        "epoch": hub.epoch,
        "seq": hub.seq,
        "resumed": resume.resumed,
        "replayed": resume.replayed,
        "principal": {
            "name": caller.name,
            "role": caller.role.value,
            "agent_id": caller.agent_id,
            "areas": sorted(caller.areas),
        },
    }
    first = [orjson.dumps(welcome).decode()]
    if not resume.resumed:
        snapshot = {"type": "snapshot", "seq": hub.seq, "reason": resume.why}
        snapshot.update(services.live_feed.snapshot(scope))
        first.append(orjson.dumps(snapshot).decode())
    await _serve(websocket, hub, subscriber, first)


async def _serve(
    websocket: WebSocket, hub: EventHub, subscriber: Subscriber, first: list[str]
) -> None:
    async def send() -> None:
        for text in first:
            await websocket.send_text(text)
        while True:
            await websocket.send_text(await subscriber.next())

    async def drain() -> None:  # notices the client leaving; what it sends is ignored
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    tasks = [
        asyncio.create_task(send(), name="live events: send"),
        asyncio.create_task(drain(), name="live events: receive"),
        asyncio.create_task(subscriber.ended.wait(), name="live events: ended"),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hub.unsubscribe(subscriber, "the connection ended")
    why = subscriber.dropped or ""
    code = 4408 if why.startswith("too slow") else 1001
    await _close(websocket, code, why)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close, giving up after ``CLOSE_TIMEOUT_S`` (a client that reads nothing)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason[:120])
