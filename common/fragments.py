"""When a view may answer with a fragment instead of the whole page."""

from __future__ import annotations

from common.extensions import htmx


def wants_fragment() -> bool:
    """An htmx request for part of the page.

    Boosted links and forms send HX-Request too but swap the whole body, and a
    history restore after a cache miss needs the whole page: both get the page.
    """
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request
