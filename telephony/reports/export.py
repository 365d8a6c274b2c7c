"""The KPI table as CSV or XLSX (openpyxl): one line per interval and group.

Columns: the interval's local start, the scope, the group, then per KPI its
numerator, denominator and value (a fraction as a decimal with 6 places; the
reason when the KPI is not available). XLSX is built in memory and returned as
bytes: callers on the event loop run :func:`render` in a thread.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from enum import Enum

from openpyxl import Workbook

from telephony.reports.kpis import DEFINITIONS, KpiRow, KpiValue
from telephony.reports.periods import time_zone


class Format(Enum):
    CSV = "csv"
    XLSX = "xlsx"


MEDIA_TYPES = {
    Format.CSV: "text/csv; charset=utf-8",
    Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def header() -> list[str]:
    """The column names (each KPI's key and its Chinese name)."""
    names = ["interval_start", "scope", "group"]
    for definition in DEFINITIONS:
        label = f"{definition.key} {definition.name}"
        names += [f"{label} numerator", f"{label} denominator", f"{label} value"]
    return names


def _cells(value: KpiValue) -> list[str | int | None]:
    if not value.available:
        return [None, None, value.reason]
    fraction = value.fraction
    shown = None if fraction is None else f"{float(fraction):.6f}"
    return [value.numerator, value.denominator, shown]


def table(rows: Sequence[KpiRow], zone: str) -> list[list[str | int | None]]:
    """The header and one line per row."""
    tz = time_zone(zone)
    lines: list[list[str | int | None]] = [list(header())]
    for row in rows:
        start = row.interval_start.astimezone(tz).isoformat() if row.interval_start else "total"
        line: list[str | int | None] = [start, row.scope.value, row.group]
        for definition in DEFINITIONS:
            line += _cells(row.values[definition.key])
        lines.append(line)
    return lines


def render(rows: Sequence[KpiRow], zone: str, format: Format) -> bytes:
    """The table in ``format`` (CSV with a BOM, so that spreadsheet programs read UTF-8)."""
    lines = table(rows, zone)
    if format is Format.CSV:
        text = io.StringIO()
        csv.writer(text).writerows(lines)
        return ("\ufeff" + text.getvalue()).encode()
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "KPIs"
    for line in lines:
        sheet.append(line)
    sheet.freeze_panes = "D2"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
