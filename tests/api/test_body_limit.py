"""The request-size limit (413) and the token check (401) answer before the body is read.

Through httpx's ASGI transport, which hands the app each chunk only when the
app asks for it, and through a real uvicorn on a socket: a 52 MB upload is
refused having read none of it (no token, or a declared length over the
limit) or no more than the limit (a chunked body, counted as it streams).
Memory and time are not measured; what was read is.
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.engine import URL

from telephony.services import Services
from telephony.store.database import EmbeddedPostgres
from tests.api.live import LiveServer
from tests.store.conftest import _create_database, _drop_database

MiB = 1024 * 1024
LIMIT = MiB  # the default TELEPHONY_API_MAX_BODY_BYTES
UPLOAD = 52 * MiB
CHUNK = 64 * 1024


class Upload:
    """A 52 MB body made on demand; counts what the server pulled."""

    def __init__(self, size: int = UPLOAD, chunk: int = CHUNK) -> None:
        self.size = size
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.size:
            self.pulled += self.chunk
            yield b"x" * self.chunk


async def test_a_declared_length_over_the_limit_is_413_and_nothing_is_read(
    client: httpx.AsyncClient, admin: dict[str, str], services: Services
) -> None:
    upload = Upload()
    headers = {**admin, "content-type": "application/json", "content-length": str(UPLOAD)}
    reply = await client.post("/v1/agents", content=upload, headers=headers)
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"] == "body_too_large"
    assert "1048576 bytes" in reply.json()["detail"]
    assert reply.headers["connection"] == "close"
    assert upload.pulled == 0
    assert services.metrics.api_bodies_refused._value.get() == 1


async def test_a_chunked_body_is_counted_and_cut_at_the_limit(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    upload = Upload()
    headers = {**admin, "content-type": "application/json"}
    reply = await client.post("/v1/skill-groups", content=upload, headers=headers)
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"] == "body_too_large"
    assert LIMIT < upload.pulled <= LIMIT + CHUNK


async def test_an_unauthenticated_upload_is_401_before_its_body_is_read(
    client: httpx.AsyncClient,
) -> None:
    for headers in ({}, {"Authorization": "Bearer tel_forged"}):
        upload = Upload()
        reply = await client.post(
            "/v1/agents", content=upload, headers={**headers, "content-type": "application/json"}
        )
        assert reply.status_code == 401, reply.text
        assert reply.headers["connection"] == "close"
        assert upload.pulled == 0


async def test_a_body_under_the_limit_is_served(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    settings = {f"rule{i}": "x" * 100 for i in range(500)}  # about 55 kB
    body = {"id": "tax", "name": "Tax", "settings": settings}
    reply = await client.post("/v1/skill-groups", json=body, headers=admin)
    assert reply.status_code == 201, reply.text


@pytest.fixture(scope="module")
def live(
    embedded_server: tuple[EmbeddedPostgres, URL], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    url = asyncio.run(_create_database(embedded_server[1]))
    data_dir: Path = tmp_path_factory.mktemp("body-limit")
    try:
        with LiveServer(url.render_as_string(hide_password=False), data_dir) as server:
            yield server
    finally:
        asyncio.run(_drop_database(url))


def _send(live: LiveServer, head: str, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send ``head`` and then ``chunks`` until the server answers; its response head and bytes sent.

    After each chunk, wait a moment for an answer, so that nothing is left
    unsent-but-unread when the server closes the connection.
    """
    parts = urlsplit(live.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0.05)[0]:
                break
            sock.sendall(chunk)
            sent += len(chunk)
        response = b""
        while b"\r\n\r\n" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
    return response, sent


def _chunked(size: int) -> Iterator[bytes]:
    for _ in range(size // CHUNK):
        yield f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"


def _head(live: LiveServer, path: str, *lines: str) -> str:
    host = urlsplit(live.base_url).netloc
    first = (f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json")
    return "".join(f"{line}\r\n" for line in (*first, *lines)) + "\r\n"


def test_uvicorn_answers_an_unauthenticated_52_mb_upload_at_once(live: LiveServer) -> None:
    assert live.probe is not None
    live.probe.received = 0
    head = _head(live, "/v1/agents", "Transfer-Encoding: chunked")
    response, sent = _send(live, head, _chunked(UPLOAD))
    assert response.startswith(b"HTTP/1.1 401 "), response
    assert b"connection: close" in response.lower()
    assert live.probe.received == 0
    assert sent < UPLOAD // 4  # answered long before the body was sent


def test_uvicorn_refuses_a_declared_52_mb_body_before_reading_it(live: LiveServer) -> None:
    assert live.probe is not None
    live.probe.received = 0
    token = live.admin["Authorization"]
    head = _head(live, "/v1/agents", f"Authorization: {token}", f"Content-Length: {UPLOAD}")
    response, sent = _send(live, head, iter([b"x" * CHUNK] * (UPLOAD // CHUNK)))
    assert response.startswith(b"HTTP/1.1 413 "), response
    assert live.probe.received == 0
    assert sent < UPLOAD // 4


def test_uvicorn_cuts_a_chunked_body_at_the_limit(live: LiveServer) -> None:
    assert live.probe is not None
    live.probe.received = 0
    token = live.admin["Authorization"]
    head = _head(live, "/v1/skill-groups", f"Authorization: {token}", "Transfer-Encoding: chunked")
    response, sent = _send(live, head, _chunked(UPLOAD))
    assert response.startswith(b"HTTP/1.1 413 "), response
    assert LIMIT < live.probe.received <= LIMIT + CHUNK
    assert sent < UPLOAD // 4
