"""What a bank line's words say about the order it pays: pure functions.

A payer types the reference as they like: spaced or not, in lower case,
without its leading zeros, on two lines the bank joins or cuts. Text is
compacted (upper case, letters and digits only) before it is read, so
``rf18 0000 0012`` and ``RF180000  0012`` read alike. A reference is
recognised by its check digits (ISO 11649, Swiss QR mod 10); an RF
reference whose payload lost its leading zeros keeps its check digits (ISO
7064 reads the payload as a number), so ``RF18 12`` is the reference of
order 12. A reference the bank cut short is kept as a prefix, which the
caller accepts only when one order has it. Invoice numbers (``2026-0012``)
are read with or without their leading zeros.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from billing.orders import references

_RF_START = re.compile(r"RF\d\d")
_DIGITS = re.compile(r"\d+")
_INVOICE = re.compile(r"(?<![0-9A-Z])(?:CN-)?(20\d\d)\s*[-/]\s*0*(\d{1,8})(?!\d)")
# A cut reference must keep its check digits and this much payload to name an order.
MIN_CUT_PAYLOAD = 4
QR_MIN_DIGITS = 20


@dataclass(frozen=True)
class Found:
    """References read in a line's text (normalised, check digits valid),
    prefixes of a reference the text ends with (cut), invoice numbers."""

    references: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)


def compact(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", (text or "").upper())


def canonical(reference: str) -> str:
    """A reference without the leading zeros of its payload: RF18 00000012
    and RF18 12 are one reference, as their check digits say."""
    reference = references.normalise(reference)
    if reference.startswith("RF") and len(reference) > 4:
        return reference[:4] + (reference[4:].lstrip("0") or "0")
    if reference.isdigit():
        return reference.lstrip("0") or "0"
    return reference


def order_id_of(reference: str) -> int | None:
    """The order number Forfait put in its own references
    (billing.orders.references.order_reference), if the payload is a number."""
    key = canonical(reference)
    payload = key[4:] if key.startswith("RF") else key[:-1]
    return int(payload) if payload.isdigit() and len(payload) <= 9 and int(payload) > 0 else None


def structured(reference: str) -> str | None:
    """The line's structured reference, if its check digits are right."""
    reference = references.normalise(reference)
    return reference if references.is_reference(reference) else None


def read_text(text: str) -> Found:
    packed = compact(text)
    found: list[str] = []
    cut: list[str] = []
    for start in _RF_START.finditer(packed):
        i = start.start()
        valid = [packed[i:i + length] for length in range(5, 4 + references.RF_MAX_PAYLOAD + 1)
                 if i + length <= len(packed) and references.is_rf_reference(packed[i:i + length])]
        found += [reference for reference in valid if reference not in found]
        rest = packed[i:]
        if not valid and len(rest) >= 4 + MIN_CUT_PAYLOAD and len(rest) <= 4 + references.RF_MAX_PAYLOAD:
            cut.append(rest)
    for run in _DIGITS.finditer(packed):
        digits = run.group()
        if QR_MIN_DIGITS <= len(digits) <= references.QR_REFERENCE_LENGTH:
            padded = digits.zfill(references.QR_REFERENCE_LENGTH)
            if references.is_qr_reference(padded) and padded not in found:
                found.append(padded)
    spaced = " ".join((text or "").upper().split())
    invoices = []
    for match in _INVOICE.finditer(spaced):
        prefix = "CN-" if match.group(0).startswith("CN-") else ""
        if not prefix:
            invoices.append(f"{match.group(1)}-{int(match.group(2)):04d}")
    return Found(references=found, cut=cut, invoices=list(dict.fromkeys(invoices)))


def _words(text: str) -> set[str]:
    plain = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower()
    return {word for word in re.findall(r"[a-z0-9]+", plain) if len(word) >= 3}


_COMMON = {"sarl", "gmbh", "the", "and", "ltd", "inc", "sas", "les", "des", "und"}


def names_agree(payer: str, names: list[str]) -> bool:
    """Whether the payer's name shares a word (3 letters or more, not a
    company form) with one of ``names`` (the account's, its users')."""
    said = _words(payer) - _COMMON
    return bool(said) and any(said & (_words(name) - _COMMON) for name in names)
