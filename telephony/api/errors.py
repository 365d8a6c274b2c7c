"""Uniform JSON errors: ``{"error": code, "detail": text}``, never a stack trace.

Validation errors (422) also list each offending field under ``fields``, and
name them in ``detail``. Domain exceptions map to statuses here, so routes
can let them propagate: an unknown agent is 404, an illegal state change 409,
an unreachable database 503. Anything else is a 500 whose body says only
"internal error"; the traceback goes to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from telephony.acd.roster import UnknownAgent
from telephony.fsm import IllegalTransition

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One invalid input."""

    field: str
    location: str
    message: str


class ErrorBody(BaseModel):
    """Every error response's body."""

    error: str
    detail: str
    fields: list[FieldError] | None = None


#: For routers' ``responses=``: the error statuses they may answer, documented in OpenAPI.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (401, 403, 404, 409, 422, 503)
}


class ApiError(Exception):
    """An error a route raises on purpose, with its status, code and detail."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


def not_found(kind: str, key: str) -> ApiError:
    """404 for ``kind`` ``key``."""
    return ApiError(404, "not_found", f"no {kind} {key!r}")


def forbidden(detail: str) -> ApiError:
    """403 with a reason."""
    return ApiError(403, "forbidden", detail)


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_response(
    status: int,
    code: str,
    detail: str,
    *,
    fields: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The uniform error response."""
    body = ErrorBody(error=code, detail=detail, fields=fields)
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=dict(headers) if headers else None,
    )


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        location = loc[0] if loc else "request"
        field = ".".join(loc[1:]) or location
        out.append(FieldError(field=field, location=location, message=str(error.get("msg", ""))))
    return out


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.detail, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(
        exc.status_code, _code_for(exc.status_code), str(exc.detail), headers=exc.headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = _field_errors(exc)
    detail = "; ".join(f"{f.field}: {f.message}" for f in fields) or "invalid request"
    return error_response(422, "invalid_request", detail, fields=fields)


async def _unknown_agent(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownAgent)
    return error_response(404, "not_found", f"no agent {exc.args[0]!r}")


async def _illegal_transition(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IllegalTransition)
    return error_response(
        409,
        "illegal_transition",
        f"cannot {exc.event.value} while {exc.state.value}",
    )


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning(
        "database unavailable for a request",
        extra={"path": request.url.path, "error": type(exc).__name__},
    )
    return error_response(503, "database_unavailable", "the database cannot be reached; retry")


#: SQLSTATE classes that mean "the server cannot serve now" rather than "bad request":
#: 08 connection exception, 53 insufficient resources, 57 operator intervention
#: (shutting down, starting up). asyncpg's errors of these classes reach us as plain DBAPIError.
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    if exc.connection_invalidated or sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
        return await _database_down(request, exc)
    return await _internal(request, exc)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "request failed",
        exc_info=exc,
        extra={"path": request.url.path, "method": request.method},
    )
    return error_response(500, "internal", "internal error (logged)")


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler above on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UnknownAgent, _unknown_agent)
    app.add_exception_handler(IllegalTransition, _illegal_transition)
    for outage in (OperationalError, InterfaceError, OSError, TimeoutError):
        app.add_exception_handler(outage, _database_down)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _internal)
