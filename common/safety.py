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

from billing.text import spreadsheet_cell

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


def init_app(app: Flask) -> None:
    app.after_request(_secure_headers)


def csv_writer(out, **options: Any) -> _SafeWriter:
    """The one CSV writer of the product: cells that a spreadsheet would read
    as a formula (=, +, -, @, tab, CR first) are neutralised."""
    return _SafeWriter(out, **options)
