"""Small server-rendered SVG column charts: the geometry here, the drawing in
templates/_chart.html, no JavaScript. The public service page's ratings and
the provider's reports draw with it.

Sizes are SVG user units, narrow enough that a phone shows the text at about
the page's size."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

CHART_WIDTH = 420
TOP, PLOT, BOTTOM = 20, 110, 40


def columns(items: Sequence[Any], value: Callable[[Any], float | int | None], *,
            maximum: float | int | None = None, width: int = CHART_WIDTH) -> dict | None:
    """One column per item, its height ``value(item)`` scaled to ``maximum``
    (default: the largest value); None when no item has a value above 0.
    Each column carries its ``item`` for the labels the template writes."""
    values = [value(item) for item in items]
    largest = maximum if maximum is not None else max((v for v in values if v is not None), default=0)
    if not items or not largest or not any(v for v in values):
        return None
    step = width // len(items)
    drawn = [{"item": item, "value": v, "x": index * step + 4, "width": max(step - 8, 2),
              "height": round(PLOT * v / largest) if v else 0}
             for index, (item, v) in enumerate(zip(items, values, strict=True))]
    return {"columns": drawn, "top": TOP, "plot": PLOT, "height": TOP + PLOT + BOTTOM, "width": width}
