"""Where the outbound rows (callbacks of missed calls, follow-up surveys) plug into the KPIs.

漏接回拨率 and 回访覆盖率 are counted from callback and follow-up rows, which
another issue adds. Until then :class:`NoOutboundRows` answers "not
available" with the reason. The outbound issue replaces it with a class of
the same shape that counts its rows in SQL (numerator and denominator per
interval and group) and passes it to :func:`telephony.reports.kpis.compute`.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.reports.periods import Interval, Window

#: (interval start, group key) -> (numerator, denominator)
Counts = dict[tuple[object, str], tuple[int, int]]


class OutboundCounts(Protocol):
    """Counts of 漏接回拨率 and 回访覆盖率 from the outbound rows."""

    #: Why the KPIs cannot be computed, or None when they can.
    unavailable: str | None

    async def missed_callbacks(
        self, connection: AsyncConnection, window: Window, interval: Interval, scope: str
    ) -> Counts:
        """Missed calls called back / missed calls, per interval start and group key."""
        ...

    async def follow_ups(
        self, connection: AsyncConnection, window: Window, interval: Interval, scope: str
    ) -> Counts:
        """Follow-ups made / follow-ups due, per interval start and group key."""
        ...


class NoOutboundRows:
    """Today's answer: no callback or follow-up table exists yet."""

    unavailable: str | None = (
        "no callback or follow-up rows are stored yet (the outbound issue adds them)"
    )

    async def missed_callbacks(
        self, connection: AsyncConnection, window: Window, interval: Interval, scope: str
    ) -> Counts:
        return {}

    async def follow_ups(
        self, connection: AsyncConnection, window: Window, interval: Interval, scope: str
    ) -> Counts:
        return {}
