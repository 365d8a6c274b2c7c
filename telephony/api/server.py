"""Run the control plane: services, then the HTTP server, until SIGTERM or SIGINT.

Order: connect the database and start the services (migrations, agents,
write buffer, engine), then serve HTTP on ``TELEPHONY_API_LISTEN``. A first
SIGTERM/SIGINT stops accepting requests, lets running ones finish, then stops
the services (engine, write buffer flushed, database closed). A second
signal cuts the HTTP wait short; the services are still stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from telephony.api.app import create_app
from telephony.config import Settings
from telephony.runtime import settle_heap
from telephony.services import open_services

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, with signals handled by :func:`serve` instead of by uvicorn.

    uvicorn re-raises a captured signal once it returns, which would kill the
    process before the services are stopped.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings) -> None:
    """Run until a signal; returns after a clean shutdown."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    server: _Server | None = None

    def on_signal(sig: signal.Signals) -> None:
        log.info("signal received, shutting down", extra={"signal": sig.name})
        stopping.set()
        if server is not None:
            server.force_exit = server.should_exit
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        services = await open_services(settings)
        try:
            await services.start()
            if stopping.is_set():
                return
            host, port = settings.listen
            config = uvicorn.Config(
                create_app(services), host=host, port=port, log_config=None, lifespan="off"
            )
            server = _Server(config)
            settle_heap()
            log.info("serving the API", extra={"listen": f"{host}:{port}"})
            await server.serve()
        finally:
            await services.stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("control plane stopped")
