"""The FastAPI application, built from a :class:`~telephony.services.Services` bundle.

Nothing is created at import time: ``create_app(services)`` builds a new app
each call. It does not start or stop the services; ``telephony serve`` (or a
test) owns their lifecycle. The app owns the cache of verified principals
(``app.state.principals``) and two ASGI middlewares that answer before any
body is read (:mod:`telephony.api.middleware`): the size limit (413), then
the bearer token of ``/v1`` requests (401).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from telephony import __version__
from telephony.api import (
    agents,
    blocked_numbers,
    call_control,
    call_records,
    callbacks,
    calls,
    console,
    events,
    health,
    metrics,
    missed_calls,
    recordings,
    reports,
    skill_groups,
    surveys,
    wallboard,
)
from telephony.api.deps import current_caller
from telephony.api.errors import install_error_handlers, responses
from telephony.api.middleware import BearerAuth, BodyLimit
from telephony.auth import PrincipalCache
from telephony.services import Services

DESCRIPTION = """\
Control plane of a 12345 government-service hotline.

Every `/v1` endpoint needs `Authorization: Bearer TOKEN` (tokens come from
`telephony users create`). Errors are `{"error": code, "detail": text}`;
422 adds `fields`, one entry per invalid input. A body that is not JSON is
400; a body over `TELEPHONY_API_MAX_BODY_BYTES` is 413, answered before the
body is read, as is the 401 of a request without a valid token.
"""

API_PREFIX = "/v1"


def principal_cache(
    services: Services, *, clock: Callable[[], float] = time.monotonic
) -> PrincipalCache:
    """The cache of verified principals that ``create_app`` builds from the settings."""
    settings = services.settings
    counter = services.metrics.api_auth
    return PrincipalCache(
        services.database,
        max_entries=settings.auth_cache_size,
        revalidate_after=settings.auth_revalidate_seconds,
        ttl=settings.auth_cache_ttl_seconds,
        clock=clock,
        on_result=lambda result: counter.labels(result).inc(),
    )


def create_app(services: Services, *, principals: PrincipalCache | None = None) -> FastAPI:
    """A new API application serving ``services`` (``principals``: a cache to use instead)."""
    app = FastAPI(title="telephony", version=__version__, description=DESCRIPTION)
    app.state.services = services
    app.state.principals = principal_cache(services) if principals is None else principals
    install_error_handlers(app)
    for module in (
        health,
        metrics,
        agents,
        skill_groups,
        calls,
        call_records,
        blocked_numbers,
        reports,
        missed_calls,
        callbacks,
        surveys,
    ):
        document_errors(module.router)
        app.include_router(module.router)
    document_errors(recordings.router)
    app.include_router(recordings.router)
    for extra in (call_control.router, call_control.agents_router):
        document_errors(extra)
        app.include_router(extra)
    app.include_router(events.router)  # authenticates itself (the middleware passes websockets)
    app.include_router(console.router)
    app.include_router(wallboard.router)
    # The last added runs first: the size limit, then the token, then the routes.
    app.add_middleware(BearerAuth, principals=app.state.principals, prefix=API_PREFIX)
    refused = services.metrics.api_bodies_refused
    app.add_middleware(
        BodyLimit, max_bytes=services.settings.api_max_body_bytes, on_refused=refused.inc
    )
    return app


def _uses(dependant: Dependant, test: Callable[[Any], bool]) -> bool:
    return any(test(d.call) or _uses(d, test) for d in dependant.dependencies)


def _params(dependant: Dependant, kind: str) -> bool:
    own: list[Any] = getattr(dependant, f"{kind}_params")
    return bool(own) or any(_params(d, kind) for d in dependant.dependencies)


def document_errors(router: APIRouter) -> None:
    """List on each of ``router``'s routes the error statuses it can answer (before inclusion).

    400, 413 and 422 with a body; 404 and 422 with path parameters; 422 with
    query parameters; 401 under ``/v1`` (every one needs a token); 403 with a
    role check. A route's own ``responses`` entries win. Idempotent.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        statuses: set[int] = set()
        if route.body_field is not None:
            statuses |= {400, 413, 422}
        if _params(route.dependant, "path"):
            statuses |= {404, 422}
        if _params(route.dependant, "query"):
            statuses.add(422)
        if route.path.startswith(API_PREFIX + "/") or _uses(
            route.dependant, lambda call: call is current_caller
        ):
            statuses.add(401)
        if _uses(route.dependant, lambda call: hasattr(call, "roles")):
            statuses.add(403)
        route.responses = {**responses(*sorted(statuses)), **route.responses}
