"""Payment references with check digits, so that a mistyped one is caught
by the payer's bank and a statement line finds its order. Pure functions.

- ISO 11649 creditor reference ("RF" + 2 check digits + up to 21 letters
  and digits), the structured reference of SEPA transfers and of Swiss
  QR-bills paid to an ordinary IBAN;
- Swiss QR reference (27 digits, the last a recursive mod-10 check digit),
  which a QR-bill paid to a QR-IBAN requires.
"""

from __future__ import annotations

import re
import string

from billing.errors import BillingError

RF_MAX_PAYLOAD = 21
QR_REFERENCE_LENGTH = 27
# The QR-IID range of the bank code in a Swiss or Liechtenstein IBAN: such an
# IBAN takes QR references only.
QR_IID = range(30000, 32000)

_ALPHANUMERIC = re.compile(r"[0-9A-Z]+")
# The mod-10 recursive table of the Swiss payment standards (SIX, "Prüfzifferberechnung Modulo 10, rekursiv").
_MOD10_TABLE = (0, 9, 4, 6, 8, 2, 7, 1, 3, 5)


class ReferenceError(BillingError):
    """A payload that cannot become a reference."""


def normalise(text: str) -> str:
    """Upper case without spaces: how a reference is typed, printed or
    pasted from a bank statement makes no difference."""
    return "".join(text.split()).upper()


def _digits(text: str) -> int:
    """ISO 7064 letters to numbers (A = 10 ... Z = 35), read as one integer."""
    return int("".join(str(string.digits.index(c)) if c.isdigit() else str(ord(c) - 55) for c in text))


# --- ISO 11649 --------------------------------------------------------------

def rf_reference(payload: str) -> str:
    """The creditor reference of ``payload`` (1 to 21 letters and digits)."""
    payload = normalise(payload)
    if not 1 <= len(payload) <= RF_MAX_PAYLOAD or not _ALPHANUMERIC.fullmatch(payload):
        raise ReferenceError(f"an RF payload is 1 to {RF_MAX_PAYLOAD} letters and digits, got {payload!r}")
    check = 98 - _digits(payload + "RF00") % 97
    return f"RF{check:02d}{payload}"


def is_rf_reference(text: str) -> bool:
    reference = normalise(text)
    return (
        5 <= len(reference) <= 4 + RF_MAX_PAYLOAD
        and reference.startswith("RF")
        and reference[2:4].isdigit()
        and bool(_ALPHANUMERIC.fullmatch(reference))
        and _digits(reference[4:] + reference[:4]) % 97 == 1
    )


# --- Swiss QR reference -----------------------------------------------------

def mod10_check_digit(digits: str) -> int:
    carry = 0
    for digit in digits:
        carry = _MOD10_TABLE[(carry + int(digit)) % 10]
    return (10 - carry) % 10


def qr_reference(number: str) -> str:
    """The 27-digit QR reference of ``number`` (up to 26 digits, zero-padded)."""
    number = normalise(number)
    if not number.isdigit() or len(number) > QR_REFERENCE_LENGTH - 1:
        raise ReferenceError(f"a QR reference is built from up to 26 digits, got {number!r}")
    body = number.zfill(QR_REFERENCE_LENGTH - 1)
    return body + str(mod10_check_digit(body))


def is_qr_reference(text: str) -> bool:
    reference = normalise(text)
    return (
        len(reference) == QR_REFERENCE_LENGTH
        and reference.isdigit()
        and int(reference) != 0
        and mod10_check_digit(reference[:-1]) == int(reference[-1])
    )


def is_qr_iban(iban: str) -> bool:
    """A Swiss or Liechtenstein QR-IBAN: it takes QR references, never RF ones."""
    iban = normalise(iban)
    return iban[:2] in ("CH", "LI") and len(iban) == 21 and iban[4:9].isdigit() and int(iban[4:9]) in QR_IID


# --- Orders -----------------------------------------------------------------

def order_reference(order_id: int, currency: str, iban: str) -> str:
    """The reference of an order: a QR reference when a CHF transfer goes
    to a QR-IBAN, else an RF reference. Both carry the order's id, so they
    are unique and a staff member can read the order number back."""
    if currency == "CHF" and is_qr_iban(iban):
        return qr_reference(str(order_id))
    return rf_reference(f"{order_id:08d}")


def is_reference(text: str) -> bool:
    return is_rf_reference(text) or is_qr_reference(text)


def pretty(reference: str) -> str:
    """Printed the way banks do: RF in blocks of 4; a QR reference as 2 then blocks of 5."""
    reference = normalise(reference)
    if is_qr_reference(reference):
        return " ".join([reference[:2], *(reference[i:i + 5] for i in range(2, QR_REFERENCE_LENGTH, 5))])
    return " ".join(reference[i:i + 4] for i in range(0, len(reference), 4))
