"""Report windows and intervals, in the hotline's local time.

A window is given as local dates (``from``/``to``, both included) or a month
(``2026-11``) and becomes a half-open UTC range ``[start, end)``. Rows are
put into intervals by PostgreSQL itself (``date_trunc`` / ``date_bin`` on the
local time), so a day or a month is the hotline's, not UTC's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, DateTime, func, literal, literal_column, null

#: The hotlines' time zone (the IVR calendars use it too).
DEFAULT_TIME_ZONE = "Asia/Shanghai"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class Interval(Enum):
    """How rows are grouped in time; ``total`` is the whole window as one row."""

    QUARTER_HOUR = "15min"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open UTC range ``[start, end)`` and the time zone its days are counted in."""

    start: datetime
    end: datetime
    zone: str = DEFAULT_TIME_ZONE

    @classmethod
    def of_dates(cls, first: date, last: date, zone: str = DEFAULT_TIME_ZONE) -> Window:
        """From local midnight of ``first`` to local midnight after ``last``."""
        if last < first:
            raise ValueError("the window ends before it starts")
        tz = time_zone(zone)
        try:
            start = datetime.combine(first, time(), tz).astimezone(UTC)
            end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
        except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 anywhere
            raise ValueError("the dates must fall within the years 1 to 9999 in UTC") from None
        return cls(start, end, zone)

    @classmethod
    def of_month(cls, month: str, zone: str = DEFAULT_TIME_ZONE) -> Window:
        """The local calendar month ``YYYY-MM``."""
        match = _MONTH.match(month)
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"{month!r} is not a month (YYYY-MM)")
        year, number = int(match.group(1)), int(match.group(2))
        first = date(year, number, 1)
        following = date(year + number // 12, number % 12 + 1, 1)
        return cls.of_dates(first, following - timedelta(days=1), zone)


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ValueError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


_TRUNC = {Interval.HOUR: "hour", Interval.DAY: "day", Interval.MONTH: "month"}


def bucket(
    column: ColumnElement[datetime], interval: Interval, zone: str
) -> ColumnElement[datetime]:
    """The start of ``column``'s interval, as a ``timestamptz`` (NULL for ``total``)."""
    if interval is Interval.TOTAL:
        return null().cast(DateTime(timezone=True))
    local = func.timezone(zone, column)
    if interval is Interval.QUARTER_HOUR:
        start = func.date_bin(
            literal_column("interval '15 minutes'"), local, literal_column("timestamp '2000-01-01'")
        )
    else:
        start = func.date_trunc(literal(_TRUNC[interval]), local)
    return func.timezone(zone, start).cast(DateTime(timezone=True))


#: The PostgreSQL interval of one step, for the intervals that have one.
STEP = {
    Interval.QUARTER_HOUR: "15 minutes",
    Interval.HOUR: "1 hour",
    Interval.DAY: "1 day",
    Interval.MONTH: "1 month",
}


def interval_bounds(
    window: Window, interval: Interval
) -> list[tuple[datetime | None, datetime, datetime]]:
    """Each interval of the window as (its start as :func:`bucket` names it, from, to), in UTC.

    The first and last are cut to the window; ``total`` is one interval named None.
    """
    if interval is Interval.TOTAL:
        return [(None, window.start, window.end)]
    tz = time_zone(window.zone)
    local = window.start.astimezone(tz).replace(tzinfo=None)
    if interval is Interval.MONTH:
        local = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif interval is Interval.DAY:
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elif interval is Interval.HOUR:
        local = local.replace(minute=0, second=0, microsecond=0)
    else:
        local = local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
    bounds: list[tuple[datetime | None, datetime, datetime]] = []
    while True:
        start = local.replace(tzinfo=tz).astimezone(UTC)
        if start >= window.end:
            return bounds
        local = _next(local, interval)
        end = local.replace(tzinfo=tz).astimezone(UTC)
        bounds.append((start, max(start, window.start), min(end, window.end)))


def _next(local: datetime, interval: Interval) -> datetime:
    if interval is Interval.MONTH:
        return local.replace(year=local.year + local.month // 12, month=local.month % 12 + 1)
    if interval is Interval.DAY:
        return datetime.combine(local.date() + timedelta(days=1), time())
    return local + (timedelta(hours=1) if interval is Interval.HOUR else timedelta(minutes=15))
