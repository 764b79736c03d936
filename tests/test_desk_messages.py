"""The desk's and the ledger's refusals reach the user as full sentences in
their language: billing.desk raises DeskError (billing.ledger LedgerError)
with a message id and its params, and the views translate it.

The French catalogue does not hold these sentences until the translators add
them, so the ``french`` fixture adds to the app's loaded French catalogue
the ones it is missing: a page can only show them in French when the view
passed the message id and its params through gettext."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from conftest import csrf_token, form_token, login, post_form
from flask_babel import force_locale, get_translations
from ledger_support import pack
from sqlalchemy import select

from billing.accounts.models import User
from billing.desk import services as desk
from billing.desk.models import Ticket
from billing.ledger import services as ledger
from common.extensions import db

REFUSED_TYPE = "The file %(name)s is refused: files of this type are not accepted."
EMPTY = "Write a message."
DECLINED = "This request was already declined."
FRENCH = {
    REFUSED_TYPE: "Le fichier %(name)s est refusé : les fichiers de ce type ne sont pas acceptés.",
    EMPTY: "Écrivez un message.",
    DECLINED: "Cette demande a déjà été refusée.",
}


def now() -> datetime:
    return datetime.now(UTC)


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def french(app, monkeypatch):
    """The French sentence of a message id: the catalogue's translation
    once there is one, else the one of FRENCH, added to the catalogue the
    app has loaded for French for this test only."""
    with app.test_request_context(), force_locale("fr"):
        catalogue = get_translations()._catalog
    for msgid, sentence in FRENCH.items():
        if not catalogue.get(msgid):
            monkeypatch.setitem(catalogue, msgid, sentence)
    return lambda msgid, **params: catalogue[msgid] % params if params else catalogue[msgid]


@pytest.fixture
def ticket_id(app, people) -> int:
    """A ticket of Acme's member on a fresh Too Pixel balance."""
    with app.app_context():
        member = db.session.scalar(select(User).where(User.email == people["member"]))
        policy = pack(db.session, "toopixel-36").policy
        ledger.grant(db.session, member.account, pack(db.session, "toopixel-36"), key="grant", now=now())
        return desk.open_ticket(db.session, member.account, member, "Site down", "It shows an error.", now=now(),
                                policy=policy).id


def speaks(app, email: str, language: str) -> None:
    with app.app_context():
        db.session.scalar(select(User).where(User.email == email)).language = language
        db.session.commit()


def new_ticket_with(client, filename: str):
    page = text(client.get("/portal/tickets/new"))
    balance = re.search(r'<option (?:selected )?value="([^"]+)"', page).group(1)
    return client.post("/portal/tickets/new", content_type="multipart/form-data", data={
        "subject": "Printer", "description": "It jams.", "balance": balance, "criticality": "normal",
        "files": [(io.BytesIO(b"MZ..."), filename)], "csrf_token": csrf_token(client, "/portal/tickets/new"),
        "token": form_token(client, "/portal/tickets/new")})


def test_a_refused_file_type_is_a_full_sentence_in_english(app, client, people, ticket_id):
    login(client, people["member"])
    response = new_ticket_with(client, "tool.exe")
    assert response.status_code == 422
    assert "The file tool.exe is refused: files of this type are not accepted." in text(response)


def test_a_french_user_is_told_a_refused_file_type_in_french(app, client, people, ticket_id, french):
    speaks(app, people["member"], "fr")
    login(client, people["member"])
    response = new_ticket_with(client, "tool.exe")
    assert response.status_code == 422
    page = text(response)
    assert french(REFUSED_TYPE, name="tool.exe") in page
    assert "files of this type are not accepted" not in page


@pytest.mark.parametrize("who, path, body", [
    ("member", "/portal/tickets/{id}/messages", "<script>alert(1)</script>"),  # nothing left once sanitised
    ("staff", "/desk/tickets/{id}/messages", "   "),
])
def test_a_french_user_is_told_an_empty_message_in_french(app, client, people, ticket_id, french, who, path, body):
    speaks(app, people[who], "fr")
    login(client, people[who])
    response = post_form(client, path.format(id=ticket_id), {"body": body, "internal": "0"})
    assert response.status_code == 422
    assert french(EMPTY) in text(response) and EMPTY not in text(response)


def test_an_english_user_is_told_an_empty_message_in_a_sentence(app, client, people, ticket_id):
    login(client, people["member"])
    response = post_form(client, f"/portal/tickets/{ticket_id}/messages", {"body": "<script>x</script>"})
    assert response.status_code == 422 and "Write a message." in text(response)


def test_a_french_owner_answering_a_declined_request_again_reads_french(app, client, people, french):
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        staff = db.session.scalar(select(User).where(User.email == people["staff"]))
        digitale = pack(db.session, "digitale-3h")
        ledger.grant(db.session, owner.account, digitale, key="digitale", now=now())
        found = desk.open_ticket(db.session, owner.account, owner, "New page", "Please.", now=now(),
                                 policy=digitale.policy, kind="production")
        desk.log_time(db.session, found, staff, 200, True, "", "ask-200", now())
        overage_id = db.session.get(Ticket, found.id).overages[0].id
    speaks(app, people["owner"], "fr")
    login(client, people["owner"])
    post_form(client, f"/portal/overages/{overage_id}/decline", {"next": "/portal/"})
    response = post_form(client, f"/portal/overages/{overage_id}/approve", {"next": "/portal/"},
                         follow_redirects=True)
    assert french(DECLINED) in text(response) and DECLINED not in text(response)
