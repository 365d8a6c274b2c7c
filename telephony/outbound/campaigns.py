"""Follow-up (回访) campaigns: numbers with a reference (ticket id), from the API or a CSV;
and the coverage of any set of tasks, counted from the rows.

A campaign's numbers become ``survey`` tasks of the dialer, each called from
the campaign's hotline number and played the campaign's flow's survey.
Coverage (回访覆盖率) counts a task as covered once it was reached or tried its
maximum times; the reached rate is reached tasks over the tasks to call.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.outbound.model import TaskState
from telephony.outbound.store import CAMPAIGNS, TASKS

#: A number the trunk can dial: digits, optionally a leading +.
NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
#: The most numbers one campaign may hold.
MAX_NUMBERS = 50_000
MAX_REFERENCE = 128


class CampaignError(ValueError):
    """A campaign that cannot be stored; the message says which line or field."""


@dataclass(frozen=True, slots=True)
class Target:
    """One number to follow up, with its reference (the ticket id)."""

    number: str
    reference: str


def parse_csv(text: str) -> list[Target]:
    """``number,reference`` lines (a header line naming them is skipped); errors name the line."""
    targets: list[Target] = []
    for line, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not fields or not "".join(fields).strip():
            continue
        number = fields[0].strip()
        reference = fields[1].strip() if len(fields) > 1 else ""
        if line == 1 and not NUMBER.match(number) and number.lower() in ("number", "phone", "号码"):
            continue
        targets.append(_target(number, reference, f"line {line}"))
    return targets


def check_targets(targets: Iterable[tuple[str, str]]) -> list[Target]:
    """Validated targets from (number, reference) pairs."""
    return [_target(n, r, f"numbers[{i}]") for i, (n, r) in enumerate(targets)]


def _target(number: str, reference: str, where: str) -> Target:
    if not NUMBER.match(number):
        raise CampaignError(f"{where}: {number[:40]!r} is not a telephone number")
    if len(reference) > MAX_REFERENCE:
        raise CampaignError(f"{where}: the reference is longer than {MAX_REFERENCE}")
    return Target(number, reference or number)


async def create_campaign(
    connection: AsyncConnection,
    *,
    name: str,
    hotline: str,
    flow: str,
    max_attempts: int,
    retry_seconds: float,
    targets: list[Target],
    created_by: str | None,
    now: dt.datetime,
) -> uuidlib.UUID:
    """Store the campaign and one pending ``survey`` task per target."""
    if not targets:
        raise CampaignError("a campaign needs at least one number")
    if len(targets) > MAX_NUMBERS:
        raise CampaignError(f"a campaign holds at most {MAX_NUMBERS} numbers")
    campaign_id = uuidlib.uuid4()
    await connection.execute(
        CAMPAIGNS.insert().values(
            id=campaign_id,
            name=name,
            hotline=hotline,
            flow=flow,
            max_attempts=max_attempts,
            retry_seconds=retry_seconds,
            created_by=created_by,
            created_at=now,
        )
    )
    rows = [
        {
            "id": uuidlib.uuid4(),
            "kind": "survey",
            "hotline": hotline,
            "number": t.number,
            "state": TaskState.PENDING.value,
            "campaign_id": campaign_id,
            "reference": t.reference,
            "attempts": 0,
            "max_attempts": max_attempts,
            "next_at": now,
            "missed_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        for t in targets
    ]
    for start in range(0, len(rows), 1000):
        await connection.execute(TASKS.insert(), rows[start : start + 1000])
    return campaign_id


@dataclass(frozen=True, slots=True)
class Coverage:
    """A set of tasks as the rows say: how many, in which state, covered and reached."""

    total: int
    pending: int
    dialing: int
    reached: int
    failed: int
    not_required: int
    attempted: int
    attempts: int
    scored: int

    @property
    def due(self) -> int:
        """Tasks to call (all but those never to be called)."""
        return self.total - self.not_required

    def rate(self, part: int) -> float | None:
        return None if self.due == 0 else round(part / self.due, 4)

    def view(self) -> dict[str, Any]:
        """The API's shape: counts and rates (None with nothing to call)."""
        return {
            "total": self.total,
            "pending": self.pending,
            "dialing": self.dialing,
            "reached": self.reached,
            "failed": self.failed,
            "not_required": self.not_required,
            "attempted": self.attempted,
            "attempts": self.attempts,
            "scored": self.scored,
            "attempted_rate": self.rate(self.attempted),
            "coverage": self.rate(self.reached + self.failed),
            "reached_rate": self.rate(self.reached),
        }


async def coverage(connection: AsyncConnection, *conditions: ColumnElement[bool]) -> Coverage:
    """Count the tasks matching ``conditions``."""

    def count(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = (
        await connection.execute(
            select(
                func.count(),
                *(count(TASKS.c.state == s.value) for s in TaskState),
                count(TASKS.c.attempts > 0),
                func.coalesce(func.sum(TASKS.c.attempts), 0),
                count(TASKS.c.score.is_not(None)),
            ).where(*conditions)
        )
    ).one()
    total, pending, dialing, reached, failed, not_required, attempted, attempts, scored = (
        int(v) for v in row
    )
    return Coverage(
        total, pending, dialing, reached, failed, not_required, attempted, attempts, scored
    )
