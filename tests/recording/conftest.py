"""Real PostgreSQL for the recording tests, and a real S3 protocol server (moto's)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.recording.seed import free_port
from tests.store.conftest import Database, database, embedded_server, engine  # noqa: F401


class S3Server:
    """moto's standalone S3 server on 127.0.0.1, in a thread; :meth:`stop` really closes it.

    moto keeps its buckets in the process, so a server started again on the same
    port serves what the stopped one held, as a restarted object store would.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop serving and close the listening socket: connections are refused until start."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.stop()
        server._server.server_close()

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1"
        )


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A running S3 server (AWS_* credentials set for it)."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A new, empty bucket on the S3 server."""
    name = f"dr-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name
