"""The public service page of a catalogue that promises one (seed 004: "we
will publish our response times and our users' ratings"): median and 90th
percentile of the time to first response and to resolution, in opening
hours, per criticality, over 30 and 90 days, and the ratings by month.

Anybody may read it; a catalogue that does not publish has no such page
(404). The figures come from billing.service.figures.published, which keeps
them while nothing they depend on changed."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort
from sqlalchemy import select

from billing import clock
from billing.catalogue.models import Catalogue
from billing.desk.models import CRITICALITIES
from billing.service import figures
from billing.service import levels as service_levels
from billing.service.hours import format_ranges
from common import charts
from common.extensions import db
from common.fragments import page_or_fragment

bp = Blueprint("service", __name__)

# The charts' drawing area, in SVG user units: narrow enough that a phone
# shows its text at about the page's size.
CHART_WIDTH = charts.CHART_WIDTH
ROW_HEIGHT = 44


def response_chart(window: figures.Window) -> dict | None:
    """The bars of the first-response chart (median and 90th percentile per
    criticality shown), scaled to the longest; None when nothing is shown."""
    rows = [(level, window.response[level]) for level in figures.ROWS if window.response[level].shown]
    if not rows:
        return None
    longest = max((stat.p90 or timedelta(0)) for _, stat in rows) or timedelta(minutes=1)
    bars = []
    for index, (level, stat) in enumerate(rows):
        assert stat.median is not None and stat.p90 is not None
        bars.append({"level": level, "y": index * ROW_HEIGHT, "median": stat.median, "p90": stat.p90,
                     "median_width": max(2, round(CHART_WIDTH * (stat.median / longest))),
                     "p90_width": max(2, round(CHART_WIDTH * (stat.p90 / longest)))})
    return {"bars": bars, "height": len(rows) * ROW_HEIGHT, "width": CHART_WIDTH}


def ratings_chart(months: list[figures.Month]) -> dict | None:
    """Columns of the average rating by month (1 to 5), for months with an average shown."""
    return charts.columns(months, lambda month: month.average, maximum=5, width=CHART_WIDTH)


@bp.get("/service/<slug>")
def page(slug: str):
    catalogue = db.session.scalar(select(Catalogue).where(Catalogue.slug == slug))
    if catalogue is None or not catalogue.publishes_service_levels:
        abort(404)
    found = figures.published(db.session(), catalogue.id, clock.now())
    sla = service_levels.levels(db.session())
    hours = [(day, format_ranges(ranges)) for day, ranges in zip(service_levels.WEEKDAYS, sla.schedule.week,
                                                                   strict=True)]
    return page_or_fragment(
        "service/page.html", None, catalogue=catalogue, figures=found, rows=figures.ROWS,
        minimum=figures.MIN_TICKETS, charts=[response_chart(w) for w in found.windows],
        ratings=ratings_chart(found.months), hours=hours, targets=sla.targets,
        criticalities=list(reversed(CRITICALITIES)), timezone=sla.schedule.timezone)
