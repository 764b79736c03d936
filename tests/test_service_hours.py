"""Opening-hours arithmetic (billing.service.hours) against figures worked by
hand: weekends, holidays, lunch breaks, clock changes, tickets opened outside
hours. Paris, Monday to Friday 09:00-12:00 and 13:00-18:00 (8 h a day);
2026-03-29 and 2026-10-25 are the Sundays the clocks change; 2026-12-25 is a
Friday and a holiday."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from billing.service.hours import (
    Schedule,
    ScheduleError,
    add_opening_time,
    format_ranges,
    opening_time_between,
    parse_ranges,
    percentile,
)

PARIS = ZoneInfo("Europe/Paris")
DAY = ((9 * 60, 12 * 60), (13 * 60, 18 * 60))
OFFICE = Schedule("Europe/Paris", (DAY,) * 5 + ((), ()), frozenset({date(2026, 12, 25)}))
ALWAYS = Schedule("Europe/Paris", (((0, 24 * 60),),) * 7)
NEVER = Schedule("Europe/Paris", ((),) * 7)


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


H = timedelta(hours=1)
M = timedelta(minutes=1)

# (what, start, opening time to add, due time by hand)
DUE = [
    ("inside the morning", paris(2026, 3, 2, 9, 30), 2 * H, paris(2026, 3, 2, 11, 30)),
    ("over the lunch break", paris(2026, 3, 2, 11, 0), 2 * H, paris(2026, 3, 2, 14, 0)),
    ("ends exactly at closing", paris(2026, 3, 2, 17, 0), H, paris(2026, 3, 2, 18, 0)),
    ("before opening", paris(2026, 3, 2, 7, 15), H, paris(2026, 3, 2, 10, 0)),
    ("during lunch", paris(2026, 3, 2, 12, 20), 30 * M, paris(2026, 3, 2, 13, 30)),
    ("after closing, to the next morning", paris(2026, 3, 2, 20, 0), 4 * H, paris(2026, 3, 3, 14, 0)),
    ("Friday evening over the weekend", paris(2026, 3, 6, 17, 0), 2 * H, paris(2026, 3, 9, 10, 0)),
    ("opened on Saturday", paris(2026, 3, 7, 10, 0), 24 * H, paris(2026, 3, 11, 18, 0)),
    # Thursday 24 December 17:00 + 2 h: Friday is Christmas, Monday 28 at 10:00.
    ("over a holiday", paris(2026, 12, 24, 17, 0), 2 * H, paris(2026, 12, 28, 10, 0)),
    # Friday 27 March 17:00 CET + 2 h: Monday 30 at 10:00 CEST, 63 real hours later.
    ("over the spring clock change", paris(2026, 3, 27, 17, 0), 2 * H, paris(2026, 3, 30, 10, 0)),
    ("over the autumn clock change", paris(2026, 10, 23, 17, 0), 2 * H, paris(2026, 10, 26, 10, 0)),
    ("nothing to add", paris(2026, 3, 7, 10, 0), timedelta(0), paris(2026, 3, 7, 10, 0)),
    # Open day and night: the spring Sunday has 23 hours, the autumn one 25.
    ("always open, spring", paris(2026, 3, 29, 0, 0), 24 * H, paris(2026, 3, 30, 1, 0)),
    ("always open, autumn", paris(2026, 10, 25, 0, 0), 24 * H, paris(2026, 10, 25, 23, 0)),
]


@pytest.mark.parametrize("what, start, amount, due", DUE, ids=[row[0] for row in DUE])
def test_n_opening_hours_after(what, start, amount, due):
    schedule = ALWAYS if what.startswith("always") else OFFICE
    assert add_opening_time(schedule, start, amount) == due


@pytest.mark.parametrize("what, start, amount, due", DUE, ids=[row[0] for row in DUE])
def test_opening_hours_between_undoes_the_due_time(what, start, amount, due):
    schedule = ALWAYS if what.startswith("always") else OFFICE
    assert opening_time_between(schedule, start, due) == amount


BETWEEN = [
    ("a whole working week", paris(2026, 3, 2, 0, 0), paris(2026, 3, 9, 0, 0), 40 * H),
    ("Christmas week loses a day", paris(2026, 12, 21, 0, 0), paris(2026, 12, 28, 0, 0), 32 * H),
    ("a weekend only", paris(2026, 3, 7, 8, 0), paris(2026, 3, 8, 20, 0), timedelta(0)),
    ("end before start", paris(2026, 3, 3, 10, 0), paris(2026, 3, 2, 10, 0), timedelta(0)),
    ("the week of the spring change", paris(2026, 3, 27, 9, 0), paris(2026, 3, 30, 18, 0), 16 * H),
    ("opened at night, answered at 09:20", paris(2026, 3, 2, 23, 0), paris(2026, 3, 3, 9, 20), 20 * M),
    ("given in another zone", datetime(2026, 3, 2, 8, 0, tzinfo=ZoneInfo("UTC")),
     datetime(2026, 3, 2, 12, 0, tzinfo=ZoneInfo("UTC")), 3 * H),  # 09:00-13:00 in Paris, lunch from 12
    ("always open over the autumn night", paris(2026, 10, 24, 12, 0), paris(2026, 10, 25, 12, 0), 25 * H),
]


@pytest.mark.parametrize("what, start, end, expected", BETWEEN, ids=[row[0] for row in BETWEEN])
def test_opening_hours_between(what, start, end, expected):
    schedule = ALWAYS if what.startswith("always") else OFFICE
    assert opening_time_between(schedule, start, end) == expected


def test_a_schedule_never_open_has_no_due_time():
    assert add_opening_time(NEVER, paris(2026, 3, 2, 9, 0), H) is None
    assert opening_time_between(NEVER, paris(2026, 3, 2, 9, 0), paris(2026, 4, 2, 9, 0)) == timedelta(0)


@pytest.mark.parametrize("values, share, expected", [
    ([1, 2, 3, 10], 0.5, 2.5),
    ([1, 2, 3, 10], 0.9, 7.9),  # rank 2.7: 3 + 0.7 * (10 - 3)
    ([5], 0.9, 5),
    ([4, 1, 3, 2, 5], 0.5, 3),
    ([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 0.9, 91),  # rank 8.1
])
def test_percentile(values, share, expected):
    assert percentile(values, share) == pytest.approx(expected)


@pytest.mark.parametrize("text, ranges", [
    ("", ()),
    ("09:00-12:00, 13:30-18:00", ((540, 720), (810, 1080))),
    ("13h30 - 18h; 9-12", ((540, 720), (810, 1080))),
    ("0:00-24:00", ((0, 1440),)),
])
def test_hours_as_typed(text, ranges):
    assert parse_ranges(text, "monday") == ranges
    assert parse_ranges(format_ranges(ranges), "monday") == ranges


@pytest.mark.parametrize("text", ["9", "09:00-25:00", "12:00-09:00", "09:00-12:00, 11:00-13:00", "9:75-10",
                                  "morning"])
def test_hours_that_make_no_sense_are_refused_on_their_field(text):
    with pytest.raises(ScheduleError) as refused:
        parse_ranges(text, "tuesday")
    assert refused.value.field == "tuesday"
