"""API principals (who may call the API), their bearer tokens, scoping, and the audit log.

Tokens are ``tel_`` + 32 random bytes (``secrets.token_urlsafe``), shown once
when created and stored only as their SHA-256. A token is looked up by that
hash: with 256 bits of randomness, neither the index lookup's timing nor the
stored hash helps an attacker guess one.

Roles (``API.md``): ``agent`` acts on its own agent only; ``supervisor`` on
the agents, calls and reports of its areas; ``admin`` on everything;
``auditor`` reads reports and recordings. A principal's ``area`` column may
hold several areas, comma-separated.

Audit: a privileged action is written to ``audit_log`` directly, in the same
transaction as the action's own rows, or before an in-memory action (an agent
state change) is applied. If the audit row cannot be written, the action is
refused. The write buffer is not used for audit: it would let an action
succeed while its audit row waits in memory, lost if the process dies.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.store.models import AuditEntry, Principal, table_of

log = logging.getLogger(__name__)
_PRINCIPALS = table_of(Principal)
_AUDIT = table_of(AuditEntry)
TOKEN_PREFIX = "tel_"
AREAS_MAX_CHARS = 64  # principals.area


class Role(StrEnum):
    """What a principal may do (``API.md``, HTTP API)."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    AUDITOR = "auditor"


class PrincipalError(ValueError):
    """A principal cannot be created as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal of one API request."""

    id: uuid.UUID
    name: str
    role: Role
    areas: frozenset[str]
    agent_id: str | None

    def covers_area(self, area: str | None) -> bool:
        """Whether this principal may see or act on things of ``area``.

        Admins and auditors cover every area; supervisors their own (an
        unassigned area, None, belongs to none of them); agents none.
        """
        if self.role in (Role.ADMIN, Role.AUDITOR):
            return True
        if self.role is Role.SUPERVISOR:
            return area is not None and area in self.areas
        return False

    def may_act_on_agent(self, agent_id: str, agent_area: str | None) -> bool:
        """Sign in/out, busy, idle: an agent itself, its area's supervisor, or an admin."""
        if self.role is Role.AGENT:
            return self.agent_id == agent_id
        if self.role is Role.AUDITOR:
            return False
        return self.covers_area(agent_area)


def new_token() -> str:
    """A fresh bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_areas(text: str | None) -> frozenset[str]:
    """``"A, B"`` -> ``{"A", "B"}``."""
    return frozenset(a.strip() for a in (text or "").split(",") if a.strip())


def check_principal(role: Role, areas: frozenset[str], agent_id: str | None) -> None:
    """Raise :class:`PrincipalError` unless the role, areas and agent fit together."""
    if role is Role.AGENT and not agent_id:
        raise PrincipalError("an agent principal needs --agent ID (the agent it acts as)")
    if role is not Role.AGENT and agent_id:
        raise PrincipalError("--agent is only for the agent role")
    if role is Role.SUPERVISOR and not areas:
        raise PrincipalError("a supervisor needs --area AREA (comma-separated for several)")
    if len(",".join(sorted(areas))) > AREAS_MAX_CHARS:
        raise PrincipalError(f"--area: at most {AREAS_MAX_CHARS} characters in all")


async def create_principal(
    connection: AsyncConnection,
    name: str,
    role: Role,
    *,
    area: str | None = None,
    agent_id: str | None = None,
) -> tuple[Caller, str]:
    """Insert a principal; returns it and its token (the only time the token is available)."""
    areas = parse_areas(area)
    check_principal(role, areas, agent_id)
    exists = await connection.scalar(select(_PRINCIPALS.c.id).where(_PRINCIPALS.c.name == name))
    if exists is not None:
        raise PrincipalError(f"a principal named {name!r} already exists")
    token = new_token()
    principal_id = uuid.uuid4()
    await connection.execute(
        insert(_PRINCIPALS).values(
            id=principal_id,
            name=name,
            role=role.value,
            area=",".join(sorted(areas)) or None,
            agent_id=agent_id,
            token_sha256=hash_token(token),
            disabled=False,
        )
    )
    log.info("principal created", extra={"principal": name, "role": role.value})
    return Caller(principal_id, name, role, areas, agent_id), token


async def find_principal(connection: AsyncConnection, token: str) -> Caller | None:
    """The enabled principal holding ``token``, or None."""
    row = (
        await connection.execute(
            select(
                _PRINCIPALS.c.id,
                _PRINCIPALS.c.name,
                _PRINCIPALS.c.role,
                _PRINCIPALS.c.area,
                _PRINCIPALS.c.agent_id,
            ).where(
                _PRINCIPALS.c.token_sha256 == hash_token(token),
                _PRINCIPALS.c.disabled.is_(False),
            )
        )
    ).one_or_none()
    if row is None:
        return None
    try:
        role = Role(row.role)
    except ValueError:
        log.error("principal has an unknown role", extra={"principal": row.name, "role": row.role})
        return None
    return Caller(row.id, row.name, role, parse_areas(row.area), row.agent_id)


async def record_audit(
    connection: AsyncConnection,
    principal: str,
    action: str,
    target_kind: str,
    target_id: str,
    *,
    detail: Mapping[str, Any] | None = None,
    remote_addr: str | None = None,
) -> None:
    """Write one audit row on ``connection`` (commit it with the action it describes)."""
    await connection.execute(
        insert(_AUDIT).values(
            id=uuid.uuid4(),
            at=datetime.now(UTC),
            principal=principal,
            action=action,
            target_kind=target_kind,
            target_id=target_id,
            detail=dict(detail or {}),
            remote_addr=remote_addr,
        )
    )
    log.info(
        "audit",
        extra={"principal": principal, "action": action, "target": f"{target_kind}:{target_id}"},
    )
