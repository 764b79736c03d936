"""One way to answer a page or its fragment.

A page template and its htmx fragments live side by side, fragments named
with a leading underscore (``desk/queue.html`` includes ``desk/_queue_list.html``).
A view answers with ``page_or_fragment``: the fragment for an htmx request
that swaps part of the page, the whole page otherwise, so that every page
also works without JavaScript; and ``Vary: HX-Request`` either way, since one
URL then answers two ways and caches must keep them apart."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, render_template

from common.extensions import htmx


def wants_fragment() -> bool:
    """An htmx request for part of the page.

    Boosted links and forms send HX-Request too but swap the whole body, and a
    history restore after a cache miss needs the whole page: both get the page.
    """
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def page_or_fragment(page: str, fragment: str | None, status: int = 200, /, **context: Any) -> Response:
    """``fragment`` for an htmx request that wants part of the page (None:
    this request wants none), ``page`` otherwise, each rendered with
    ``context`` (which may hold a ``status`` of its own, such as a filter).
    """
    template = fragment if fragment is not None and wants_fragment() else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")
    return response
