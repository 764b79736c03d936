"""The published figures (billing.service.figures) against hand-computed
ones: medians and 90th percentiles in opening hours, the windows, the
ratings by month, and no figure from fewer than five tickets."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from billing.service.figures import Times, compute
from billing.service.hours import Schedule

# UTC, Monday to Friday 09:00-17:00 (8 h a day). 2026-11-02 is a Monday.
OFFICE = Schedule("UTC", (((9 * 60, 17 * 60),),) * 5 + ((), ()))
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


OPENED = at(2, 9)
# Five high tickets opened Monday 09:00, answered after 1, 2, 3, 4 and 10
# opening hours (the last on Tuesday at 11:00: 8 h on Monday, 2 on Tuesday).
HIGH = [Times("high", OPENED, answered, None) for answered in (at(2, 10), at(2, 11), at(2, 12), at(2, 13), at(3, 11))]
# Four normal ones, opened Friday 16:00, answered Monday 10:00 (2 opening
# hours over the weekend), and resolved Monday 17:00 (9 h).
NORMAL = [Times("normal", at(6, 16), at(9, 10), at(9, 17)) for _ in range(4)]


def test_median_and_90th_percentile_in_opening_hours():
    figures = compute(HIGH + NORMAL, [], OFFICE, NOW)
    month = figures.windows[0]
    assert month.days == 30 and month.tickets == 9
    high = month.response["high"]
    # Sorted 1, 2, 3, 4, 10 h: median 3 h; 90th at rank 3.6 = 4 + 0.6 * 6 = 7.6 h.
    assert (high.count, high.median, high.p90) == (5, 3 * H, timedelta(hours=7, minutes=36))
    # Every ticket: 1, 2, 2, 2, 2, 3, 4, 10 and 2 → sorted 1 2 2 2 2 2 3 4 10: median 2 h,
    # 90th at rank 7.2 = 4 + 0.2 * 6 = 5.2 h.
    every = month.response["all"]
    assert (every.count, every.median, every.p90) == (9, 2 * H, timedelta(hours=5, minutes=12))


def test_no_figure_from_fewer_than_five_tickets():
    figures = compute(HIGH + NORMAL, [], OFFICE, NOW)
    normal = figures.windows[0].response["normal"]
    assert (normal.count, normal.median, normal.p90, normal.shown) == (4, None, None, False)
    # Four resolutions in all: none shown, not even for every criticality together.
    assert figures.windows[0].resolution["all"].count == 4 and not figures.windows[0].resolution["all"].shown
    assert figures.windows[0].response["critical"].count == 0


def test_the_windows_count_what_happened_within_them():
    # 40 days before NOW: inside 90 days, outside 30.
    old = [Times("low", at(10, 9, month=10), at(12, 9, month=10), None) for _ in range(5)]
    figures = compute(old, [], OFFICE, NOW)
    thirty, ninety = figures.windows
    assert thirty.tickets == 0 and not thirty.response["low"].shown
    # Opened Saturday 10 October, answered Monday 12 at 09:00: no opening time passed.
    assert ninety.tickets == 5 and ninety.response["low"].median == timedelta(0)


def test_ratings_by_month_need_five_to_show_an_average():
    ratings = [(at(3, 10), r) for r in (5, 4, 4, 3, 5)] + [(at(15, 10, month=10), r) for r in (5, 1)]
    figures = compute([], ratings, OFFICE, NOW)
    months = {m.month: m for m in figures.months}
    assert len(figures.months) == 12 and figures.months[-1].month == date(2026, 11, 1)
    assert (months[date(2026, 11, 1)].count, months[date(2026, 11, 1)].average) == (5, 4.2)
    assert (months[date(2026, 10, 1)].count, months[date(2026, 10, 1)].average) == (2, None)
    assert figures.ratings == 7
    assert figures.any_shown
