"""``/v1/blocked-numbers`` (拦截恶意号码): numbers whose calls the IVR refuses.

Agents may block a malicious caller (the contract lists it among agent
functions); admins and supervisors may also unblock. Admins, supervisors
and auditors read the list. Every change is audited in its own transaction.

Blocking a number that is already blocked answers 200 with the entry as it
stands. An agent never changes an existing entry: who blocked it and why
stay as its first author wrote them (an admin's reason is not replaced by an
agent's). An admin or supervisor, who may unblock and block again anyway,
replaces the reason when it sends one, and becomes the author (audited as
an update).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert

from telephony.api.deps import AuditLog, ReportReader, ServicesDep, require_role
from telephony.api.errors import ERROR_RESPONSES, not_found
from telephony.api.schemas import BlockedNumberCreate, BlockedNumberList, BlockedNumberView
from telephony.auth import Caller, Role
from telephony.store.models import BlockedNumber, table_of

router = APIRouter(
    prefix="/v1/blocked-numbers", tags=["blocked numbers"], responses=ERROR_RESPONSES
)

_BLOCKED = table_of(BlockedNumber)
Blocker = Annotated[Caller, Depends(require_role(Role.ADMIN, Role.SUPERVISOR, Role.AGENT))]
Unblocker = Annotated[Caller, Depends(require_role(Role.ADMIN, Role.SUPERVISOR))]
#: Who may change an existing entry's reason and author (those who may unblock it).
_EDITORS = frozenset({Role.ADMIN, Role.SUPERVISOR})
NumberPath = Path(description="the blocked number", pattern=r"^\+?[0-9]{3,20}$")


@router.get("", summary="List blocked numbers")
async def list_blocked(services: ServicesDep, caller: ReportReader) -> BlockedNumberList:
    async with services.database.connect() as connection:
        rows = (await connection.execute(select(_BLOCKED).order_by(_BLOCKED.c.number))).all()
    return BlockedNumberList(
        numbers=[BlockedNumberView.model_validate(dict(r._mapping)) for r in rows]
    )


@router.post(
    "",
    status_code=201,
    summary="Block a number (agent, supervisor, admin)",
    responses={
        200: {
            "model": BlockedNumberView,
            "description": "Already blocked: the entry as it stands (an agent changes nothing; "
            "an admin or supervisor sending a reason replaces it and becomes the author).",
        }
    },
)
async def block(
    body: BlockedNumberCreate,
    services: ServicesDep,
    caller: Blocker,
    audit: AuditLog,
    response: Response,
) -> BlockedNumberView:
    async with services.database.begin() as connection:
        created = await connection.scalar(
            insert(_BLOCKED)
            .values(number=body.number, reason=body.reason, created_by=caller.name)
            .on_conflict_do_nothing(index_elements=["number"])
            .returning(_BLOCKED.c.number)
        )
        if created is not None:
            await audit.record_on(
                connection, "blocked_number.add", "number", body.number, reason=body.reason
            )
        else:
            response.status_code = 200
            if caller.role in _EDITORS and body.reason is not None:
                await connection.execute(
                    update(_BLOCKED)
                    .where(_BLOCKED.c.number == body.number)
                    .values(reason=body.reason, created_by=caller.name)
                )
                await audit.record_on(
                    connection, "blocked_number.update", "number", body.number, reason=body.reason
                )
        row = (
            await connection.execute(select(_BLOCKED).where(_BLOCKED.c.number == body.number))
        ).one()
    services.blocked.add(body.number)
    return BlockedNumberView.model_validate(dict(row._mapping))


@router.delete("/{number}", status_code=204, summary="Unblock a number (supervisor, admin)")
async def unblock(
    services: ServicesDep, caller: Unblocker, audit: AuditLog, number: str = NumberPath
) -> Response:
    async with services.database.begin() as connection:
        gone = await connection.execute(delete(_BLOCKED).where(_BLOCKED.c.number == number))
        if gone.rowcount == 0:
            raise not_found("blocked number", number)
        await audit.record_on(connection, "blocked_number.remove", "number", number)
    services.blocked.discard(number)
    return Response(status_code=204)
