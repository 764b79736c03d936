"""What every request and response goes through to stay safe, each at one
place: where a view may send the visitor next, and CSV files no spreadsheet
runs."""

from __future__ import annotations

import csv
from typing import Any
from urllib.parse import unquote, urlsplit

from billing.text import spreadsheet_cell


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


def csv_writer(out, **options: Any) -> _SafeWriter:
    """The one CSV writer of the product: cells that a spreadsheet would read
    as a formula (=, +, -, @, tab, CR first) are neutralised."""
    return _SafeWriter(out, **options)
