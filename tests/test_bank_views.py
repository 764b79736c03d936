"""The staff pages of bank statements: upload, what each line became, the
lines waiting for a person, the CSV mappings. Bad uploads are 4xx with the
reason, and write nothing."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from bank_support import camt, csv_statement
from checkout_support import NOW, SELLER, place, session  # noqa: F401
from checkout_support import client as new_client
from conftest import PASSWORD, csrf_token, login, post_form
from sqlalchemy import func, select

from billing.accounts.models import User
from billing.audit import AuditEntry
from billing.bank import imports
from billing.bank.models import BankImport, BankLine, BankMapping
from billing.orders.models import Order, Payment
from common.extensions import db
from common.identity import accounts
from portal import bank as bank_views
from tests.access import covers

TOKEN = re.compile(r'name="token" type="hidden" value="([0-9a-f]{32})"')


@pytest.fixture
def sam(app):
    with app.app_context():
        accounts.create_staff(db.session, "Sam Staff", "staff@example.com", PASSWORD)
    return "staff@example.com"


def upload(client, data: bytes, filename: str = "statement.xml", **fields):
    page = client.get("/portal/staff/bank/").get_data(as_text=True)
    token = TOKEN.search(page).group(1)
    form = {"csrf_token": csrf_token(client, "/portal/staff/bank/"), "token": token, "format": "", "mapping": "",
            **fields}
    if data is not None:
        form["statement"] = (io.BytesIO(data), filename)
    return client.post("/portal/staff/bank/imports", data=form, content_type="multipart/form-data")


def lines_written(app) -> tuple[int, int]:
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(BankImport)),
                db.session.scalar(select(func.count()).select_from(BankLine)))


def test_staff_upload_a_statement_and_read_what_each_line_became(app, client, session, sam):
    _account, _owner, order = client_of(session)
    whole = f"{order.total // 100}.{order.total % 100:02d}"
    login(client, sam)

    response = upload(client, camt([{"amount": whole, "ref": "W-1", "structured": order.reference, "payer": "Acme"},
                                    {"amount": "5.00", "ref": "W-2", "debit": True, "text": "fees"},
                                    {"amount": "9.00", "ref": "W-3", "text": "mystery"}]))

    assert response.status_code == 302 and response.headers["Location"].startswith("/portal/staff/bank/imports/")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "confirmed" in page and "not credited" in page and "a debit: money going out" in page
    assert f"/portal/orders/{order.id}" in page
    waiting = client.get("/portal/staff/bank/lines").get_data(as_text=True)
    assert "mystery" in waiting and "fees" not in waiting


def test_each_imported_line_reads_as_a_person_knows_it_with_its_place_in_the_file_a_muted_hint(app, client, session,
                                                                                                 sam):
    """An office manager finds a line by its day, amount, payer and reference,
    not by "line 18" of the XML; a line the bank repeated says so in words."""
    login(client, sam)
    same = {"amount": "9.00", "ref": "W-9", "payer": "M. Martin", "text": "support pack"}
    response = upload(client, camt([same, same]))

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    rows = re.findall(r'<tr id="bank-line-\d+">(.*?)</tr>', page, re.S)
    assert len(rows) == 2
    for row in rows:
        assert "Jan 4, 2026" in row and "M. Martin" in row and "support pack" in row and "€9.00" in row
    # Where it sits in the file stays, small and muted, for whoever opens the file itself; the repeat, which
    # would show the first one's, says what it is instead.
    assert re.findall(r"line \d+", rows[0]) == re.findall(r'<small class="bank-position">(line \d+)</small>', rows[0])
    assert re.findall(r"line \d+", rows[1]) == [] and "repeated in this file: already listed above" in rows[1]


def client_of(session):
    account, owner = new_client(session)
    order, _payment = place(session, owner)
    return account, owner, order


@pytest.mark.parametrize("data, fields, says", [
    (None, {}, "Choose the statement file"),
    (b"<Document><oops></Document>", {"format": "camt053"}, "This file is not a valid camt.053 statement"),
    (csv_statement([["04.01.2026", "1,00", "", "", ""]]), {"format": "csv"}, "Choose the column mapping"),
    (b"hello", {"format": "mt940"}, "not an MT940 statement"),
    (b"x", {"format": "bitcoin"}, "Not a valid choice"),
])
def test_a_bad_upload_is_refused_with_the_reason_and_writes_nothing(app, client, sam, data, fields, says):
    login(client, sam)
    before = lines_written(app)

    response = upload(client, data, **fields)

    assert response.status_code == 422
    assert says in response.get_data(as_text=True)
    assert lines_written(app) == before


def test_the_bank_pages_read_times_on_the_providers_clock_like_the_rest_of_the_back_office(app, client, sam):
    """23:30 UTC on 6 December is 00:30 on the 7th in Paris (the default zone):
    the statements said "Dec 7, 2026 23:30 UTC", the day in Paris beside the
    hour in UTC, an hour off the audit log's clock."""
    with app.app_context():
        done = imports.import_statement(db.session, camt([{"amount": "4.00", "ref": "N-1", "text": "?"}]),
                                        format="camt053", filename="night.xml", seller=SELLER,
                                        now=datetime(2026, 12, 6, 23, 30, tzinfo=UTC))
        import_id = done.bank_import.id
    login(client, sam)
    for page in (client.get("/portal/staff/bank/").get_data(as_text=True),
                 client.get(f"/portal/staff/bank/imports/{import_id}").get_data(as_text=True)):
        assert "Dec 7, 2026 12:30\u202fAM" in page  # CLDR's narrow space before AM
        assert "UTC" not in page


@pytest.mark.parametrize("data, says", [
    (b"<Document><BkToCstmrStmt><Stmt><Ntry>",
     "This file is not a valid camt.053 statement: it breaks off at line 1, column 38 (inside &lt;Ntry&gt;)."),
    (b"<Document>\n<oops></Document>",
     "This file is not a valid camt.053 statement: &lt;oops&gt; is never closed (line 2, column 18)."),
    (b"hello", "This file is not a valid camt.053 statement: it is not XML at all."),
    (b"<Document><Stmt>\xff</Stmt></Document>",
     "This file is not a valid camt.053 statement: it holds bytes that are not text at line 1, column 17 "
     "(inside &lt;Stmt&gt;)."),
    (b"<Document><Stmt a=1/></Document>",
     "This file is not a valid camt.053 statement: it is not well-formed XML at line 1, column 19 "
     "(inside &lt;Document&gt;)."),
])
def test_a_broken_xml_file_is_refused_in_plain_words_naming_where(app, client, sam, data, says):
    """An office manager reads where the file breaks, not the XML parser's own
    words ("Premature end of data in tag Ntry line 1")."""
    login(client, sam)

    page = upload(client, data, format="camt053").get_data(as_text=True)

    assert says in page
    assert "Premature" not in page and "mismatch" not in page


@pytest.mark.parametrize("size", [1001, 200_000])
def test_a_statement_too_large_is_413(app, client, sam, monkeypatch, size):
    # A small limit: a test upload above werkzeug's spooling threshold leaves a temporary file open.
    monkeypatch.setattr(bank_views, "MAX_BYTES", 1000)
    login(client, sam)
    response = upload(client, b"<" + b"x" * size)
    assert response.status_code == 413
    assert lines_written(app) == (0, 0)


def test_the_same_upload_form_sent_twice_is_one_import(app, client, session, sam):
    _account, _owner, order = client_of(session)
    login(client, sam)
    page = client.get("/portal/staff/bank/").get_data(as_text=True)
    token = TOKEN.search(page).group(1)
    data = camt([{"amount": "10.00", "ref": "T-1", "structured": order.reference}])
    form = lambda: {"csrf_token": csrf_token(client, "/portal/staff/bank/"), "token": token, "format": "",  # noqa: E731
                    "mapping": "", "statement": (io.BytesIO(data), "s.xml")}

    first = client.post("/portal/staff/bank/imports", data=form(), content_type="multipart/form-data")
    second = client.post("/portal/staff/bank/imports", data=form(), content_type="multipart/form-data")

    assert first.headers["Location"] == second.headers["Location"]
    assert lines_written(app) == (1, 1)


def test_staff_assign_a_waiting_line_by_the_order_number_or_set_it_aside(app, client, session, sam):
    _account, _owner, order = client_of(session)
    whole = f"{order.total // 100}.{order.total % 100:02d}"
    login(client, sam)
    upload(client, camt([{"amount": whole, "ref": "A-1", "text": "support"},
                         {"amount": "1.00", "ref": "A-2", "text": "test transfer"}]))
    with app.app_context():
        first, second = db.session.scalars(select(BankLine.id).order_by(BankLine.id)).all()

    wrong = post_form(client, f"/portal/staff/bank/lines/{first}/assign", {"order": "99999"})
    empty = post_form(client, f"/portal/staff/bank/lines/{second}/discard", {"note": ""})
    assigned = post_form(client, f"/portal/staff/bank/lines/{first}/assign", {"order": str(order.id)})
    aside = post_form(client, f"/portal/staff/bank/lines/{second}/discard", {"note": "our own test"})

    assert wrong.status_code == 422 and "There is no order 99999 to pay." in wrong.get_data(as_text=True)
    assert empty.status_code == 422
    assert (assigned.status_code, assigned.headers["Location"]) == (302, "/portal/staff/bank/lines")
    assert aside.status_code == 302
    with app.app_context():
        assert db.session.get(Order, order.id).status == "paid"
        assert db.session.get(BankLine, second).status == "discarded"
    again = post_form(client, f"/portal/staff/bank/lines/{first}/assign", {"order": str(order.id)})
    assert again.status_code == 422 and "already settled" in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payment).where(
            Payment.order_id == order.id, Payment.status == "confirmed")) == 1


def test_a_csv_mapping_is_made_once_then_chosen_and_edited(app, client, session, sam):
    _account, _owner, order = client_of(session)
    login(client, sam)
    fields = {"name": "Sparkasse", "delimiter": ";", "date_column": "Datum", "date_format": "%d.%m.%Y",
              "amount_column": "Betrag", "decimal_comma": "y", "currency": "eur", "text_column": "Text",
              "payer_column": "Auftraggeber", "reference_column": "Referenz"}

    bad = post_form(client, "/portal/staff/bank/mappings", {**fields, "date_format": "dd.mm.yyyy"})
    made = post_form(client, "/portal/staff/bank/mappings", fields)
    imported = upload(client, csv_statement([["04.01.2026", "10,00", f"Zahlung {order.reference}", "Acme", ""]]),
                      "export.csv", mapping="Sparkasse")

    assert bad.status_code == 422 and "%d, %m and %Y" in bad.get_data(as_text=True)
    assert made.status_code == 302
    assert imported.status_code == 302
    assert "partial payment" in client.get(imported.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        mapping = db.session.scalar(select(BankMapping))
        assert (mapping.currency, mapping.decimal_comma) == ("EUR", True)
    edited = post_form(client, f"/portal/staff/bank/mappings/{mapping.id}", {**fields, "currency": "CHF"})
    assert edited.status_code == 302
    assert 'value="CHF"' in client.get(f"/portal/staff/bank/mappings/{mapping.id}").get_data(as_text=True)


MAPPING_FIELDS = {"name": "Sparkasse", "delimiter": ";", "date_column": "Datum", "date_format": "%d.%m.%Y",
                  "amount_column": "Betrag", "decimal_comma": "y", "currency": "EUR", "text_column": "Text",
                  "payer_column": "Auftraggeber", "reference_column": "Referenz"}


def audit_trail(app, kind: str = "bank_mapping") -> list[tuple]:
    with app.app_context():
        return [(entry.action, entry.subject_id, entry.before, entry.after, entry.actor.email if entry.actor else None)
                for entry in db.session.scalars(select(AuditEntry).where(AuditEntry.subject_kind == kind)
                                                .order_by(AuditEntry.id))]


def test_staff_see_the_saved_mappings_rename_one_and_delete_it_each_written_to_the_audit_log(app, client, sam):
    login(client, sam)
    post_form(client, "/portal/staff/bank/mappings", MAPPING_FIELDS)
    with app.app_context():
        mapping_id = db.session.scalar(select(BankMapping.id))

    listed = client.get("/portal/staff/bank/mappings").get_data(as_text=True)
    renamed = post_form(client, f"/portal/staff/bank/mappings/{mapping_id}",
                        {**MAPPING_FIELDS, "name": "Sparkasse Köln"})
    offered = client.get("/portal/staff/bank/").get_data(as_text=True)
    deleted = post_form(client, f"/portal/staff/bank/mappings/{mapping_id}/delete")
    after = client.get(deleted.headers["Location"]).get_data(as_text=True)

    # The list says which columns each mapping reads, and offers to change or delete it.
    assert "Sparkasse" in listed and "Datum" in listed and "Betrag" in listed
    assert f'action="/portal/staff/bank/mappings/{mapping_id}/delete"' in listed
    assert renamed.status_code == 302
    assert '<option value="Sparkasse Köln">' in offered
    assert (deleted.status_code, deleted.headers["Location"]) == (302, "/portal/staff/bank/mappings")
    assert "The mapping Sparkasse Köln is deleted." in after and 'option value="Sparkasse' not in after
    with app.app_context():
        assert db.session.get(BankMapping, mapping_id) is None
    created, changed, removed = audit_trail(app)
    assert created[:2] == ("bank.mapping.create", mapping_id) and created[2] is None
    assert created[3]["name"] == "Sparkasse" and created[3]["amount_column"] == "Betrag" and created[4] == sam
    # A change names only what changed.
    assert changed[:4] == ("bank.mapping.update", mapping_id, {"name": "Sparkasse"}, {"name": "Sparkasse Köln"})
    assert removed[:3] == ("bank.mapping.delete", mapping_id, {**created[3], "name": "Sparkasse Köln"})
    assert removed[3] is None


def test_the_audit_log_names_the_mapping_actions(app, client, sam):
    login(client, sam)  # an admin: the log is theirs
    post_form(client, "/portal/staff/bank/mappings", MAPPING_FIELDS)

    log = client.get("/staff/audit").get_data(as_text=True)

    assert "Bank CSV mapping created" in log and "CSV column mapping" in log and "Amount column (signed)" in log


def test_deleting_a_mapping_leaves_the_imports_it_read_whole(app, client, session, sam):
    _account, _owner, order = client_of(session)
    login(client, sam)
    post_form(client, "/portal/staff/bank/mappings", MAPPING_FIELDS)
    imported = upload(client, csv_statement([["04.01.2026", "10,00", f"Zahlung {order.reference}", "Acme", ""]]),
                      "export.csv", mapping="Sparkasse")
    with app.app_context():
        mapping_id = db.session.scalar(select(BankMapping.id))

    post_form(client, f"/portal/staff/bank/mappings/{mapping_id}/delete")
    shown = client.get(imported.headers["Location"])
    index = client.get("/portal/staff/bank/").get_data(as_text=True)

    assert shown.status_code == 200 and "partial payment" in shown.get_data(as_text=True)
    assert "export.csv" in index
    assert lines_written(app) == (1, 1)


def test_a_mapping_deleted_meanwhile_is_404_and_a_delete_by_get_is_refused(app, client, sam):
    login(client, sam)
    post_form(client, "/portal/staff/bank/mappings", MAPPING_FIELDS)
    with app.app_context():
        mapping_id = db.session.scalar(select(BankMapping.id))

    by_get = client.get(f"/portal/staff/bank/mappings/{mapping_id}/delete")
    first = post_form(client, f"/portal/staff/bank/mappings/{mapping_id}/delete")
    second = post_form(client, f"/portal/staff/bank/mappings/{mapping_id}/delete")
    without_token = client.post(f"/portal/staff/bank/mappings/{mapping_id + 1}/delete")

    assert by_get.status_code == 405 and first.status_code == 302
    assert second.status_code == 404 and without_token.status_code in (400, 404)
    assert [entry[0] for entry in audit_trail(app)] == ["bank.mapping.create", "bank.mapping.delete"]


@pytest.mark.parametrize("who", ["anon", "owner"])
def test_only_staff_reach_the_bank_pages(app, client, people, who):
    if who == "owner":
        login(client, people["owner"])
    response = client.get("/portal/staff/bank/")
    if who == "anon":
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    else:
        assert response.status_code == 403


# --- Who may (issue 14's roles) --------------------------------------------------------

ROLES = ("anonymous", "member", "owner", "another", "agent", "admin", "deactivated")
EMAIL = {"member": "member@example.com", "owner": "owner@example.com", "another": "other@example.com",
         "agent": "agent@example.com", "admin": "admin@example.com", "deactivated": "gone@example.com"}


@pytest.fixture
def cast(app, people):
    """An account's owner and member, another account's owner, an agent, an
    admin, a staff member about to be deactivated; a waiting bank line and a mapping."""
    from bank_support import camt as statement
    from checkout_support import SELLER

    from billing.bank import imports
    from billing.bank import mappings as bank_mappings
    from billing.bank.statements import Mapping

    with app.app_context():
        accounts.register(db.session, "Other", "Otto Other", "other@example.com", PASSWORD, "en", "FR")
        for email, role in (("agent@example.com", "agent"), ("admin@example.com", "admin"),
                            ("gone@example.com", "agent")):
            db.session.add(User(role=role, email=email, name=email.split("@")[0].title(), is_staff=True,
                                password_hash=accounts.hasher.hash(PASSWORD)))
        db.session.commit()
        done = imports.import_statement(db.session, statement([{"amount": "4.00", "ref": "R-1", "text": "?"}]),
                                        format="camt053", filename="r.xml", seller=SELLER, now=NOW)
        mapping = bank_mappings.save(db.session, Mapping(name="Roles bank", date_column="Date", text_column="Text"),
                                     now=NOW, by=None)
        return {"import": done.bank_import.id, "line": done.lines[0].line.id, "mapping": mapping.id}


def signed_in(app, client, role: str):
    if role != "anonymous":
        login(client, EMAIL[role])
    if role == "deactivated":
        with app.app_context():
            db.session.scalar(select(User).where(User.email == EMAIL[role])).removed_at = NOW
            db.session.commit()
    return client


def expected(role: str):
    return "login" if role in ("anonymous", "deactivated") else 200 if role in ("agent", "admin") else 403


def judge(answer, want) -> None:
    if want == "login":
        assert answer.status_code == 302 and "/login" in answer.location
    else:
        assert answer.status_code == want


PAGES = ["/portal/staff/bank/", "/portal/staff/bank/imports/{import}", "/portal/staff/bank/lines",
         "/portal/staff/bank/mappings", "/portal/staff/bank/mappings/{mapping}"]
POSTS = {"/portal/staff/bank/imports": {"format": "camt053", "token": "e" * 32},
         "/portal/staff/bank/lines/{line}/assign": {"order": "1"},
         "/portal/staff/bank/lines/{line}/discard": {"note": "mine"},
         "/portal/staff/bank/mappings": {"name": "X", "delimiter": ";", "date_column": "D", "date_format": "%d.%m.%Y",
                                         "amount_column": "A", "currency": "EUR", "text_column": "T"},
         "/portal/staff/bank/mappings/{mapping}": {"name": "Y", "delimiter": ";", "date_column": "D",
                                                   "date_format": "%d.%m.%Y", "amount_column": "A",
                                                   "currency": "EUR", "text_column": "T"},
         "/portal/staff/bank/mappings/{mapping}/delete": {}}
COVERS = covers(PAGES, POSTS)


def bank_rows(app) -> dict[str, list]:
    with app.app_context():
        return {model.__tablename__: sorted(map(repr, db.session.execute(select(model.__table__)).all()))
                for model in (BankImport, BankLine, BankMapping, Payment, Order, AuditEntry)}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES)
def test_who_may_open_each_bank_page(app, client, cast, page, role):
    judge(signed_in(app, client, role).get(page.format(**cast)), expected(role))


@pytest.mark.parametrize("role", [role for role in ROLES if expected(role) != 200])
@pytest.mark.parametrize("url", sorted(POSTS))
def test_a_refused_bank_post_writes_nothing(app, client, cast, url, role):
    client = signed_in(app, client, role)
    before = bank_rows(app)
    data = {**POSTS[url], "csrf_token": csrf_token(client, "/login" if role in ("anonymous", "deactivated")
                                                   else "/portal/")}
    if url.endswith("/imports"):
        data["statement"] = (io.BytesIO(camt([{"amount": "1.00", "ref": "Z"}])), "z.xml")
    judge(client.post(url.format(**cast), data=data, content_type="multipart/form-data"), expected(role))
    assert bank_rows(app) == before


@pytest.mark.parametrize("lang, says", [
    ("fr", ["Relevés bancaires", "Importer le relevé", "confirmé", "un relevé camt.053 valide", "&lt;oops&gt; n",
            "jamais fermé (ligne 1, colonne 28).", "non créditée",
            "un débit\u00a0: de l'argent qui sort", "ligne "]),
    ("es", ["Extractos bancarios", "Importar el extracto", "confirmado",
            "Este archivo no es un extracto camt.053 válido:", "&lt;oops&gt; nunca se cierra (línea 1, columna 28).",
            "no abonada",
            "un cargo: dinero que sale", "línea "]),
])
def test_the_bank_pages_speak_the_staff_members_language(app, client, sam, lang, says):
    # Without the session fixture: an app context held around the requests keeps the first one's language.
    with app.app_context():
        _account, _owner, order = client_of(db.session)
        whole, reference = f"{order.total // 100}.{order.total % 100:02d}", order.reference
    login(client, sam)
    post_form(client, "/language", {"lang": lang})  # the language menu: remembered as the user's

    index = client.get("/portal/staff/bank/").get_data(as_text=True)
    refused = upload(client, b"<Document><oops></Document>", format="camt053").get_data(as_text=True)
    done = upload(client, camt([{"amount": whole, "ref": "L-1", "structured": reference},
                                {"amount": "2.00", "ref": "L-2", "debit": True},
                                {"amount": "3.00", "ref": "L-3", "text": "nobody knows"}]))
    result = client.get(done.headers["Location"]).get_data(as_text=True)
    waiting = client.get("/portal/staff/bank/lines").get_data(as_text=True)
    no_amount = upload(client, camt([{"amount": "abc", "ref": "L-4"}])).get_data(as_text=True)

    html = index + refused + result + waiting + no_amount
    assert f'<html lang="{lang}"' in index
    assert [phrase for phrase in says if phrase not in html] == []
    # Where a line sits in the file is said in the reader's language too, on every page and in every refusal.
    assert re.findall(r"\bline \d+", refused + result + waiting + no_amount) == []


@pytest.mark.parametrize("lang, says", [
    ("fr", ["Modèles enregistrés", "Colonnes lues", "Supprimer le modèle Sparkasse\u00a0?",
            "Le modèle Sparkasse est supprimé."]),
    ("es", ["Correspondencias guardadas", "Columnas leídas", "¿Eliminar la correspondencia Sparkasse?",
            "La correspondencia Sparkasse está eliminada."]),
])
def test_the_mappings_page_speaks_the_staff_members_language(app, client, sam, lang, says):
    login(client, sam)
    post_form(client, "/language", {"lang": lang})
    post_form(client, "/portal/staff/bank/mappings", MAPPING_FIELDS)
    with app.app_context():
        mapping_id = db.session.scalar(select(BankMapping.id))

    listed = client.get("/portal/staff/bank/mappings").get_data(as_text=True)
    deleted = post_form(client, f"/portal/staff/bank/mappings/{mapping_id}/delete", follow_redirects=True)

    html = listed + deleted.get_data(as_text=True)
    assert [phrase for phrase in says if phrase not in html] == []


# --- Assign and set aside in place (htmx) ----------------------------------------------

HTMX = {"HX-Request": "true", "HX-Current-URL": "http://localhost/portal/staff/bank/lines"}


def two_waiting_lines(app, client, session):
    _account, _owner, order = client_of(session)
    whole = f"{order.total // 100}.{order.total % 100:02d}"
    upload(client, camt([{"amount": whole, "ref": "H-1", "text": "support", "payer": "M. Martin"},
                         {"amount": "1.00", "ref": "H-2", "text": "test transfer"}]))
    with app.app_context():
        first, second = db.session.scalars(select(BankLine.id).order_by(BankLine.id)).all()
    return order, first, second


def test_assigning_with_htmx_answers_the_lines_row_and_the_count_in_its_place(app, client, session, sam):
    login(client, sam)
    order, first, second = two_waiting_lines(app, client, session)
    page = client.get("/portal/staff/bank/lines").get_data(as_text=True)

    assigned = post_form(client, f"/portal/staff/bank/lines/{first}/assign", {"order": str(order.id)}, headers=HTMX)
    aside = post_form(client, f"/portal/staff/bank/lines/{second}/discard", {"note": "our own test"}, headers=HTMX)

    # The page's forms post by themselves without JavaScript, and swap their own line's row with it.
    assert f'action="/portal/staff/bank/lines/{first}/assign"' in page
    assert f'hx-post="/portal/staff/bank/lines/{first}/assign" hx-target="#bank-line-{first}"' in page
    assert 'id="bank-waiting-count"' in page and "2 bank lines wait for you to assign or discard them." in page
    row = assigned.get_data(as_text=True)
    assert assigned.status_code == 200 and "HX-Request" in assigned.headers["Vary"]
    assert row.lstrip().startswith(f'<article id="bank-line-{first}"') and "<html" not in row
    assert f"Order {order.id} is paid: credited and invoiced." in row and "confirmed" in row
    assert f'href="/portal/orders/{order.id}"' in row and "Assign to this order" not in row
    assert '<p id="bank-waiting-count" hx-swap-oob="true"' in row
    assert "1 bank line waits for you to assign or discard it." in row
    other = aside.get_data(as_text=True)
    assert aside.status_code == 200 and other.lstrip().startswith(f'<article id="bank-line-{second}"')
    assert "set aside" in other and "our own test" in other and "No bank line waits for you." in other
    with app.app_context():
        assert db.session.get(Order, order.id).status == "paid"
        assert db.session.get(BankLine, second).status == "discarded"
    # Said in the row: nothing is left to flash on the next page.
    assert "is paid" not in client.get("/portal/staff/bank/lines").get_data(as_text=True)


def test_a_refused_assignment_with_htmx_answers_the_row_with_the_reason(app, client, session, sam):
    login(client, sam)
    order, first, second = two_waiting_lines(app, client, session)

    wrong = post_form(client, f"/portal/staff/bank/lines/{first}/assign", {"order": "99999"}, headers=HTMX)
    empty = post_form(client, f"/portal/staff/bank/lines/{second}/discard", {"note": ""}, headers=HTMX)
    post_form(client, f"/portal/staff/bank/lines/{first}/assign", {"order": str(order.id)}, headers=HTMX)
    again = post_form(client, f"/portal/staff/bank/lines/{first}/assign", {"order": str(order.id)}, headers=HTMX)

    assert wrong.status_code == 422
    row = wrong.get_data(as_text=True)
    assert row.lstrip().startswith(f'<article id="bank-line-{first}"') and "<html" not in row
    assert "There is no order 99999 to pay." in row and 'value="99999"' in row and 'aria-invalid="true"' in row
    assert empty.status_code == 422 and f'id="note-{second}"' in empty.get_data(as_text=True)
    # Settled meanwhile: the row shows what the line became, and why nothing more was done.
    settled = again.get_data(as_text=True)
    assert again.status_code == 422 and "already settled" in settled and "confirmed" in settled
    assert "Assign to this order" not in settled
    assert "already settled" not in client.get("/portal/staff/bank/lines").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payment).where(
            Payment.order_id == order.id, Payment.status == "confirmed")) == 1


def test_an_htmx_post_carries_its_csrf_token_in_the_header_the_body_gives(app, client, session, sam):
    login(client, sam)
    order, first, _second = two_waiting_lines(app, client, session)
    token = csrf_token(client, "/portal/staff/bank/lines")

    without = client.post(f"/portal/staff/bank/lines/{first}/assign", data={"order": str(order.id)}, headers=HTMX)
    with_header = client.post(f"/portal/staff/bank/lines/{first}/assign", data={"order": str(order.id)},
                              headers={**HTMX, "X-CSRFToken": token})

    assert without.status_code == 400 and with_header.status_code == 200
    assert f'hx-headers=\'{{"X-CSRFToken": "{token}"}}\'' in client.get("/portal/staff/bank/lines").get_data(
        as_text=True)


@pytest.mark.parametrize("role", [role for role in ROLES if expected(role) != 200])
@pytest.mark.parametrize("url", ["/portal/staff/bank/lines/{line}/assign", "/portal/staff/bank/lines/{line}/discard"])
def test_a_refused_htmx_post_writes_nothing(app, client, cast, url, role):
    client = signed_in(app, client, role)
    before = bank_rows(app)
    data = {**POSTS[url], "csrf_token": csrf_token(client, "/login" if role in ("anonymous", "deactivated")
                                                   else "/portal/")}
    answer = client.post(url.format(**cast), data=data, headers=HTMX)
    judge(answer, expected(role))
    assert "bank-line-" not in answer.get_data(as_text=True)
    assert bank_rows(app) == before


def test_an_agent_who_may_make_a_mapping_may_delete_it_too(app, client, cast):
    signed_in(app, client, "agent")

    deleted = post_form(client, f"/portal/staff/bank/mappings/{cast['mapping']}/delete")

    assert (deleted.status_code, deleted.headers["Location"]) == (302, "/portal/staff/bank/mappings")
    assert [(action, actor) for action, _id, _before, _after, actor in audit_trail(app)] == [
        ("bank.mapping.create", None), ("bank.mapping.delete", "agent@example.com")]
