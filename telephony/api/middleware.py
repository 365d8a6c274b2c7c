"""ASGI middleware in front of every route: the request-size limit, then the bearer token.

Both answer before the request body is read, so that nobody can make the
process read, parse or hold a body it was not going to accept:

* :class:`BodyLimit` answers 413 to a request whose ``Content-Length`` is
  over the limit without reading any of it, and counts a body sent without a
  length (chunked) as it streams in, answering 413 as soon as the count passes
  the limit; the route then sees the body end there and whatever it answers
  is dropped.
* :class:`BearerAuth` checks the token of every ``/v1`` request (through the
  :class:`~telephony.auth.PrincipalCache`) before the route runs, and so
  before FastAPI reads the body: an unauthenticated upload gets 401 at once.
  The route's :data:`~telephony.api.deps.CurrentCaller` reuses the principal
  found here. WebSocket routes authenticate themselves.

A response sent while the client may still be sending its body carries
``Connection: close``, so the server drops the connection instead of reading
the rest of the body to reuse it.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telephony.api.deps import CALLER_SCOPE_KEY, authenticate_header
from telephony.api.errors import TOKEN_UNCHECKED, ApiError, database_unavailable, error_response
from telephony.auth import PrincipalCache, PrincipalsUnavailable


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _may_have_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    return _header(scope, b"transfer-encoding") is not None or (length or "0").strip() != "0"


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


class BodyLimit:
    """413 for a request body over ``max_bytes``, declared or streamed; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused

    async def _refuse(self, scope: Scope, send: Send) -> None:
        self.on_refused()
        response = error_response(
            413,
            "body_too_large",
            f"the request body is larger than {self.max_bytes} bytes "
            "(TELEPHONY_API_MAX_BODY_BYTES)",
            headers={"Connection": "close"},
        )
        await response(scope, _no_body, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                response = error_response(
                    400,
                    "bad_request",
                    "Content-Length must be a number of bytes",
                    headers={"Connection": "close"},
                )
                await response(scope, _no_body, send)
                return
            if int(declared) > self.max_bytes:
                await self._refuse(scope, send)
                return
        received = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out already: drop what the route answers after it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)


class BearerAuth:
    """Authenticates ``/v1`` requests before the route (and its body) is touched."""

    def __init__(self, app: ASGIApp, principals: PrincipalCache, prefix: str = "/v1") -> None:
        self.app = app
        self.principals = principals
        self.prefix = prefix.rstrip("/")

    def _protected(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._protected(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        close = {"Connection": "close"} if _may_have_body(scope) else {}
        try:
            caller = await authenticate_header(self.principals, _header(scope, b"authorization"))
        except ApiError as exc:
            response = error_response(
                exc.status, exc.code, exc.detail, headers={**(exc.headers or {}), **close}
            )
            await response(scope, _no_body, send)
            return
        except PrincipalsUnavailable:
            response = database_unavailable(TOKEN_UNCHECKED, headers=close)
            await response(scope, _no_body, send)
            return
        scope[CALLER_SCOPE_KEY] = caller
        await self.app(scope, receive, send)
