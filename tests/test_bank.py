"""Bank statement import (billing.bank): statements written by hand in each
format (bank_support), matched to orders and confirmed as staff confirm
them; a line imported twice credits nothing twice; debits, reversals and
other currencies are never credited; a malformed file writes nothing."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from bank_support import camt, csv_statement, mt940
from checkout_support import NOW, QR_IBAN, SELLER, both, client, confirm, place, session, staff  # noqa: F401
from sqlalchemy import func, select

from billing import audit
from billing.bank import imports, matching, statements
from billing.bank.models import BankImport, BankLine
from billing.bank.statements import Mapping
from billing.ledger import services as ledger
from billing.notifications.outbox import OutboxMessage
from billing.orders import references
from billing.orders import services as orders
from billing.orders.models import Invoice, Payment
from common.extensions import db

MAPPING = Mapping(name="Sparkasse", delimiter=";", date_column="Datum", date_format="%d.%m.%Y",
                  amount_column="Betrag", decimal_comma=True, currency="EUR", text_column="Text",
                  payer_column="Auftraggeber", reference_column="Referenz")


def run(session, data: bytes, format: str = "camt053", **options) -> dict[int, tuple[str, int | None]]:
    """Import; the outcome and order of each line, by position in the file."""
    options.setdefault("now", NOW)
    done = imports.import_statement(session, data, format=format, filename=f"statement.{format}", seller=SELLER,
                                    **options)
    return {index: (line.outcome, line.order_id) for index, line in enumerate(done.lines)}


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def written(session) -> tuple[int, ...]:
    return tuple(count(session, model) for model in (BankImport, BankLine, Payment, Invoice, OutboxMessage))


def spaced(reference: str) -> str:
    return references.pretty(reference)


def units(session, account) -> int:
    return sum(b.net for b in ledger.balances(session, account.id, now=NOW))


# --- camt.053 -------------------------------------------------------------------

@both
def test_a_camt053_statement_confirms_exact_partial_and_batch_lines_and_a_second_import_changes_nothing(session):
    account, owner = client(session, "Atelier Lumière")
    exact, _ = place(session, owner)  # 425.00 EUR awaited
    partly, _ = place(session, owner)
    batched, _ = place(session, owner)
    over, _ = place(session, owner)
    other_account, other_owner = client(session, "Boulangerie Dupont")
    suggested, _ = place(session, other_owner)
    total = exact.total
    whole = f"{total // 100}.{total % 100:02d}"
    statement = camt([
        {"amount": whole, "ref": "B-1", "structured": exact.reference, "payer": "Atelier Lumiere"},
        # The reference typed in the text, in lower case, spaced as the payer liked.
        {"amount": "100.00", "ref": "B-2", "text": f"order {spaced(partly.reference).lower()} first half"},
        {"amount": "55.00", "ref": "B-3", "text": "RF99 1234 5678 unknown"},
        {"amount": whole, "ref": "B-1", "structured": exact.reference},  # the bank repeats a line
        {"amount": "12.00", "ref": "B-4", "debit": True, "text": "bank fees"},
        {"amount": whole, "ref": "B-5", "return_reason": "AC04", "structured": exact.reference},
        {"amount": whole, "ref": "B-6", "currency": "USD", "structured": batched.reference},
        {"ref": "B-7", "amount": "0", "batch": [
            # Its leading zeros dropped: RF.. 12 is the reference of order 12.
            {"amount": whole, "text": f"Payment {batched.reference[:4]} {batched.id}", "payer": "Atelier"},
            {"amount": f"{total // 100 + 10}.{total % 100:02d}", "structured": over.reference},
            {"amount": whole, "text": "support pack", "payer": "BOULANGERIE DUPONT SARL"},
        ]},
        {"amount": whole, "ref": "B-8", "status": "PDNG", "structured": suggested.reference},  # not booked yet
    ])

    outcomes = run(session, statement)

    assert outcomes == {
        0: ("confirmed", exact.id), 1: ("partial", partly.id), 2: ("unmatched", None), 3: ("duplicate", exact.id),
        4: ("ignored", None), 5: ("ignored", None), 6: ("ignored", None),
        7: ("confirmed", batched.id), 8: ("overpaid", over.id), 9: ("suggested", suggested.id),
        10: ("ignored", None),
    }
    for order in (exact, partly, batched, over, suggested):
        session.refresh(order)
    assert (exact.status, partly.status, batched.status, over.status, suggested.status) == (
        "paid", "pending", "paid", "paid", "pending")
    # As a staff confirmation: invoiced, credited, the client told; the rest awaited and said.
    assert count(session, Invoice, Invoice.order_id == exact.id) == 1
    assert units(session, account) == 3 * 5 * 60
    awaited = session.scalar(select(Payment).where(Payment.order_id == partly.id, Payment.status == "pending"))
    assert awaited.amount == total - 10000
    partial_mail = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "payment_partial"))
    assert partial_mail.payload["payment_id"] == awaited.id and partial_mail.payload["received"] == 10000
    line = session.scalar(select(BankLine).where(BankLine.bank_ref == "B-7#2"))
    assert (line.status, line.excess) == ("overpaid", 1000)
    ignored = dict(session.execute(select(BankLine.bank_ref, BankLine.ignored_because)
                                   .where(BankLine.status == "ignored")).all())
    assert ignored == {"B-4": "debit", "B-5": "reversal", "B-6": "currency", "B-8": "pending"}
    assert [(order.id, excess) for order, excess in orders.overpaid(session)] == [(over.id, 1000)]  # to refund
    assert session.scalar(select(BankLine.return_reason).where(BankLine.bank_ref == "B-5")) == "AC04"

    before = written(session)
    again = run(session, statement)

    assert {outcome for outcome, _ in again.values()} == {"duplicate"}
    assert written(session)[1:] == before[1:] and written(session)[0] == before[0] + 1


@both
def test_overlapping_statements_credit_the_common_line_once(session):
    _account, owner = client(session)
    first, _ = place(session, owner)
    second, _ = place(session, owner)
    whole = f"{first.total // 100}.{first.total % 100:02d}"
    run(session, camt([{"amount": whole, "ref": "A-1", "structured": first.reference}], statement_id="S1"))

    outcomes = run(session, camt([{"amount": whole, "ref": "A-1", "structured": first.reference},
                                  {"amount": whole, "ref": "A-2", "structured": second.reference}],
                                 statement_id="S2"))

    assert outcomes == {0: ("duplicate", first.id), 1: ("confirmed", second.id)}
    assert count(session, Payment, Payment.order_id == first.id, Payment.status == "confirmed") == 1


def test_lines_without_a_bank_reference_are_known_again_by_their_fields(session):
    _account, owner = client(session)
    order, _ = place(session, owner)
    statement = camt([{"amount": "10.00", "text": f"{order.reference}"},
                      {"amount": "10.00", "text": f"{order.reference}"}])  # two alike: both real

    assert run(session, statement) == {0: ("partial", order.id), 1: ("partial", order.id)}
    assert set(run(session, statement).values()) == {("duplicate", order.id)}
    assert count(session, Payment, Payment.order_id == order.id, Payment.status == "confirmed") == 2


def test_a_camt054_notification_is_read_like_a_statement(session):
    _account, owner = client(session)
    order, _ = place(session, owner)
    whole = f"{order.total // 100}.{order.total % 100:02d}"

    outcomes = run(session, camt([{"amount": whole, "entry_ref": "N-1", "text": f"Invoice for {order.reference}"}],
                                 kind="054"), format="camt054")

    assert outcomes == {0: ("confirmed", order.id)}


def test_a_qr_reference_confirms_a_chf_order(session):
    _account, owner = client(session)
    order, _ = place(session, owner, "toopixel-36", iban=QR_IBAN)
    assert references.is_qr_reference(order.reference)

    outcomes = run(session, camt([{"amount": "950.00", "currency": "CHF", "ref": "Q-1",
                                   "structured": order.reference}], currency="CHF"))

    assert outcomes == {0: ("confirmed", order.id)}


def test_a_reference_the_bank_cut_short_matches_when_one_order_has_it(session):
    _account, owner = client(session)
    order, _ = place(session, owner)
    cut = f"Payment for our support pack, thank you very much, see you soon {spaced(order.reference)[:-2]}"

    assert run(session, camt([{"amount": "100.00", "ref": "C-1", "text": cut}])) == {0: ("partial", order.id)}


def test_an_invoice_number_in_the_text_finds_its_order(session):
    _account, owner = client(session)
    order, payment = place(session, owner)
    confirm(session, payment)
    invoice = session.scalar(select(Invoice).where(Invoice.order_id == order.id))
    year, sequence = invoice.number.split("-")

    outcomes = run(session, camt([{"amount": "30.00", "ref": "I-1", "text": f"inv {year} - {int(sequence)}"}]))

    assert outcomes == {0: ("overpaid", order.id)}  # already paid: recorded and flagged for a refund


def test_a_transfer_staff_confirmed_by_hand_is_not_credited_again(session):
    _account, owner = client(session)
    order, payment = place(session, owner)
    confirm(session, payment, by=staff(session))
    whole = f"{order.total // 100}.{order.total % 100:02d}"

    outcomes = run(session, camt([{"amount": whole, "ref": "H-1", "structured": order.reference}]))

    assert outcomes == {0: ("duplicate", order.id)}
    assert count(session, Payment, Payment.order_id == order.id, Payment.status == "confirmed") == 1


# --- MT940 and CSV -------------------------------------------------------------

def test_an_mt940_statement_confirms_by_the_text_and_ignores_debits_and_reversals(session):
    _account, owner = client(session)
    order, _ = place(session, owner)
    whole = f"{order.total // 100}.{order.total % 100:02d}"
    statement = mt940([
        {"amount": whole, "ref": "MT-1", "text": f"{spaced(order.reference)} Acme", "payer": "ACME"},
        {"amount": "20.00", "ref": "MT-2", "debit": True, "text": "fees"},
        {"amount": whole, "ref": "MT-3", "reversal": True, "text": order.reference},
    ])

    assert run(session, statement, "mt940") == {0: ("confirmed", order.id), 1: ("ignored", None),
                                                2: ("ignored", None)}
    assert set(run(session, statement, "mt940").values()) == {("duplicate", order.id), ("duplicate", None)}


# Who paid, as the :86: field says it in each layout banks use: the German
# sub-fields (?32, continued in ?33; with the transaction code in front or
# without), or SWIFT's /NAME/, alone or under /ORDP/ (the ordering party).
@pytest.mark.parametrize("details, payer", [
    ("?20Rechnung 42?32Acme GmbH", "Acme GmbH"),
    ("166?00GUTSCHRIFT?109075?20SVWZ+Rechnung 42?30COBADEFFXXX?31DE89370400440532013000"
     "?32MUELLER GMBH UND CO KOMMAND?33ITGESELLSCHAFT?34000", "MUELLER GMBH UND CO KOMMANDITGESELLSCHAFT"),
    ("051?00UEBERWEISUNG?20Facture 42?32Jean Dupont?33SARL", "Jean Dupont SARL"),
    ("/TRTP/SEPA OVERBOEKING/IBAN/NL91ABNA0417164300/BIC/ABNANL2A/NAME/J. JANSEN/REMI/Invoice 42/EREF/NOTPROVIDED",
     "J. JANSEN"),
    ("/ORDP//NAME/Acme Corp/ADDR/Main Street 1 Paris/REMI/USTD//Invoice 42/", "Acme Corp"),
    ("/BENM//NAME/Forfait Support/ORDP//NAME/Acme Corp/REMI/USTD//Invoice 42/", "Acme Corp"),
    ("/ORDP/Acme Corp/REMI/Invoice 42", "Acme Corp"),
    # A :86: wraps at 65 characters, in the middle of a word as often as not.
    ("/TRTP/SEPA CREDIT TRANSFER/REMI/USTD//Invoice 42/ORDP//NAME/Acme Consulting Gro\r\nup Ltd/ADDR/Paris",
     "Acme Consulting Group Ltd"),
    ("Invoice 42 from a bank that writes free text", ""),
])
def test_an_mt940_line_names_its_payer_in_each_common_layout(details, payer):
    (line,) = statements.read(mt940([{"amount": "1.00", "ref": "P-1", "text": details}]), "mt940")

    assert line.payer == payer
    assert "42" in line.text and "?3" not in line.text


def test_an_mt940_payer_continued_in_33_is_enough_to_suggest_the_order(session):
    _account, owner = client(session, "Boulangerie Dupont")
    order, _ = place(session, owner)
    whole = f"{order.total // 100}.{order.total % 100:02d}"
    # ?32 holds 27 characters: the name goes on in ?33, and only there does it say who the client is.
    statement = mt940([{"amount": whole, "ref": "P-2",
                        "text": "166?00GUTSCHRIFT?20Virement?32ETS MARTIN ET FILS ET BOULA?33NGERIE DUPONT"}])

    assert run(session, statement, "mt940") == {0: ("suggested", order.id)}


def test_a_csv_statement_reads_through_its_mapping(session):
    _account, owner = client(session)
    order, _ = place(session, owner)
    statement = csv_statement([
        ["04.01.2026", "100,00", f"Zahlung {order.reference}", "Acme GmbH", ""],
        ["04.01.2026", "-15,50", "Gebühren", "", ""],
        ["04.01.2026", "1.200,00", "", "", "RF00 0000"],
    ])

    assert run(session, statement, "csv", mapping=MAPPING) == {0: ("partial", order.id), 1: ("ignored", None),
                                                               2: ("unmatched", None)}
    assert session.scalar(select(BankLine.amount).where(BankLine.status == "unmatched")) == 120000


# --- Malformed files -------------------------------------------------------------

@pytest.mark.parametrize("data, format, says", [
    (b"<Document><BkToCstmrStmt><Stmt></BkToCstmrStmt></Document>", "camt053",
     "<Stmt> is never closed (line 1, column 48)."),
    (b"<Document><BkToCstmrStmt><Stmt><Ntry>", "camt053",
     "This file is not a valid camt.053 statement: it breaks off at line 1, column 38 (inside <Ntry>)."),
    (b"<Document>\n <Stmt></Document>", "camt053", "<Stmt> is never closed (line 2, column 19)."),
    (b"", "camt054", "This file is not a valid camt.054 statement: it is not XML at all."),
    (camt([{"amount": "12.345", "ref": "X"}]), "camt053", "line 18, <Amt>: '12.345' is not an amount in EUR"),
    (camt([{"amount": "abc", "ref": "X"}]), "camt053", "line 18, <Amt>: 'abc' is not an amount"),
    (camt([{"amount": "1.00"}]), "camt054", "is not a camt.054 document"),
    (b"hello", "mt940", "not an MT940 statement"),
    (mt940([{"amount": "1.00"}]).replace(b":61:2601040104C", b":61:garbageC"), "mt940", "Line 5: field :61:"),
    (csv_statement([["04.01.2026", "zehn", "", "", ""]]), "csv", "line 2: 'zehn' is not an amount"),
    (csv_statement([["2026-01-04", "1,00", "", "", ""]]), "csv", "line 2: '2026-01-04' is not a date"),
    (csv_statement([["04.01.2026", "1,00"]], header=("Datum", "Betrag")), "csv", "no column named 'Text'"),
])
def test_a_malformed_file_names_the_line_and_writes_nothing(session, data, format, says):
    _account, owner = client(session)
    order, _ = place(session, owner)
    good = camt([{"amount": "1.00", "ref": "OK", "text": order.reference}])
    before = written(session)

    with pytest.raises(statements.MalformedStatement) as refused:
        run(session, data, format, mapping=MAPPING if format == "csv" else None)

    assert says in str(refused.value)
    assert written(session) == before
    assert run(session, good)[0][0] == "partial"  # the session is still usable


# --- Staff ---------------------------------------------------------------------------

def test_staff_assign_an_unmatched_line_and_discard_another(session):
    _account, owner = client(session)
    order, _ = place(session, owner)
    sam = staff(session)
    whole = f"{order.total // 100}.{order.total % 100:02d}"
    run(session, camt([{"amount": whole, "ref": "U-1", "text": "for the support"},
                       {"amount": "3.00", "ref": "U-2", "text": "own transfer"}]))
    first, second = imports.waiting(session)

    done = imports.assign(session, first.id, order.id, seller=SELLER, now=NOW, by=sam)
    imports.discard(session, second.id, note="  between our own accounts ", now=NOW, by=sam)

    assert (done.outcome, done.order_id) == ("confirmed", order.id)
    session.refresh(order)
    assert order.status == "paid" and imports.waiting(session) == []
    assert (first.matched_by, first.resolved_by_id, second.status, second.note) == (
        "staff", sam.id, "discarded", "between our own accounts")
    trail = {entry.action: (entry.actor_id, entry.subject_id, entry.after["status"]) for entry in audit.entries(
        session).entries}
    assert trail == {"bank.assign": (sam.id, first.id, "confirmed"), "bank.discard": (sam.id, second.id, "discarded")}
    with pytest.raises(imports.BankError):
        imports.assign(session, first.id, order.id, seller=SELLER, now=NOW, by=sam)  # settled already
    assert count(session, Payment, Payment.order_id == order.id, Payment.status == "confirmed") == 1


# --- Matching rules (pure) ---------------------------------------------------------

def test_references_are_read_whatever_the_spacing_case_and_leading_zeros():
    reference = references.rf_reference("00000012")
    assert matching.read_text(f"paid {references.pretty(reference).lower()}!").references == [reference]
    short = matching.read_text(f"{reference[:4]} 12").references
    assert short and matching.order_id_of(short[0]) == 12
    assert matching.read_text("RF18").references == []
    assert matching.read_text("invoice 2026 - 12, 2026-0003").invoices == ["2026-0012", "2026-0003"]
    assert matching.names_agree("DUPONT SARL", ["Boulangerie Dupont"])
    assert not matching.names_agree("SARL", ["Boulangerie SARL"])


# --- Concurrency (PostgreSQL) --------------------------------------------------------

@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_imports_of_one_file_at_once_confirm_once(app, session):
    _account, owner = client(session)
    order, _ = place(session, owner)
    whole = f"{order.total // 100}.{order.total % 100:02d}"
    statement = camt([{"amount": whole, "ref": "P-1", "structured": order.reference}])
    db.session.remove()
    barrier = threading.Barrier(2)
    found: list[str] = []

    def one() -> None:
        with app.app_context():
            barrier.wait()
            found.append(run(db.session, statement)[0][0])
            db.session.remove()

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(found) == ["confirmed", "duplicate"]
    with app.app_context():
        assert count(db.session, Payment, Payment.order_id == order.id, Payment.status == "confirmed") == 1
        assert count(db.session, Invoice, Invoice.order_id == order.id) == 1


def test_received_at_is_the_booking_day_never_later_than_now(session):
    _account, owner = client(session)
    order, _ = place(session, owner)
    whole = f"{order.total // 100}.{order.total % 100:02d}"
    run(session, camt([{"amount": whole, "ref": "D-1", "structured": order.reference, "booked": "2026-01-09"}]))
    payment = session.scalar(select(Payment).where(Payment.order_id == order.id, Payment.status == "confirmed"))
    assert payment.received_at == NOW and payment.confirmed_at - payment.received_at == timedelta(0)


# --- Command line ----------------------------------------------------------------------

def test_the_command_prints_one_line_per_bank_line_and_changes_nothing_the_second_time(app, session, runner,
                                                                                       tmp_path):
    _account, owner = client(session)
    order, _ = place(session, owner)
    whole = f"{order.total // 100}.{order.total % 100:02d}"
    statement = tmp_path / "night.xml"
    statement.write_bytes(camt([{"amount": whole, "ref": "K-1", "structured": order.reference},
                                {"amount": "7.50", "ref": "K-2", "debit": True},
                                {"amount": "9.00", "ref": "K-3", "text": "who knows"}]))
    db.session.remove()

    first = runner.invoke(args=["bank", "import", str(statement)])
    second = runner.invoke(args=["bank", "import", str(statement), "--format", "camt053"])

    assert first.exit_code == 0, first.output
    ids = [line.split("\t")[0] for line in first.stdout.splitlines()]
    assert first.stdout.splitlines() == [f"{ids[0]}\tconfirmed\t{order.id}\t{whole}\tEUR",
                                         f"{ids[1]}\tignored\t-\t7.50\tEUR", f"{ids[2]}\tunmatched\t-\t9.00\tEUR"]
    assert second.exit_code == 0
    assert second.stdout.splitlines() == [f"{ids[0]}\tduplicate\t{order.id}\t{whole}\tEUR",
                                          f"{ids[1]}\tduplicate\t-\t7.50\tEUR", f"{ids[2]}\tduplicate\t-\t9.00\tEUR"]


def test_the_command_exits_2_naming_what_is_malformed_and_writes_nothing(app, session, runner, tmp_path):
    broken = tmp_path / "broken.sta"
    broken.write_bytes(mt940([{"amount": "1.00"}]).replace(b":61:2601040104C", b":61:garbageC"))
    csv_file = tmp_path / "bank.csv"
    csv_file.write_bytes(csv_statement([]))
    before = written(session)
    db.session.remove()

    result = runner.invoke(args=["bank", "import", str(broken)])
    no_mapping = runner.invoke(args=["bank", "import", str(csv_file), "--format", "csv"])
    unknown = runner.invoke(args=["bank", "import", str(csv_file), "--mapping", "Nowhere"])

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: broken.sta: Line 5: field :61: cannot be read") and \
        result.stderr.count("\n") == 1
    assert no_mapping.exit_code == 2 and "needs --mapping NAME" in no_mapping.stderr
    assert unknown.exit_code == 2 and "no mapping named 'Nowhere'" in unknown.stderr
    with app.app_context():
        assert written(db.session) == before


def test_the_command_says_where_a_broken_camt_file_breaks_in_one_line(app, session, runner, tmp_path):
    """A script's log reads the same plain words as the upload page, with the file's name."""
    broken = tmp_path / "night.xml"
    broken.write_bytes(camt([{"amount": "1.00", "ref": "B-1"}])[:400])

    result = runner.invoke(args=["bank", "import", str(broken)])

    assert (result.exit_code, result.stdout) == (2, "")
    assert re.fullmatch(r"Error: night\.xml: This file is not a valid camt\.053 statement: it breaks off at line "
                        r"\d+, column \d+ \(inside <\w+>\)\.\n", result.stderr), result.stderr


def test_an_xml_entity_cannot_read_a_file_of_the_server(session, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    statement = camt([{"amount": "1.00", "ref": "X-1", "text": "&leak;"}]).replace(
        b"<Document", f'<!DOCTYPE Document [<!ENTITY leak SYSTEM "file://{secret}">]>\n<Document'.encode(), 1)

    outcomes = run(session, statement)

    assert outcomes == {0: ("unmatched", None)}
    assert "TOP-SECRET" not in session.scalar(select(BankLine.text))


def test_the_command_reads_a_csv_through_a_mapping_named_once(app, session, runner, tmp_path):
    from billing.bank import mappings as bank_mappings

    _account, owner = client(session)
    order, _ = place(session, owner)
    bank_mappings.save(session, MAPPING, now=NOW, by=None)
    export = tmp_path / "sparkasse.csv"
    export.write_bytes(csv_statement([["04.01.2026", "25,00", f"Zahlung {order.reference}", "Acme", ""]]))
    db.session.remove()

    result = runner.invoke(args=["bank", "import", str(export), "--mapping", "Sparkasse"])

    assert result.exit_code == 0, result.output
    assert result.stdout.split("\t")[1:] == ["partial", str(order.id), "25.00", "EUR\n"]
