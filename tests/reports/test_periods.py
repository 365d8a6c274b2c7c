"""Report windows in local time: out-of-range dates are refused, not crashed on."""

from __future__ import annotations

from datetime import date

import pytest

from telephony.reports.periods import Window


@pytest.mark.parametrize(
    ("first", "last"), [(date(1, 1, 1), date(1, 1, 1)), (date(9999, 12, 31), date(9999, 12, 31))]
)
def test_dates_at_the_calendars_ends_are_refused_with_a_reason(first: date, last: date) -> None:
    with pytest.raises(ValueError, match="years 1 to 9999"):
        Window.of_dates(first, last, "Asia/Shanghai")


def test_a_local_day_is_its_midnights_in_utc() -> None:
    window = Window.of_dates(date(2026, 11, 10), date(2026, 11, 10), "Asia/Shanghai")
    assert (window.start.isoformat(), window.end.isoformat()) == (
        "2026-11-09T16:00:00+00:00",
        "2026-11-10T16:00:00+00:00",
    )
