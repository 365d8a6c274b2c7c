"""A WebSocket client of ``/v1/events`` for the tests and the benchmark."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect


class EventsClient:
    """One connection to ``/v1/events``: authenticates with a first message, keeps what it got."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.received: list[dict[str, Any]] = []

    @classmethod
    async def open(
        cls, url: str, token: str, since: int | None = None, epoch: str | None = None
    ) -> EventsClient:
        connection = await connect(url, max_queue=None)
        first: dict[str, Any] = {"token": token}
        if since is not None:
            first.update(since=since, epoch=epoch)
        await connection.send(orjson.dumps(first).decode())
        return cls(connection)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            message = orjson.loads(await self.connection.recv())
        self.received.append(message)
        return message

    async def until(
        self, test: Callable[[dict[str, Any]], bool], timeout: float = 15.0
    ) -> dict[str, Any]:
        """The first message (from now on) that passes ``test``."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                if test(message):
                    return message

    async def close(self) -> None:
        await self.connection.close()
