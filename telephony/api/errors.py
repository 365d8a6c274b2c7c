"""Uniform JSON errors: ``{"error": code, "detail": text}``, never a stack trace.

Validation errors (422) also list each offending field under ``fields``, and
name them in ``detail``; a body that is not JSON at all is 400. Domain
exceptions map to statuses here, so routes can let them propagate: an
unknown agent is 404, an illegal state change 409, an unreachable database
503. Anything else is a 500 whose body says only "internal error"; the
traceback goes to the log.

:func:`responses` documents error statuses in the OpenAPI schema;
``telephony.api.app`` adds 400, 401, 403, 404, 413 and 422 to each route from
what the route takes (a body, path or query parameters, a token, a role).
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
from telephony.auth import PrincipalsUnavailable, is_database_outage
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


_MEANINGS = {
    400: "The body is not well-formed JSON.",
    401: "No valid bearer token (`Authorization: Bearer TOKEN`).",
    403: "The token's role or areas do not allow this.",
    404: "No such thing (or not visible to this token).",
    409: "Conflicts with the current state (the detail says which).",
    413: "The request body is larger than `TELEPHONY_API_MAX_BODY_BYTES`.",
    422: "Invalid input: `fields` names each offending field and why.",
    503: "The database cannot be reached; retry.",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For ``responses=``: these error statuses, with their meaning and the error body."""
    return {s: {"model": ErrorBody, "description": _MEANINGS[s]} for s in statuses}


#: What any route that reads or writes the database may answer besides its own errors.
ERROR_RESPONSES = responses(503)


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


#: FastAPI's detail when reading or decoding the body failed other than by a JSON syntax error.
_BODY_PARSE_FAILED = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _BODY_PARSE_FAILED:
        return error_response(
            400,
            "malformed_json",
            "the body could not be read as JSON (not UTF-8, nested too deeply, "
            "or a number too long)",
        )
    return error_response(
        exc.status_code, _code_for(exc.status_code), str(exc.detail), headers=exc.headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error") or "JSON decode error"
            loc: tuple[Any, ...] = tuple(error.get("loc") or ())
            where = f" at position {loc[1]}" if len(loc) > 1 else ""
            return error_response(
                400, "malformed_json", f"the body is not valid JSON: {reason}{where}"
            )
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
    return database_unavailable()


TOKEN_UNCHECKED = "this token cannot be checked: the database cannot be reached; retry"


def database_unavailable(
    detail: str = "the database cannot be reached; retry",
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The 503 of a request that needs the database while it cannot be reached."""
    return error_response(
        503, "database_unavailable", detail, headers={"Retry-After": "5", **(headers or {})}
    )


async def _principals_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return database_unavailable(TOKEN_UNCHECKED)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if is_database_outage(exc):
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
    app.add_exception_handler(PrincipalsUnavailable, _principals_unavailable)
    for outage in (OperationalError, InterfaceError, OSError, TimeoutError):
        app.add_exception_handler(outage, _database_down)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _internal)
