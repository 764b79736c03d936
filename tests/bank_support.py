"""Bank statements written by hand for the tests, in each format the import
reads: camt.053 and camt.054 (ISO 20022, version 001.08), MT940 and CSV.

A line is a dict: ``amount`` ("425.00"), and optionally ``currency``,
``debit`` (True), ``ref`` (the bank's AcctSvcrRef), ``entry_ref``
(NtryRef), ``structured`` (a creditor reference), ``text`` (unstructured),
``payer``, ``return_reason`` (a camt return reason: a reversal), ``booked``
(YYYY-MM-DD). A camt entry with ``batch`` (a list of such dicts) is a batch
booking of several transactions."""

from __future__ import annotations

from xml.sax.saxutils import escape

ACCOUNT = "FR7630006000011234567890189"
BOOKED = "2026-01-04"


def _tx(tx: dict, indent: str = "      ") -> str:
    refs = ""
    if tx.get("tx_ref"):
        refs += f"<AcctSvcrRef>{escape(tx['tx_ref'])}</AcctSvcrRef>"
    refs += f"<EndToEndId>{escape(tx.get('end_to_end', 'NOTPROVIDED'))}</EndToEndId>"
    parts = [f"<Refs>{refs}</Refs>"]
    parts.append(f'<Amt Ccy="{tx.get("currency", "EUR")}">{tx["amount"]}</Amt>')
    parts.append(f"<CdtDbtInd>{'DBIT' if tx.get('debit') else 'CRDT'}</CdtDbtInd>")
    if tx.get("payer"):
        parts.append(f"<RltdPties><Dbtr><Pty><Nm>{escape(tx['payer'])}</Nm></Pty></Dbtr></RltdPties>")
    remittance = ""
    if tx.get("text"):
        remittance += "".join(f"<Ustrd>{escape(chunk)}</Ustrd>" for chunk in _chunks(tx["text"]))
    if tx.get("structured"):
        remittance += ("<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>"
                       f"<Ref>{escape(tx['structured'])}</Ref></CdtrRefInf></Strd>")
    if remittance:
        parts.append(f"<RmtInf>{remittance}</RmtInf>")
    if tx.get("return_reason"):
        parts.append(f"<RtrInf><Rsn><Cd>{tx['return_reason']}</Cd></Rsn></RtrInf>")
    return f"{indent}<TxDtls>\n" + "".join(f"{indent}  {part}\n" for part in parts) + f"{indent}</TxDtls>\n"


def _chunks(text: str, size: int = 140) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _entry(entry: dict) -> str:
    batch = entry.get("batch")
    amount = entry["amount"] if not batch else _sum(batch)
    currency = entry.get("currency", "EUR")
    head = ""
    if entry.get("entry_ref"):
        head += f"    <NtryRef>{escape(entry['entry_ref'])}</NtryRef>\n"
    head += (f'    <Amt Ccy="{currency}">{amount}</Amt>\n'
             f"    <CdtDbtInd>{'DBIT' if entry.get('debit') else 'CRDT'}</CdtDbtInd>\n")
    if entry.get("return_reason"):
        head += "    <RvslInd>true</RvslInd>\n"
    head += (f"    <Sts><Cd>{entry.get('status', 'BOOK')}</Cd></Sts>\n"
             f"    <BookgDt><Dt>{entry.get('booked', BOOKED)}</Dt></BookgDt>\n"
             f"    <ValDt><Dt>{entry.get('booked', BOOKED)}</Dt></ValDt>\n")
    if entry.get("ref"):
        head += f"    <AcctSvcrRef>{escape(entry['ref'])}</AcctSvcrRef>\n"
    head += ("    <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn>"
             "</BkTxCd>\n")
    details = "    <NtryDtls>\n"
    if batch:
        details += f"     <Btch><NbOfTxs>{len(batch)}</NbOfTxs></Btch>\n"
        details += "".join(_tx({"currency": currency, **tx}) for tx in batch)
    else:
        details += _tx({**entry, "currency": entry.get("tx_currency", currency)})
    details += "    </NtryDtls>\n"
    return f"   <Ntry>\n{head}{details}   </Ntry>\n"


def _sum(batch: list[dict]) -> str:
    cents = sum(int(tx["amount"].replace(".", "")) for tx in batch)
    return f"{cents // 100}.{cents % 100:02d}"


def camt(entries: list[dict], *, kind: str = "053", account: str = ACCOUNT, currency: str = "EUR",
         statement_id: str = "STMT-2026-01-04") -> bytes:
    """A camt.053 statement (``kind`` "053") or camt.054 notification ("054")."""
    message, block = ("BkToCstmrStmt", "Stmt") if kind == "053" else ("BkToCstmrDbtCdtNtfctn", "Ntfctn")
    body = "".join(_entry(entry) for entry in entries)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.{kind}.001.08">
 <{message}>
  <GrpHdr><MsgId>{statement_id}</MsgId><CreDtTm>2026-01-04T18:00:00</CreDtTm></GrpHdr>
  <{block}>
   <Id>{statement_id}</Id>
   <CreDtTm>2026-01-04T18:00:00</CreDtTm>
   <Acct><Id><IBAN>{account}</IBAN></Id><Ccy>{currency}</Ccy></Acct>
{body}  </{block}>
 </{message}>
</Document>
""".encode()


def mt940(lines: list[dict], *, account: str = ACCOUNT, currency: str = "EUR") -> bytes:
    """An MT940 statement: one :61: and :86: per line; ``ref`` is the bank's reference (//...)."""
    out = [":20:STMT20260104", f":25:{account}", ":28C:1/1", f":60F:C260103{currency}1000,00"]
    for line in lines:
        mark = ("R" if line.get("reversal") else "") + ("D" if line.get("debit") else "C")
        amount = line["amount"].replace(".", ",")
        bank = f"//{line['ref']}" if line.get("ref") else ""
        out.append(f":61:2601040104{mark}{amount}NTRF{line.get('customer_ref', 'NONREF')}{bank}")
        details = line.get("text", "")
        if line.get("payer"):
            details = f"?20{details}?32{line['payer']}"
        out.append(f":86:{details}")
    out.append(f":62F:C260104{currency}1000,00")
    return ("\r\n".join(out) + "\r\n").encode()


def csv_statement(rows: list[list[str]], header: tuple[str, ...] = ("Datum", "Betrag", "Text", "Auftraggeber",
                                                                    "Referenz")) -> bytes:
    """A bank's CSV export: semicolons, dates as 04.01.2026, decimal commas."""
    return "\n".join(";".join(row) for row in [list(header), *rows]).encode() + b"\n"
