"""FastAPI dependencies, as ``Annotated`` aliases: the only place routes get collaborators from.

* :data:`ServicesDep` - the process's :class:`telephony.services.Services`.
* :data:`CurrentCaller` - the principal behind ``Authorization: Bearer TOKEN``
  (401 when missing, unknown or disabled).
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
from telephony.auth import Caller, Role, find_principal, record_audit
from telephony.services import Services

_bearer = HTTPBearer(auto_error=False, description="a token from `telephony users create`")


def get_services(request: Request) -> Services:
    """The services ``create_app`` was given."""
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def current_caller(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The principal holding the request's bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("send Authorization: Bearer TOKEN (see `telephony users create`)")
    async with services.database.connect() as connection:
        caller = await find_principal(connection, credentials.credentials)
    if caller is None:
        raise _unauthorized("unknown or disabled token")
    return caller


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def require_role(*roles: Role) -> Callable[[Caller], Coroutine[Any, Any, Caller]]:
    """A dependency that lets only ``roles`` through."""
    names = ", ".join(r.value for r in roles)

    async def check(caller: CurrentCaller) -> Caller:
        if caller.role not in roles:
            raise forbidden(f"role {caller.role.value} may not do this (needs {names})")
        return caller

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
