"""What every request and response goes through to stay safe, each at one
place: what the browser is told to trust (the headers of every response),
where a view may send the visitor next, and CSV files no spreadsheet runs.

The headers are a small ``after_request`` of our own rather than
Flask-Talisman: a handful of fixed values, no per-view policy, nothing that
needs a library's weight or its nonce machinery (no page has an inline
script or style to allow)."""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Flask, Response, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import BadRequest
from werkzeug.routing import BaseConverter, ValidationError

from billing.models import MAX_INTEGER
from billing.text import spreadsheet_cell

# The largest id or amount in minor units a column of ours holds (a 32-bit
# INTEGER on PostgreSQL): anything beyond cannot name a row or be paid.
MAX_ID = MAX_INTEGER

# Scripts and styles only from our own files (htmx and Pico are vendored):
# no inline script, no eval (htmx's allowEval is off too), no framing by
# anyone. Pico's icons are data: URIs in its CSS.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
))
HEADERS = {
    # For browsers that predate frame-ancestors.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
}
HSTS = "max-age=31536000; includeSubDomains"


def _secure_headers(response: Response) -> Response:
    if response.mimetype == "text/html":
        # Not on a PDF: Chromium's viewer is a plugin that object-src 'none' would block.
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _local(target: str) -> bool:
    if not target.startswith("/") or target[1:2] in ("/", "\\"):
        return False
    # Browsers drop tabs and newlines before reading a URL ("/\t/evil" is
    # "//evil") and treat "\" as "/"; no control character or blank belongs
    # in a path we built.
    if any(not char.isprintable() or char.isspace() for char in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path of this site, else ``default``: a view that
    takes ``next`` must not become an open redirect. Checked as typed and
    once percent-decoded, so "%09" or "%2F%2F" hide nothing."""
    if target and _local(target) and _local(unquote(target)):
        return target
    return default


def _one_break(cell: object) -> object:
    # A bare CR inside a cell is left unquoted by a writer whose lines end
    # with LF, and splits the row for any reader: line breaks become LF.
    return cell.replace("\r\n", "\n").replace("\r", "\n") if isinstance(cell, str) else cell


class _SafeWriter:
    """csv.writer whose every cell goes through billing.text.spreadsheet_cell."""

    def __init__(self, out, **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row) -> Any:
        return self._writer.writerow([_one_break(spreadsheet_cell(cell)) for cell in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


# --- Bad input: one place each ----------------------------------------------

def parse_id(text: str | None) -> int | None:
    """A whole number of ASCII digits from 0 to MAX_ID, else None: what an
    id, a quantity or an amount in minor units may be. "²" and "١" pass
    str.isdigit() but are no number anybody typed for us."""
    if not text or len(text) > 10 or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def id_arg(name: str) -> int | None:
    """The query-string parameter ``name`` as an id (parse_id), None when it
    is absent, 400 when it is something else."""
    text = request.args.get(name)
    if text in (None, ""):
        return None
    value = parse_id(text)
    if value is None:
        _bad_request(_l("The address asks for something that does not exist: %(name)s must be a number.",
                        name=name))
    return value


class IdConverter(BaseConverter):
    """``<int:…>`` in every route: ASCII digits up to MAX_ID, so a huge or
    exotic number is a 404 like any id that names nothing, never a database
    error."""

    regex = r"[0-9]{1,10}"
    weight = 50
    part_isolating = True

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValidationError()
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


def _bad_request(message) -> None:
    error = BadRequest()
    error.description_for_user = message  # type: ignore[attr-defined]
    raise error


def _has_control(text: str, allowed: str = "") -> bool:
    return any((ord(char) < 32 or 127 <= ord(char) < 160) and char not in allowed for char in text)


def _refuse_control_characters() -> None:
    """NUL and the other control characters have no place in a path, a query
    string or a form value (a text box may hold tabs and line breaks):
    refused at once, before any view or database sees them."""
    if _has_control(request.path):
        _bad_request(_CONTROL_MESSAGE)
    for source in (request.args, request.form) if request.method != "GET" else (request.args,):
        for key, values in source.lists():
            if _has_control(key) or any(_has_control(value, "\t\n\r") for value in values):
                _bad_request(_CONTROL_MESSAGE)


_CONTROL_MESSAGE = _l("What you sent contains a control character (such as a NUL byte) that has no place in it. "
                      "Please remove it and try again.")


def init_app(app: Flask) -> None:
    """The request filter and the response headers. The id converter must be
    in place before any route is added: ``install_converters`` in create_app."""
    app.before_request(_refuse_control_characters)
    app.after_request(_secure_headers)


def install_converters(app: Flask) -> None:
    app.url_map.converters["int"] = IdConverter


def csv_writer(out, **options: Any) -> _SafeWriter:
    """The one CSV writer of the product: cells that a spreadsheet would read
    as a formula (=, +, -, @, tab, CR first) are neutralised."""
    return _SafeWriter(out, **options)
