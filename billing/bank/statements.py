"""Bank statements read into lines: ISO 20022 camt.053 and camt.054
(pycamt), SWIFT MT940 (mt-940), and CSV with a column mapping. Pure: bytes
in, ``StatementLine``s out, nothing written.

Why these parsers: pycamt reads every entry of a statement (Stmt), a report
(Rpt) or, with ``Ntfctn`` added below, a notification, splits batch bookings
into their transactions, keeps the remittance information (unstructured
``Ustrd`` lines and the structured creditor reference) and the debtor's name,
and parses with lxml without entities or network; it is built to be
extended, which ``_Camt`` does for what matching needs beyond it (the
entry's and each transaction's own references, the return reason). The
``camt053`` package parses the same files but drops the remittance
information (so no reference to match) and brings a web server's
dependencies; ``sepaxml`` writes payment orders and reads no statement.
mt-940 is the maintained MT940 reader (``mt940`` 0.8.1 dates from 2020).

A malformed file raises ``MalformedStatement`` naming the line or the
element, before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import mt940  # type: ignore[import-untyped,unused-ignore]
from babel.numbers import get_currency_precision
from lxml import etree
from pycamt.parser import Camt053ParseError, Camt053Parser  # type: ignore[import-untyped,unused-ignore]

from billing.bank.models import FORMATS
from billing.errors import N_, BillingError
from billing.models import MAX_INTEGER

_CURRENCY = re.compile(r"[A-Z]{3}")
# camt entry statuses: only a booked entry is money on the account.
_BOOKED = ("BOOK", None)


class MalformedStatement(BillingError):
    """The file cannot be read as a statement of its format: ``str(error)``
    names the line or the element."""


@dataclass(frozen=True)
class StatementLine:
    """One movement of money on the account, as the bank reported it.

    ``identity`` is stable across files: the bank's own reference for the
    line when it gives one (camt AcctSvcrRef or NtryRef, MT940's bank
    reference, a CSV column), else a hash of the fields that define the line
    and how many identical lines came before it in the file. Two statements
    that overlap give their common lines the same identity."""

    identity: str
    position: str  # where in the file, for people: "line 14"
    account: str
    bank_ref: str
    booked_on: date
    amount: int  # minor units, positive
    currency: str
    credit: bool
    reversal: bool
    return_reason: str
    payer: str
    reference: str  # the structured reference, if any
    text: str  # the unstructured remittance text
    booked: bool = True
    account_currency: str = ""


@dataclass(frozen=True)
class Mapping:
    """How a bank's CSV export reads: columns named by their header. A
    signed ``amount`` column, or ``credit`` and ``debit`` columns."""

    name: str
    delimiter: str = ";"
    date_column: str = "Date"
    date_format: str = "%Y-%m-%d"
    amount_column: str = "Amount"
    credit_column: str = ""
    debit_column: str = ""
    decimal_comma: bool = False
    currency_column: str = ""
    currency: str = "EUR"
    text_column: str = "Text"
    payer_column: str = ""
    reference_column: str = ""
    bank_ref_column: str = ""


def minor_units(text: str, currency: str, where: str) -> int:
    """A bank's decimal amount as positive minor units of ``currency``."""
    try:
        value = Decimal(text.strip())
        minor = value.scaleb(get_currency_precision(currency))
    except (InvalidOperation, ValueError, AttributeError):
        raise MalformedStatement(N_("%(where)s: %(value)r is not an amount."), where=where, value=text) from None
    if not value.is_finite() or minor != minor.to_integral_value() or abs(minor) > MAX_INTEGER:
        raise MalformedStatement(N_("%(where)s: %(value)r is not an amount in %(currency)s."), where=where,
                                 value=text, currency=currency)
    return abs(int(minor))


def _identity(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()


def _with_identities(lines: list[StatementLine]) -> list[StatementLine]:
    """Lines without a bank reference get a hash of their defining fields and
    of how many identical ones came before them in the file."""
    seen: dict[str, int] = {}
    done = []
    for line in lines:
        if line.bank_ref:
            identity = _identity(line.account, "ref", line.bank_ref)
        else:
            fields = _identity(line.account, line.booked_on, line.amount, line.currency, line.credit, line.reversal,
                               line.payer, line.reference, line.text)
            seen[fields] = seen.get(fields, 0) + 1
            identity = _identity(fields, seen[fields])
        done.append(replace(line, identity=identity))
    return done


def normalised_account(text: str | None) -> str:
    return "".join((text or "").split()).upper()


def read(data: bytes, format: str, mapping: Mapping | None = None) -> list[StatementLine]:
    """The lines of a statement file. ``mapping`` is required for CSV."""
    if format in ("camt053", "camt054"):
        return _with_identities(_camt(data, format))
    if format == "mt940":
        return _with_identities(_mt940(data))
    if format == "csv":
        if mapping is None:
            raise MalformedStatement(N_("Choose the column mapping of this bank's CSV file."), "mapping")
        return _with_identities(_csv(data, mapping))
    raise MalformedStatement(N_("Choose one of the formats offered: %(formats)s."), "format",
                             formats=", ".join(FORMATS))


def guess_format(data: bytes, filename: str = "") -> str:
    """camt053, camt054, mt940 or csv, from the content (and the name)."""
    head = data[:2000]
    if b"camt.054" in head or b"BkToCstmrDbtCdtNtfctn" in head:
        return "camt054"
    if b"camt.05" in head or b"BkToCstmrStmt" in head or head.lstrip().startswith(b"<"):
        return "camt053"
    if re.search(rb"(^|\n):20:", head) or filename.lower().endswith((".sta", ".mt940", ".940")):
        return "mt940"
    return "csv"


# --- camt.053 / camt.054 ----------------------------------------------------------

class _Camt(Camt053Parser):  # type: ignore[misc]
    """pycamt, extended as it invites: notifications (camt.054) as well as
    statements and reports, and the references and return reason of each
    entry and transaction."""

    def _find_statements_or_reports(self) -> list[Any]:
        for path in (".//Stmt", ".//Rpt", ".//Ntfctn"):
            found = self.tree.findall(path, self.namespaces)
            if found:
                return list(found)
        raise Camt053ParseError()

    def _extract_common_entry_data(self, entry: Any, statement: Any) -> dict[str, Any]:
        data: dict[str, Any] = super()._extract_common_entry_data(entry, statement)
        data["_EntryLine"] = entry.sourceline
        data["_EntryAcctSvcrRef"] = self._find_text(entry, "AcctSvcrRef")
        data["_EntryRef"] = self._find_text(entry, "NtryRef")
        data["_Batch"] = len(entry.findall(".//TxDtls", self.namespaces))
        data["_AccountOther"] = self._find_text(statement, "Acct/Id/Othr/Id")
        data["_AccountCurrency"] = self._find_text(statement, "Acct/Ccy")
        data["_EntryReturnReason"] = self._find_text(entry, ".//RtrInf/Rsn/Cd") or self._find_text(
            entry, ".//RtrInf/Rsn/Prtry")
        return data

    def _extract_transaction_details(self, tx_detail: Any) -> dict[str, Any]:
        data: dict[str, Any] = super()._extract_transaction_details(tx_detail)
        entry = tx_detail.getparent().getparent()
        data["_TxLine"] = tx_detail.sourceline
        data["_TxIndex"] = entry.findall(".//TxDtls", self.namespaces).index(tx_detail)
        data["_TxAcctSvcrRef"] = self._find_text(tx_detail, "Refs/AcctSvcrRef")
        data["_TxCurrency"] = (tx_detail.find("Amt", self.namespaces).get("Ccy")
                               if tx_detail.find("Amt", self.namespaces) is not None else None)
        data["_ReturnReason"] = self._find_text(tx_detail, "RtrInf/Rsn/Cd") or self._find_text(
            tx_detail, "RtrInf/Rsn/Prtry")
        data["_Unstructured"] = " ".join(
            (u.text or "").strip() for u in tx_detail.findall("RmtInf/Ustrd", self.namespaces))
        data["_Structured"] = self._find_text(tx_detail, "RmtInf/Strd/CdtrRefInf/Ref")
        data["_Payer"] = (self._find_text(tx_detail, "RltdPties/Dbtr/Nm")
                          or self._find_text(tx_detail, "RltdPties/Dbtr/Pty/Nm")
                          or self._find_text(tx_detail, "RltdPties/UltmtDbtr/Nm")
                          or self._find_text(tx_detail, "RltdPties/UltmtDbtr/Pty/Nm"))
        return data


def _camt_date(text: str | None, where: str) -> date:
    if not text:
        raise MalformedStatement(N_("%(where)s: <BookgDt> is missing."), where=where)
    try:
        return datetime.fromisoformat(text.strip()).date() if "T" in text else date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise MalformedStatement(N_("%(where)s: <BookgDt> %(value)r is not a date."), where=where,
                                 value=text) from None


def _open_element(data: bytes) -> str | None:
    """The innermost element still open where the XML breaks, read again up
    to the break (entities, DTDs and the network left alone, as pycamt does)."""
    reader = etree.XMLPullParser(events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False)
    open_elements: list[str] = []

    def follow() -> None:
        for event, element in reader.read_events():
            if event == "start":
                open_elements.append(etree.QName(element).localname)
            else:
                open_elements.pop()
    try:
        reader.feed(data)
    except etree.XMLSyntaxError:
        follow()
        return open_elements[-1] if open_elements else None
    follow()
    try:
        reader.close()
    except etree.XMLSyntaxError:
        pass  # a file that breaks off fails here; the events after it close what was open, as if it had not
    return open_elements[-1] if open_elements else None


def _broken_xml(data: bytes, error: etree.XMLSyntaxError, kind: str) -> MalformedStatement:
    """The parser's error in words an office manager reads, still naming the
    line, the column and the element where the file breaks (libxml2's own
    words, "Premature end of data in tag Ntry line 1", are for programmers)."""
    line, column = error.position
    if error.code == etree.ErrorTypes.ERR_DOCUMENT_EMPTY:
        return MalformedStatement(N_("This file is not a valid %(kind)s statement: it is not XML at all."),
                                  kind=kind)
    element = _open_element(data)
    where = {"kind": kind, "line": line, "column": column, "element": element}
    if element is None:  # before the first element or after the last
        return MalformedStatement(N_("This file is not a valid %(kind)s statement: it is not well-formed XML at "
                                     "line %(line)d, column %(column)d."), **where)
    if error.code == etree.ErrorTypes.ERR_TAG_NOT_FINISHED:
        return MalformedStatement(N_("This file is not a valid %(kind)s statement: it breaks off at line %(line)d, "
                                     "column %(column)d (inside <%(element)s>)."), **where)
    if error.code == etree.ErrorTypes.ERR_TAG_NAME_MISMATCH:
        return MalformedStatement(N_("This file is not a valid %(kind)s statement: <%(element)s> is never closed "
                                     "(line %(line)d, column %(column)d)."), **where)
    if error.code in (etree.ErrorTypes.ERR_INVALID_ENCODING, etree.ErrorTypes.ERR_INVALID_CHAR):
        return MalformedStatement(N_("This file is not a valid %(kind)s statement: it holds bytes that are not "
                                     "text at line %(line)d, column %(column)d (inside <%(element)s>)."), **where)
    return MalformedStatement(N_("This file is not a valid %(kind)s statement: it is not well-formed XML at line "
                                 "%(line)d, column %(column)d (inside <%(element)s>)."), **where)


def _camt(data: bytes, format: str) -> list[StatementLine]:
    kind = "camt.054" if format == "camt054" else "camt.053"
    try:
        parser = _Camt(data)
    except etree.XMLSyntaxError as error:
        raise _broken_xml(data, error, kind) from None
    except (ValueError, etree.LxmlError) as error:
        raise MalformedStatement(N_("This is not an XML file: %(problem)s"), problem=str(error)) from None
    root = etree.QName(parser.tree).localname
    message = parser.tree[0] if len(parser.tree) else None
    wanted = "BkToCstmrDbtCdtNtfctn" if format == "camt054" else "BkToCstmrStmt"
    if root != "Document" or message is None or etree.QName(message).localname != wanted:
        raise MalformedStatement(N_("Line %(line)d: <%(element)s> is not a %(kind)s document (expected "
                                    "<Document><%(wanted)s>)."),
                                 line=(message if message is not None else parser.tree).sourceline or 1,
                                 element=etree.QName(message if message is not None else parser.tree).localname,
                                 kind=kind, wanted=wanted)
    try:
        transactions = parser.get_transactions()
    except Camt053ParseError:
        raise MalformedStatement(N_("Line %(line)d: <%(element)s> holds no statement."),
                                 line=message.sourceline or 1, element=wanted) from None
    except AttributeError as error:
        raise MalformedStatement(N_("An element the %(kind)s format requires is missing: %(problem)s"), kind=kind,
                                 problem=str(error)) from None
    lines = []
    for found in transactions:
        line_no = found.get("_TxLine") or found.get("_EntryLine") or 0
        where = f"line {line_no}"
        currency = found.get("_TxCurrency") or found.get("Currency") or ""
        if not _CURRENCY.fullmatch(currency):
            raise MalformedStatement(N_("%(where)s: <Amt> has no currency (Ccy)."), where=where)
        if found.get("Amount") is None:
            raise MalformedStatement(N_("%(where)s: <Amt> is missing."), where=where)
        if found.get("_Batch", 0) > 1 and found.get("_TxLine") and found.get("_TxCurrency") is None:
            raise MalformedStatement(N_("%(where)s: a transaction of a batch booking has no <Amt>."), where=where)
        indicator = found.get("CreditDebitIndicator")
        if indicator not in ("CRDT", "DBIT"):
            raise MalformedStatement(N_("%(where)s: <CdtDbtInd> must be CRDT or DBIT."), where=where)
        amount = minor_units(found["Amount"], currency, f"{where}, <Amt>")
        bank_ref = found.get("_TxAcctSvcrRef") or ""
        entry_ref = found.get("_EntryAcctSvcrRef") or found.get("_EntryRef") or ""
        if not bank_ref and entry_ref:
            batch = found.get("_Batch", 0) > 1
            bank_ref = f"{entry_ref}#{found.get('_TxIndex', 0) + 1}" if batch else entry_ref
        reason = found.get("_ReturnReason") or found.get("_EntryReturnReason") or ""
        lines.append(StatementLine(
            identity="", position=where,
            account=normalised_account(found.get("AccountIBAN") or found.get("_AccountOther")),
            bank_ref=bank_ref, booked_on=_camt_date(found.get("BookingDate") or found.get("ValueDate"), where),
            amount=amount, currency=currency, credit=indicator == "CRDT",
            reversal=found.get("ReversalIndicator") in ("true", "1") or bool(reason), return_reason=reason,
            payer=(found.get("_Payer") or "").strip(), reference=(found.get("_Structured") or "").strip(),
            text=(found.get("_Unstructured") or found.get("AdditionalEntryInformation") or "").strip(),
            booked=found.get("Status") in _BOOKED, account_currency=found.get("_AccountCurrency") or "",
        ))
    return lines


# --- MT940 ------------------------------------------------------------------------

def _mt940(data: bytes) -> list[StatementLine]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not re.search(r"(^|\n):20:", text) or not re.search(r"(^|\n):25:", text):
        raise MalformedStatement(N_("This is not an MT940 statement: it has no :20: or no :25: field."))
    statement = mt940.models.Transactions(processors={
        "post_transaction_details": [_keep_details, mt940.processors.transaction_details_post_processor]})
    try:
        statement.parse(text)
    except (RuntimeError, ValueError, KeyError, TypeError, InvalidOperation) as error:
        value = error.args[2] if len(error.args) > 2 and isinstance(error.args[2], str) else ""
        number = next((i for i, line in enumerate(text.split("\n"), 1) if value and value.split("\n")[0] in line), 0)
        tag = getattr(error.args[1], "id", "") if len(error.args) > 1 else ""
        raise MalformedStatement(N_("Line %(line)d: field :%(tag)s: cannot be read: %(value)r"), line=number,
                                 tag=tag or "?", value=value[:60]) from None
    starts = [i for i, line in enumerate(text.split("\n"), 1) if line.startswith(":61:")]
    account = normalised_account(statement.data.get("account_identification"))
    lines = []
    for index, transaction in enumerate(statement):
        found: dict[str, Any] = transaction.data
        where = f"line {starts[index] if index < len(starts) else 0}"
        money = found.get("amount")
        if money is None or not _CURRENCY.fullmatch(str(found.get("currency") or "")):
            raise MalformedStatement(N_("%(where)s: the :61: field has no amount or currency."), where=where)
        status = str(found.get("status") or "")
        bank_ref = found.get("bank_reference") or ""
        written = "".join(str(found.get("details_as_written") or "").splitlines())
        subfields = _subfields(written)
        details = " ".join(written.split())
        purpose = " ".join(str(found.get("purpose") or _subfield_text(subfields)).split())
        lines.append(StatementLine(
            identity="", position=where, account=account, bank_ref=bank_ref,
            booked_on=found.get("entry_date") or found["date"], amount=minor_units(str(money.amount), found["currency"],
                                                                                  where),
            currency=found["currency"], credit=status.endswith("C"), reversal=status.startswith("R"),
            return_reason="", payer=_mt940_payer(written, subfields), reference="",
            text=purpose or details, account_currency="",
        ))
    return lines


def _keep_details(_statement: Any, _tag: Any, tag_dict: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The :86: field as the bank wrote it: mt-940 reads the payer only from the
    German layout, and only behind a transaction code (``_mt940_payer`` reads them all)."""
    return {**result, "details_as_written": tag_dict.get("transaction_details") or ""}


# The German :86: (DFÜ-Abkommen, Anlage 3): ?NN sub-fields of 27 characters;
# the purpose in ?20 to ?29 and ?60 to ?63, the payer's name in ?32 and,
# when it is longer, on in ?33.
_SUBFIELD = re.compile(r"\?(\d\d)")
_PURPOSE = (*(f"2{digit}" for digit in range(10)), "60", "61", "62", "63")
# SWIFT's :86: (ING, ABN AMRO, Rabobank...): /KEYWORD/value, the ordering
# party as /ORDP//NAME/value or /ORDP/value, or only /NAME/value. A party
# keyword names whom the /NAME/ after it belongs to (/BENM/ is the beneficiary: us).
_KEYWORD = re.compile(r"/([A-Z]{2,4})/")
_PARTIES = ("ORDP", "BENM", "ULTD", "ULTB")


def _subfields(details: str) -> dict[str, str]:
    """The ?NN sub-fields of a German :86:, each one's repeats joined; {} when it has none."""
    parts = _SUBFIELD.split(details)
    found: dict[str, str] = {}
    for code, value in zip(parts[1::2], parts[2::2], strict=True):
        found[code] = found.get(code, "") + value
    return found


def _subfield_text(subfields: dict[str, str]) -> str:
    # Each sub-field is cut at 27 characters, in a word as often as between two: joined as written.
    return "".join(subfields.get(code, "") for code in _PURPOSE)


def _mt940_payer(details: str, subfields: dict[str, str]) -> str:
    """Who paid, as the :86: field ``details`` (its lines joined) names them; "" when it does not."""
    if subfields:
        # ?32 full (27 characters) goes on in ?33 mid-word; a shorter one ended on a word.
        first, more = subfields.get("32", ""), subfields.get("33", "")
        return " ".join((first + more if len(first) >= 27 else f"{first} {more}").split())
    pieces = _KEYWORD.split(details)
    names: dict[str, str] = {}
    party = None
    for keyword, value in zip(pieces[1::2], pieces[2::2], strict=True):
        value = " ".join(value.split())
        if keyword in _PARTIES:
            party = keyword
            if value:
                names.setdefault(keyword, value)
        elif keyword == "NAME" and value:
            names.setdefault(party or keyword, value)
            party = None
        else:
            party = None
    return names.get("ORDP") or names.get("NAME", "")


# --- CSV ----------------------------------------------------------------------------

def _csv(data: bytes, mapping: Mapping) -> list[StatementLine]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedStatement(N_("This CSV file is not UTF-8 text.")) from None
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter or ";")
    try:
        header = [cell.strip() for cell in next(rows)]
    except StopIteration:
        raise MalformedStatement(N_("This CSV file is empty.")) from None
    except csv.Error as error:
        raise MalformedStatement(N_("Line %(line)d: %(problem)s"), line=1, problem=str(error)) from None

    def column(name: str, required: bool = True) -> int | None:
        if not name:
            return None
        if name not in header:
            if not required:
                return None
            raise MalformedStatement(N_("Line 1: there is no column named %(name)r (mapping %(mapping)s)."),
                                     name=name, mapping=mapping.name)
        return header.index(name)

    signed = bool(mapping.amount_column)
    columns = {
        "date": column(mapping.date_column),
        "amount": column(mapping.amount_column) if signed else None,
        "credit": None if signed else column(mapping.credit_column),
        "debit": None if signed else column(mapping.debit_column),
        "currency": column(mapping.currency_column),
        "text": column(mapping.text_column),
        "payer": column(mapping.payer_column),
        "reference": column(mapping.reference_column),
        "bank_ref": column(mapping.bank_ref_column),
    }
    lines = []
    try:
        for row in rows:
            number = rows.line_num
            where = f"line {number}"
            if not any(cell.strip() for cell in row):
                continue

            def cell(key: str, row: list[str] = row, where: str = where) -> str:
                index = columns[key]
                if index is None:
                    return ""
                if index >= len(row):
                    raise MalformedStatement(N_("%(where)s: the row has no column %(name)r."), where=where,
                                             name=header[index])
                return row[index].strip()

            currency = (cell("currency") or mapping.currency).upper()
            if not _CURRENCY.fullmatch(currency):
                raise MalformedStatement(N_("%(where)s: %(value)r is not a currency code."), where=where,
                                         value=currency)
            if signed:
                raw = _decimal_text(cell("amount"), mapping.decimal_comma)
                credit = not raw.startswith("-")
            else:
                incoming, outgoing = cell("credit"), cell("debit")
                credit = bool(incoming)
                raw = _decimal_text(incoming or outgoing, mapping.decimal_comma)
            if not raw:
                raise MalformedStatement(N_("%(where)s: the amount is empty."), where=where)
            try:
                booked_on = datetime.strptime(cell("date"), mapping.date_format).date()
            except ValueError:
                raise MalformedStatement(N_("%(where)s: %(value)r is not a date as %(format)s."), where=where,
                                         value=cell("date"), format=mapping.date_format) from None
            lines.append(StatementLine(
                identity="", position=where, account=normalised_account(mapping.name), bank_ref=cell("bank_ref"),
                booked_on=booked_on, amount=minor_units(raw.lstrip("+-"), currency, where), currency=currency,
                credit=credit, reversal=False, return_reason="", payer=cell("payer"), reference=cell("reference"),
                text=" ".join(cell("text").split()), account_currency="",
            ))
    except csv.Error as error:
        raise MalformedStatement(N_("Line %(line)d: %(problem)s"), line=rows.line_num, problem=str(error)) from None
    return lines


def _decimal_text(text: str, decimal_comma: bool) -> str:
    text = re.sub(r"[\s\u00a0\u202f']", "", text)
    if decimal_comma:
        text = text.replace(".", "").replace(",", ".")
    else:
        text = text.replace(",", "")
    return text
