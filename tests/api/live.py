"""The real app behind a real uvicorn on a free port, in its own thread and event loop.

For tests whose client is synchronous (schemathesis) or must speak real
HTTP/1.1 to the server (streaming a large body): the services, their database
engine and the app all live on the server thread's loop, as under
``telephony serve``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telephony.api.app import create_app
from telephony.auth import Role, create_principal
from telephony.config import Settings
from telephony.services import Services
from telephony.store.database import create_engine
from tests.api.fakes import FakeCalls, FakeSwitch


class BodyProbe:
    """Outermost ASGI wrapper: counts the body bytes the app pulled from the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.received = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


class LiveServer:
    """``with LiveServer(url, tmp) as live:`` serves the API at ``live.base_url``.

    ``live.admin`` holds an admin's ``Authorization`` header; ``live.probe``
    counts the request-body bytes the app read.
    """

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        *,
        startup_timeout: float = 30.0,
        **settings: Any,
    ) -> None:
        self._settings = Settings(
            database_url=database_url,
            data_dir=data_dir,
            freeswitch="esl://:ClueCon@127.0.0.1:8021",
            **settings,
        )
        self._timeout = startup_timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=self._run, name="live-api", daemon=True)
        self.base_url = ""
        self.admin: dict[str, str] = {}
        self.probe: BodyProbe | None = None
        self.services: Services | None = None

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise RuntimeError("the live API server did not start")
        if self._error is not None:
            raise RuntimeError("the live API server failed to start") from self._error
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(self._timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        assert self._settings.database_url is not None
        engine = create_engine(self._settings.database_url)
        services = Services(self._settings, engine)
        services.calls = FakeCalls()
        # Every node "connected", so that /readyz says ready while the database answers.
        services.switches = [FakeSwitch(n.name, True) for n in self._settings.nodes]  # type: ignore[list-item]
        await services.start(migrate=False)
        self.services = services
        try:
            async with engine.begin() as connection:
                _, token = await create_principal(connection, "live-admin", Role.ADMIN)
            self.admin = {"Authorization": f"Bearer {token}"}
            self.probe = BodyProbe(create_app(services))
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            host, port = listener.getsockname()[:2]
            self.base_url = f"http://{host}:{port}"
            config = uvicorn.Config(self.probe, log_config=None, lifespan="off", access_log=False)
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve(sockets=[listener]))
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.01)
            self._ready.set()
            await serving
        finally:
            await services.stop()
