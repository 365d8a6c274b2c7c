"""FastAPI dependencies, as ``Annotated`` aliases: the only place routes get collaborators from.

* :data:`ServicesDep` - the process's :class:`telephony.services.Services`.
* :data:`CurrentCaller` - the principal behind ``Authorization: Bearer TOKEN``
  (401 when missing, unknown or revoked), found by
  :class:`~telephony.api.middleware.BearerAuth` before the body was read, or
  here through the app's :class:`~telephony.auth.PrincipalCache`.
* :data:`AdminCaller`, :data:`StaffCaller`, :data:`ReportReader` - the caller,
  after a role check (403 otherwise).
* :data:`AuditLog` - writes the audit row of a privileged action.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.api.errors import ApiError, forbidden
from telephony.auth import Caller, PrincipalCache, Role, record_audit
from telephony.services import Services

_bearer = HTTPBearer(auto_error=False, description="a token from `telephony users create`")
#: Where :class:`~telephony.api.middleware.BearerAuth` leaves the request's principal.
CALLER_SCOPE_KEY = "telephony.caller"


def get_services(request: Request) -> Services:
    """The services ``create_app`` was given."""
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate_header(principals: PrincipalCache, authorization: str | None) -> Caller:
    """The principal behind an ``Authorization`` header value; 401 (ApiError) if none.

    Raises :class:`~telephony.auth.PrincipalsUnavailable` (503) when the token
    is not cached and the database cannot be asked.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("send Authorization: Bearer TOKEN (see `telephony users create`)")
    caller = await principals.authenticate(token)
    if caller is None:
        raise _unauthorized("unknown or revoked token")
    return caller


def get_principals(request: Request) -> PrincipalCache:
    """The app's cache of verified principals."""
    return cast(PrincipalCache, request.app.state.principals)


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The principal holding the request's bearer token (``credentials`` documents the scheme)."""
    caller = request.scope.get(CALLER_SCOPE_KEY)
    if isinstance(caller, Caller):
        return caller
    return await authenticate_header(get_principals(request), request.headers.get("authorization"))


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def require_role(*roles: Role) -> Callable[[Caller], Coroutine[Any, Any, Caller]]:
    """A dependency that lets only ``roles`` through."""
    names = ", ".join(r.value for r in roles)

    async def check(caller: CurrentCaller) -> Caller:
        if caller.role not in roles:
            raise forbidden(f"role {caller.role.value} may not do this (needs {names})")
        return caller

    check.roles = roles  # type: ignore[attr-defined]  # read by the OpenAPI error documentation
    return check


AdminCaller = Annotated[Caller, Depends(require_role(Role.ADMIN))]
StaffCaller = Annotated[Caller, Depends(require_role(Role.ADMIN, Role.SUPERVISOR, Role.AGENT))]
ReportReader = Annotated[Caller, Depends(require_role(Role.ADMIN, Role.SUPERVISOR, Role.AUDITOR))]


class Auditor:
    """Writes audit rows for one request, with its caller and remote address."""

    def __init__(self, services: Services, caller: Caller, remote_addr: str | None) -> None:
        self._services = services
        self.caller = caller
        self._remote = remote_addr

    async def record(self, action: str, target_kind: str, target_id: str, **detail: Any) -> None:
        """Write the row now, in its own transaction (raises if it cannot be written)."""
        async with self._services.database.begin() as connection:
            await self.record_on(connection, action, target_kind, target_id, **detail)

    async def record_on(
        self,
        connection: AsyncConnection,
        action: str,
        target_kind: str,
        target_id: str,
        **detail: Any,
    ) -> None:
        """Write the row on ``connection``, to commit with the action's own rows."""
        await record_audit(
            connection,
            self.caller.name,
            action,
            target_kind,
            target_id,
            detail={"role": self.caller.role.value, **detail},
            remote_addr=self._remote,
        )


def get_auditor(services: ServicesDep, caller: CurrentCaller, request: Request) -> Auditor:
    """The request's :class:`Auditor`."""
    return Auditor(services, caller, request.client.host if request.client else None)


AuditLog = Annotated[Auditor, Depends(get_auditor)]
