"""The FastAPI application, built from a :class:`~telephony.services.Services` bundle.

Nothing is created at import time: ``create_app(services)`` builds a new app
each call. It does not start or stop the services; ``telephony serve`` (or a
test) owns their lifecycle.
"""

from __future__ import annotations

from fastapi import FastAPI

from telephony import __version__
from telephony.api import (
    agents,
    blocked_numbers,
    call_records,
    calls,
    health,
    metrics,
    skill_groups,
)
from telephony.api.errors import install_error_handlers
from telephony.services import Services

DESCRIPTION = """\
Control plane of a 12345 government-service hotline.

Every `/v1` endpoint needs `Authorization: Bearer TOKEN` (tokens come from
`telephony users create`). Errors are `{"error": code, "detail": text}`.
"""


def create_app(services: Services) -> FastAPI:
    """A new API application serving ``services``."""
    app = FastAPI(title="telephony", version=__version__, description=DESCRIPTION)
    app.state.services = services
    install_error_handlers(app)
    for module in (health, metrics, agents, skill_groups, calls, call_records, blocked_numbers):
        app.include_router(module.router)
    return app
