"""An account's invoicing details: the postal address and the VAT ID that
billing.orders.invoices copies into each document it issues.

The VAT ID is checked against the account's country with python-stdnum
(checksums and formats per country). No Flask here: a refusal is an
InvoicingError carrying a gettext message id, like billing.orders.OrderError.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session
from stdnum.ch import vat as swiss_vat
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError

from billing import audit
from billing.accounts.models import Account, User
from billing.errors import N_, BillingError
from billing.transaction import atomic

# What fits the buyer's block of an invoice beside the seller's.
MAX_ADDRESS_LINES = 6
MAX_ADDRESS_LENGTH = 300
# Account.vat_id and Invoice.buyer_vat_id.
MAX_VAT_ID_LENGTH = 40

# EU countries by ISO code, with the prefix their VAT IDs carry: Greece's
# is EL. Northern Ireland's XI is not a country of the list.
EU_VAT_PREFIXES = {code.upper(): "EL" if code == "gr" else code.upper()
                   for code in eu_vat.MEMBER_STATES if code != "xi"}
# Letters, digits and the separators registries print; nothing that could
# pass for markup or a second line on the invoice.
_FREE_VAT_ID = re.compile(r"[0-9A-Z][0-9A-Z .\-/]*")


class InvoicingError(BillingError):
    """Invoicing details refused. ``message`` is a gettext message id with
    ``params`` (a view shows ``_(message, **params)``); ``field`` is
    ``address`` or ``vat_id``."""



def clean_address(text: str | None) -> str:
    """The address as written, one line per line, without blank lines or
    trailing spaces; InvoicingError when it would not fit the invoice."""
    lines = [line.strip() for line in (text or "").splitlines()]
    address = "\n".join(line for line in lines if line)
    if len(address) > MAX_ADDRESS_LENGTH or address.count("\n") >= MAX_ADDRESS_LINES:
        raise InvoicingError(N_("Enter at most %(lines)d lines and %(max)d characters."), "address",
                             lines=MAX_ADDRESS_LINES, max=MAX_ADDRESS_LENGTH)
    return address


def clean_vat_id(country: str, text: str | None) -> str:
    """The VAT ID normalised for ``country`` (ISO code), "" when none is given.

    An EU country's is checked (checksum included) and compacted with its
    prefix, which may be left out (``40303265045`` in France is
    ``FR40303265045``); Switzerland's is checked and written the official way
    (``CHE-107.787.577 MWST``). Elsewhere it is kept as typed, tidied."""
    text = " ".join((text or "").upper().split())
    if not text:
        return ""
    if country in EU_VAT_PREFIXES:
        prefix = EU_VAT_PREFIXES[country]
        if not text[:2].isalpha():
            text = prefix + text
        try:
            number = eu_vat.validate(text)
        except ValidationError:
            number = ""
        # Greece's numbers are also accepted under GR; invoices say EL.
        number = "EL" + number[2:] if number.startswith("GR") else number
        if not number.startswith(prefix):
            raise InvoicingError(N_("This is not a valid VAT ID. Check the number: for the account's country "
                                    "it starts with %(prefix)s."), "vat_id", prefix=prefix)
        return number
    if country == "CH":
        try:
            return swiss_vat.format(swiss_vat.validate(text))
        except ValidationError:
            raise InvoicingError(N_("This is not a valid Swiss VAT number: write it like CHE-123.456.789 MWST "
                                    "(or TVA, IVA)."), "vat_id") from None
    if len(text) > MAX_VAT_ID_LENGTH or not _FREE_VAT_ID.fullmatch(text):
        raise InvoicingError(N_("Enter at most %(max)d letters, digits, spaces, dots, dashes or slashes."),
                             "vat_id", max=MAX_VAT_ID_LENGTH)
    return text


def invoicing_details(country: str, address: str | None, vat_id: str | None) -> tuple[str, str]:
    """The address and VAT ID as an account of ``country`` would store them;
    InvoicingError for the first one refused."""
    return clean_address(address), clean_vat_id(country, vat_id)


def set_invoicing_details(session: Session, account: Account, *, address: str | None, vat_id: str | None,
                          by: User | None = None) -> None:
    """Check and store the account's address and VAT ID; both are optional
    (empty clears them). On a refusal nothing changes. In a caller's unit of
    work (an order placed with them) it joins it. ``by``: the staff member
    who corrects them for the client: the audit log keeps before → after."""
    with atomic(session):
        before = {"address": account.address, "vat_id": account.vat_id}
        account.address, account.vat_id = invoicing_details(account.country, address, vat_id)
        after = {"address": account.address, "vat_id": account.vat_id}
        if by is not None and by.is_staff and after != before:
            audit.record(by, "account.invoicing", "account", account.id, before=before, after=after,
                         session=session)
