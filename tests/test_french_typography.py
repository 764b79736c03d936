"""French typography (issue 12.6): a no-break space (U+00A0, or the narrow
U+202F) before : ; ? ! wherever French is shown — in the compiled catalogue,
around the strings in the templates, in the pages and in the mail subjects."""

from __future__ import annotations

from billing.text import single_line


def test_one_line_values_keep_their_no_break_spaces():
    assert (single_line("Ticket n°\u00a01 reçu\u00a0: Site\r\n  en panne ?")
            == "Ticket n°\u00a01 reçu\u00a0: Site en panne ?")
    assert single_line("«\u202fOui\u202f»\t\t!") == "«\u202fOui\u202f» !"


# --- Everywhere French is shown ------------------------------------------------

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from babel.messages.mofile import read_mo  # noqa: E402
from sqlalchemy import select  # noqa: E402

from billing.accounts.models import User  # noqa: E402
from commands.demo import CLIENT, STAFF  # noqa: E402
from common.extensions import db  # noqa: E402
from tests.conftest import login, post_form  # noqa: E402
from tests.test_htmx_targets import crawl, local  # noqa: E402
from tests.test_htmx_targets import world as world  # noqa: E402, F401 - a fixture

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%%")
# A : ; ? or ! that ends a phrase (a blank or the end follows) without a
# no-break space before it. A time (12:30) or an address (https://) is not one.
MISSING = re.compile(r"(?<![\u00a0\u202f])[:;?!](?=\s|$)")
# In a template: a colon written after a translated string or a tag, outside
# the string, which French would need to spell differently.
OUTSIDE = re.compile(r"(\}\}|</[a-z]+>)[ \t]*[:;!?](?=[ <]|$)", re.M)


def test_the_compiled_french_catalogue_puts_a_no_break_space_before_each_mark():
    with (ROOT / "translations/fr/LC_MESSAGES/messages.mo").open("rb") as mo:
        catalogue = read_mo(mo)
    bad = [string for message in catalogue if message.id
           for string in (message.string if isinstance(message.string, (list, tuple)) else [message.string])
           if string and MISSING.search(PLACEHOLDER.sub("x", string))]
    assert not bad, bad


def test_no_template_writes_punctuation_outside_the_translated_strings():
    bad = [f"{path.relative_to(ROOT)}:{text[:match.start()].count(chr(10)) + 1}: {match.group(0)!r}"
           for path in sorted((ROOT / "templates").rglob("*.*")) if path.suffix in (".html", ".txt")
           for text in [path.read_text()] for match in OUTSIDE.finditer(text)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("who", ["anonymous", "client", "staff"])
def test_french_pages_put_a_no_break_space_before_each_mark(app, client, world, who):  # noqa: F811
    post_form(client, "/language", {"lang": "fr", "next": "/"})
    if who != "anonymous":
        person = CLIENT if who == "client" else STAFF
        assert login(client, person["email"], person["password"]).status_code == 302
        with app.app_context():
            db.session.scalar(select(User).where(User.email == person["email"])).language = "fr"
            db.session.commit()
    pages = crawl(client, ["/", "/portal/" if who == "client" else "/desk/" if who == "staff" else "/login"])
    bad = set()
    for url, page in pages.items():
        assert page.root.get("lang") == "fr", url
        for el in page.body.iter():
            if local(el.tag) in ("script", "style", "pre", "code", "textarea"):
                continue
            for text in (el.text, el.tail):
                for match in MISSING.finditer(text or ""):
                    bad.add(f"{url}: …{(text or '')[max(0, match.start() - 30):match.end() + 10]!r}")
    assert not bad, "\n".join(sorted(bad))


# --- The words of issue 12.6 ----------------------------------------------------

@pytest.mark.parametrize("lang, button, title", [("en", "Order this pack", "Order"), ("fr", "Commander", "Commande"),
                                                 ("es", "Pedir este pack", "Pedido")])
def test_the_order_button_is_a_verb_and_the_page_title_a_noun(app, client, world, lang, button, title):  # noqa: F811
    post_form(client, "/language", {"lang": lang, "next": "/"})
    pack = client.get("/packs/demo-hours-10").get_data(as_text=True)
    assert re.search(rf">\s*{button}\s*</a>", pack), button
    checkout = client.get("/checkout/demo-hours-10").get_data(as_text=True)
    assert f"<title>{title} · " in checkout


@pytest.mark.parametrize("who", ["anonymous", "client"])
def test_no_heading_stands_over_nothing(client, world, who):  # noqa: F811
    """The trial's pack page showed "Conditions" over an empty list: no
    page has an empty list, nor a section that holds only its heading."""
    if who == "client":
        assert login(client, CLIENT["email"], CLIENT["password"]).status_code == 302
    bad = []
    for url, page in crawl(client, ["/", "/portal/" if who == "client" else "/login"]).items():
        for el in page.body.iter():
            tag = local(el.tag)
            children = [local(child.tag) for child in el]
            if tag in ("ul", "ol") and not children:
                bad.append(f"{url}: empty <{tag} class={el.get('class')!r}>")
            if tag == "section" and children and all(c in ("h1", "h2", "h3", "header") for c in children):
                bad.append(f"{url}: <section> with only {''.join(el.itertext()).strip()!r}")
    assert not bad, "\n".join(bad)


def buy_card(page: str, name: str) -> str:
    """The text of the /portal/buy card of the pack called ``name``."""
    card = page.split(f'<h3 class="h4">{name}</h3>', 1)[1].split("</article>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", card))


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_each_line_of_the_buy_page_says_what_the_buyer_would_get(app, client, people, lang):
    from billing.catalogue.models import Pack
    from billing.catalogue.offers import load_preset
    from billing.ledger import services as ledger

    words = {"en": {"sub": ("", "Monthly, cancel any time"),
                    "pool": ("From 20 tickets of up to 30 min each", "Pooled"), "top": "Never expires",
                    "first": "Valid 12 months", "never": "never expires"},
             "fr": {"sub": ("", "Mensuel, résiliable à tout moment"),
                    "pool": ("À partir de 20 tickets", "Partagé"), "top": "N'expire jamais",
                    "first": "Valable 12 mois", "never": "n'expire jamais"}}[lang]
    with app.app_context():
        for preset in ("itsupport", "innova"):
            load_preset(db.session, preset)
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        owner.language = lang
        db.session.commit()
    login(client, people["owner"])
    page = client.get("/portal/buy").get_data(as_text=True)
    names = {"en": ("Subscription: unlimited tickets", "Multi-user tickets (from 20)", "Support top-up, 15 credits"),
             "fr": ("Abonnement\u00a0: tickets illimités", "Tickets multi-utilisateurs (à partir de 20)",
                    "Recharge assistance, 15 crédits")}[lang]
    subscription, pool, top_up = (buy_card(page, name) for name in names)
    assert words["sub"][1] in subscription and words["never"] not in subscription.lower()
    assert all(w in pool for w in words["pool"]) and "1 ticket " not in pool
    assert words["first"] in top_up  # the registration pack, on a first purchase
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        pack = db.session.scalar(select(Pack).where(Pack.slug == "innova-60"))
        ledger.grant(db.session, owner.account, pack, key="registered", now=clock_now())
    top_up = buy_card(client.get("/portal/buy").get_data(as_text=True), names[2])
    assert words["top"] in top_up and words["first"] not in top_up


def clock_now():
    from billing import clock

    return clock.now()


@pytest.mark.parametrize("lang, says", [("en", "Order at least 20 to see how to pay."),
                                        ("fr", "Commandez-en au moins 20 pour voir comment payer.")])
def test_a_bundle_under_its_minimum_says_the_minimum(app, client, lang, says):
    from billing.catalogue.offers import load_preset

    with app.app_context():
        load_preset(db.session, "demo")
    post_form(client, "/language", {"lang": lang, "next": "/"})
    page = client.get("/checkout/demo-team-tickets", query_string={"quantity": "5"})
    text = page.get_data(as_text=True)
    assert page.status_code == 400 and says in text and "contact us" not in text and "contactez" not in text


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_the_invitation_page_offers_the_language_the_invitee_reads(app, client, people, lang):
    """An invitee reading the acceptance page in French had English chosen for them."""
    from datetime import timedelta

    from billing.desk import services as desk

    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        _invitation, token = desk.invite(db.session, owner.account, owner, "new@example.com", "member",
                                         now=clock_now(), max_age=timedelta(days=3))
    post_form(client, "/language", {"lang": lang, "next": "/"})
    page = client.get(f"/invitations/{token}").get_data(as_text=True)
    [chosen] = re.findall(r'<option selected value="(\w+)">|<option value="(\w+)" selected>', page) or [None]
    assert chosen is not None and lang in chosen, re.findall(r"<option[^>]*>", page)


@pytest.mark.parametrize("lang, says", [("en", "Expires on "), ("fr", "Expiration le ")])
def test_the_expiry_notice_reads_right_for_one_ticket(app, client, people, lang, says):
    """'1 ticket expire on …' (and '1 ticket of your credit expire on … (1 ticket)' by mail)."""
    from datetime import timedelta

    from billing.catalogue.models import Pack
    from billing.catalogue.offers import load_preset
    from billing.ledger import services as ledger

    with app.app_context():
        load_preset(db.session, "itsupport")
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        owner.language = lang
        pack = db.session.scalar(select(Pack).where(Pack.slug == "itsupport-ticket-1"))
        ledger.grant(db.session, owner.account, pack, key="one", now=clock_now() - timedelta(days=170))
    login(client, people["owner"])
    page = re.sub(r"\s+", " ", client.get("/portal/").get_data(as_text=True))
    notice = page.split('class="notice expiring"', 1)[1].split("</article>", 1)[0]
    assert says in notice and re.search(r"\u00a0?: 1 ticket", notice) and "expire on" not in notice
