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

Authentication does not need the database to be up: :class:`PrincipalCache`
keeps the principals it has verified (by token hash, bounded in size) and
re-checks each against the database every ``revalidate_after`` seconds while
the database answers, so a token revoked by another process (``telephony
users revoke``) stops working within that time, and at once in the process
that revoked it (:meth:`PrincipalCache.revoke`). While the database cannot be
reached, a principal verified less than ``ttl`` seconds ago keeps working, so
agents go busy and idle through an outage (the write buffer keeps their state
changes); a token never verified gets 503 until the database is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from telephony.store.models import AuditEntry, Principal, table_of

log = logging.getLogger(__name__)
_PRINCIPALS = table_of(Principal)
_AUDIT = table_of(AuditEntry)
TOKEN_PREFIX = "tel_"
AREAS_MAX_CHARS = 64  # principals.area
NAME_MAX_CHARS = 128  # principals.name
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


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


def normalize_area(text: str) -> str:
    """An area name as stored and compared everywhere: surrounding whitespace removed.

    The one place areas are trimmed: the API's ``area`` fields, supervisors'
    ``--area`` lists and the stored principals all go through it, so that
    ``"east "`` typed in one place and ``"east"`` in another are the same area.
    ``str.strip`` also removes the ideographic space (U+3000) of Chinese input.
    """
    return text.strip()


def parse_areas(text: str | None) -> frozenset[str]:
    """``"A, B"`` -> ``{"A", "B"}``."""
    areas = (normalize_area(a) for a in (text or "").split(","))
    return frozenset(a for a in areas if a)


def check_principal_name(name: str) -> None:
    """Raise :class:`PrincipalError` unless ``name`` fits ``principals.name``."""
    if not name.strip():
        raise PrincipalError("NAME may not be blank")
    if len(name) > NAME_MAX_CHARS:
        raise PrincipalError(f"NAME: at most {NAME_MAX_CHARS} characters")
    if _CONTROL.search(name):
        raise PrincipalError("NAME may not contain control characters (NUL, newline, ...)")


def check_principal(role: Role, areas: frozenset[str], agent_id: str | None) -> None:
    """Raise :class:`PrincipalError` unless the role, areas and agent fit together."""
    if any(_CONTROL.search(a) for a in areas):
        raise PrincipalError("--area may not contain control characters (NUL, newline, ...)")
    if agent_id is not None and (len(agent_id) > 64 or _CONTROL.search(agent_id)):
        raise PrincipalError("--agent: an agent id of at most 64 characters")
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
    check_principal_name(name)
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
    return await find_principal_by_hash(connection, hash_token(token))


async def find_principal_by_hash(connection: AsyncConnection, token_sha256: str) -> Caller | None:
    """The enabled principal whose token hashes to ``token_sha256``, or None."""
    row = (
        await connection.execute(
            select(
                _PRINCIPALS.c.id,
                _PRINCIPALS.c.name,
                _PRINCIPALS.c.role,
                _PRINCIPALS.c.area,
                _PRINCIPALS.c.agent_id,
            ).where(
                _PRINCIPALS.c.token_sha256 == token_sha256,
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


async def revoke_principal(connection: AsyncConnection, name: str) -> tuple[str, bool]:
    """Disable the principal ``name``: its token stops working. Its row and history stay.

    Returns its token's hash and whether it was enabled until now (False: it
    was already revoked). Raises :class:`PrincipalError` if there is none.
    """
    row = (
        await connection.execute(
            select(_PRINCIPALS.c.token_sha256, _PRINCIPALS.c.disabled)
            .where(_PRINCIPALS.c.name == name)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise PrincipalError(f"no principal named {name!r}")
    if row.disabled:
        return row.token_sha256, False
    await connection.execute(
        update(_PRINCIPALS).where(_PRINCIPALS.c.name == name).values(disabled=True)
    )
    log.info("principal revoked", extra={"principal": name})
    return row.token_sha256, True


#: SQLSTATE classes that mean "the server cannot serve now" rather than "bad request":
#: 08 connection exception, 53 insufficient resources, 57 operator intervention
#: (shutting down, starting up). asyncpg's errors of these classes reach us as plain DBAPIError.
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})


def is_database_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached now (not that it refused a query)."""
    if isinstance(exc, OperationalError | InterfaceError | OSError):  # OSError: TimeoutError too
        return True
    if isinstance(exc, DBAPIError):
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        return exc.connection_invalidated or sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    return False


class PrincipalsUnavailable(Exception):
    """A token that is not in the cache cannot be checked: the database cannot be reached."""


@dataclass(slots=True)
class _Verified:
    caller: Caller
    at: float  # the clock's time when the database last confirmed it


class PrincipalCache:
    """Principals verified against the database, by token hash; see the module docstring.

    ``max_entries`` bounds the memory (least recently used first out);
    ``revalidate_after`` is how old a verification may be before the next
    request re-checks it (while the database answers); ``ttl`` is how old it
    may be while the database cannot be reached. After a failed lookup the
    database is not asked again for ``retry_after`` seconds, so an outage
    costs one ``lookup_timeout`` now and then, not one per request.
    ``on_result`` is told each check's result: ``cached``, ``verified``,
    ``stale`` (served while the database was down), ``rejected`` or
    ``unavailable``. Not thread-safe: use it on one event loop.
    """

    def __init__(
        self,
        database: AsyncEngine,
        *,
        max_entries: int = 10_000,
        revalidate_after: float = 30.0,
        ttl: float = 3600.0,
        lookup_timeout: float = 2.0,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_result: Callable[[str], None] = lambda result: None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._database = database
        self._max_entries = max_entries
        self._revalidate_after = revalidate_after
        self._ttl = max(ttl, revalidate_after)
        self._lookup_timeout = lookup_timeout
        self._retry_after = retry_after
        self._clock = clock
        self._on_result = on_result
        self._entries: OrderedDict[str, _Verified] = OrderedDict()
        self._down_until = -math.inf

    def __len__(self) -> int:
        return len(self._entries)

    async def authenticate(self, token: str) -> Caller | None:
        """The enabled principal holding ``token``, or None.

        Raises :class:`PrincipalsUnavailable` when the answer needs the
        database and the database cannot be reached.
        """
        key = hash_token(token)
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None:
            age = now - entry.at
            if age < self._revalidate_after:
                self._entries.move_to_end(key)
                self._on_result("cached")
                return entry.caller
            if age >= self._ttl:
                del self._entries[key]
                entry = None
        if now < self._down_until:
            return self._stale(entry)
        try:
            async with asyncio.timeout(self._lookup_timeout):
                async with self._database.connect() as connection:
                    caller = await find_principal_by_hash(connection, key)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            self._down_until = self._clock() + self._retry_after
            log.warning(
                "cannot check an API token: database unreachable",
                extra={"error": type(exc).__name__, "cached": entry is not None},
            )
            return self._stale(entry)
        self._down_until = -math.inf
        if caller is None:
            self._entries.pop(key, None)
            self._on_result("rejected")
            return None
        self._entries[key] = _Verified(caller, now)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        self._on_result("verified")
        return caller

    def _stale(self, entry: _Verified | None) -> Caller:
        if entry is None:
            self._on_result("unavailable")
            raise PrincipalsUnavailable("the database cannot be reached to check this token")
        self._on_result("stale")
        return entry.caller

    def forget(self, token_sha256: str) -> None:
        """Drop a principal from the cache: its next request is checked against the database."""
        self._entries.pop(token_sha256, None)

    async def revoke(self, name: str, *, by: str, remote_addr: str | None = None) -> bool:
        """Revoke ``name`` (audited as done by ``by``); this process rejects its token at once.

        Returns False if it was already revoked; raises :class:`PrincipalError` if there is none.
        """
        async with self._database.begin() as connection:
            token_sha256, changed = await revoke_principal(connection, name)
            if changed:
                await record_audit(
                    connection,
                    by,
                    "principal.revoke",
                    "principal",
                    name,
                    remote_addr=remote_addr,
                )
        self.forget(token_sha256)
        return changed


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
