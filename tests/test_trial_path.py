"""The free trial does not lose people (issue 12.4): from the trial, signing
up and verifying the address lead back to the trial; a trial taken is not
offered again, and says when it was taken; a used-up trial does not warn
of a low balance."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from billing import clock
from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.notifications.outbox import OutboxMessage
from billing.orders import services as orders
from common.extensions import db
from tests.conftest import PASSWORD, login, post_form
from tests.smtp import smtp_server  # noqa: F401 - a fixture
from tests.test_desk_views import log

TRIAL = "/checkout/demo-trial"
WORDS = {
    "en": {"create": "Create an account", "confirm": "Please confirm your email address first",
           "start": "Start the free trial", "took": "You took this free trial on", "taken": "Trial taken on"},
    "fr": {"create": "Créer un compte", "confirm": "Veuillez d'abord confirmer votre adresse e-mail",
           "start": "Commencer l'essai gratuit", "took": "Vous avez pris cet essai gratuit le",
           "taken": "Essai pris le"},
}


@pytest.fixture
def app_config(smtp_server):  # noqa: F811
    return {**smtp_server.config, "SERVER_NAME": None}


@pytest.fixture
def demo(app):
    with app.app_context():
        load_preset(db.session, "demo")


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def signup(client, lang: str, next_: str | None):
    data = {"organisation": "Bistro Nova", "name": "Nora Nova", "email": "nora@example.com",
            "password": PASSWORD, "confirm": PASSWORD, "language": lang, "country": "FR"}
    if next_ is not None:
        data["next"] = next_
    return post_form(client, "/signup", data)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_from_the_trial_through_sign_up_and_verification_back_to_the_trial(app, client, demo, smtp_server,  # noqa: F811
                                                                           lang):
    words = WORDS[lang]
    client.post("/language", data={"lang": lang, "next": TRIAL, "csrf_token": _token(client)})
    page = text(client.get(TRIAL))
    [href] = re.findall(r'href="(/signup\?[^"]+)"', page)
    assert f'>{words["create"]}</a>' in page
    form = text(client.get(href))
    assert f'<input type="hidden" name="next" value="{TRIAL}">' in form

    signed_up = signup(client, lang, TRIAL)
    # The same answer whether the address is new or not (issue 13.10): the mailed link opens the account.
    assert signed_up.status_code == 302 and signed_up.headers["Location"] == "/signup/sent"

    link = smtp_server.last_link("nora@example.com", "/verify/")
    verified = client.get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert verified.status_code == 302 and verified.headers["Location"] == TRIAL
    assert words["start"] in text(client.get(TRIAL))


def test_the_link_sent_again_from_the_trial_also_leads_back(app, client, demo, smtp_server):  # noqa: F811
    signup(client, "en", None)
    login(client, "nora@example.com")
    waiting = text(client.get(TRIAL))
    assert WORDS["en"]["confirm"] in waiting and WORDS["en"]["start"] not in waiting
    assert "next=" not in smtp_server.last_link("nora@example.com", "/verify/")
    again = post_form(client, "/verify/resend", {"next": TRIAL})
    assert again.status_code == 302 and again.headers["Location"] == TRIAL
    link = smtp_server.last_link("nora@example.com", "/verify/")
    assert client.get(link.split("localhost", 1)[-1]).headers["Location"] == TRIAL


@pytest.mark.parametrize("elsewhere", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_next_that_leaves_the_site_is_ignored(app, client, demo, smtp_server, elsewhere):  # noqa: F811
    signed_up = signup(client, "en", elsewhere)
    assert signed_up.headers["Location"] == "/signup/sent"
    link = smtp_server.last_link("nora@example.com", "/verify/")
    assert "evil" not in link
    forged = client.get(urlsplit(link).path, query_string={"next": elsewhere})
    assert forged.headers["Location"] == "/portal/"


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_a_trial_taken_is_not_offered_again(app, client, demo, people, lang):
    words = WORDS[lang]
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        owner.email_verified_at = clock.now()
        owner.language = lang
        db.session.commit()
    login(client, people["owner"])
    assert words["start"] in text(client.get(TRIAL))
    buy = text(client.get("/portal/buy"))
    assert f'href="{TRIAL}"' in buy and words["taken"] not in buy

    assert post_form(client, f"{TRIAL}/trial").status_code == 302
    page = text(client.get(TRIAL))
    assert words["took"] in page and words["start"] not in page and f'action="{TRIAL}/trial"' not in page
    buy = text(client.get("/portal/buy"))
    assert words["taken"] in buy and f'href="{TRIAL}"' not in buy
    with app.app_context():
        [claim] = orders.trials_taken(db.session, None, people["owner"]).values()
    day = f"{claim.created_at.day} " if lang == "fr" else f" {claim.created_at.day}, {claim.created_at.year}"
    assert day in buy.split(words["taken"], 1)[1][:40]


def test_a_used_up_trial_does_not_warn_of_a_low_balance(app, client, demo, people):
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        owner.email_verified_at = clock.now()
        db.session.commit()
    login(client, people["owner"])
    assert post_form(client, f"{TRIAL}/trial").status_code == 302
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        pack = db.session.scalar(select(Pack).where(Pack.slug == "demo-trial"))
        ticket = desk.open_ticket(db.session, owner.account, owner, "Printer", "Please.", now=clock.now(),
                                  policy=pack.policy)
        ticket_id = ticket.id
    staff = app.test_client()
    login(staff, people["staff"])
    for minutes in (25, 5):  # 5 min left, then none
        assert log(staff, ticket_id, minutes).status_code == 302
        page = text(client.get("/portal/"))
        assert "Low balance" not in page and "Buy" in page
    with app.app_context():
        assert not db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "low_balance")).all()


def _token(client) -> str:
    from tests.conftest import csrf_token

    return csrf_token(client, "/")
