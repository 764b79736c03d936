"""Text rules shared by every way in and out (forms, services, mail, CSV,
file names). Pure functions, no Flask."""

from __future__ import annotations

import os
import re
import unicodedata

# Line and paragraph breaks, and every other control character: none has a
# place in a one-line value (a subject, a name), and CR/LF in one would break
# the mail header it ends up in.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Runs of plain spaces only: a no-break space (French "reçu\u00a0:") stays.
_SPACES = re.compile(r" {2,}")

# Bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069): in a
# file name they make "invoice<U+202E>fdp.exe" read as "invoiceexe.pdf".
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")


def single_line(value: str | None) -> str:
    """``value`` on one line: breaks and control characters become one space,
    runs of spaces one space, no space at either end."""
    if not value:
        return ""
    return _SPACES.sub(" ", _BREAKS.sub(" ", value)).strip(" ")


def without_bidi_controls(value: str) -> str:
    return _BIDI.sub("", value)


# A spreadsheet reads a cell starting with one of these as a formula
# (=HYPERLINK(…), +cmd|…, -1+…, @SUM(…)), or, after a tab or CR, may.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain number (a negative quantity in a statement) is not a formula and
# stays a number for the spreadsheet.
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def spreadsheet_cell(value: object) -> object:
    """A CSV cell that no spreadsheet runs: text starting like a formula gets
    a leading apostrophe (OWASP's advice), numbers are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def write_private(path: str | os.PathLike[str], content: bytes) -> None:
    """Write a new file only its owner may read (mode 0600, whatever the
    umask): a client's attachment, a mail with a reset link."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)


def is_control(char: str) -> bool:
    """A control character (Unicode category Cc): NUL, CR, LF, ESC …"""
    return unicodedata.category(char) == "Cc"


# French sets a no-break space before : ; ? ! that end a phrase, and inside
# « », so that a line never starts with the mark. A time (12:30) or an
# address (https://) is left alone: no blank follows the colon.
_FRENCH_MARK = re.compile(r"(?<=\S)[ \u202f]?([:;?!])(?=\s|$)")


def french_spacing(text: str) -> str:
    """``text`` with French typography's no-break spaces (U+00A0)."""
    text = _FRENCH_MARK.sub("\u00a0\\1", text)
    return re.sub(r"«[ \u202f]?", "«\u00a0", re.sub(r"[ \u202f]?»", "\u00a0»", text))

