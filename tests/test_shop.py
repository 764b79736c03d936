"""The public storefront: every preset's catalogue shows its seed's figures
exactly, as Babel formats them for the visitor's language; the pack page
says how the balance is used; the estimator answers as a page without
JavaScript and as a fragment for htmx, and refuses bad input with a 4xx."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from billing import clock
from billing.catalogue.offers import active_pack, load_preset, preset_names
from common.extensions import db
from tests.journeys import nav, start

HX = {"HX-Request": "true"}
FR = {"Accept-Language": "fr"}
NBSP, NNBSP = "\xa0", "\u202f"  # Babel: before the currency code; between thousands in French


@pytest.fixture
def load(app):
    """Load presets through the catalogue's own loader."""

    def load(*names: str) -> None:
        with app.app_context():
            for name in names:
                load_preset(db.session, name)

    return load


@pytest.fixture
def shop(load):
    load(*preset_names())


def page_of(client, path: str, **kwargs) -> str:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def card(html: str, slug: str) -> str:
    """The catalogue card of one pack."""
    found = re.search(rf'<article class="offer-card[^"]*" aria-labelledby="offer-{slug}">(.*?)</article>', html,
                      re.DOTALL)
    assert found, f"no card for {slug}"
    return found.group(1)


def text(html: str) -> str:
    """What a reader sees: tags dropped, white space collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# Per preset and pack: the price as stated, then the saving badge (None: no badge).
SEED_CARDS = {
    "toopixel": {
        "toopixel-36": ("CHF 950.00", "Save CHF 250.00"),
        "toopixel-72": ("CHF 1,500.00", "Save CHF 900.00"),
        "toopixel-150": ("CHF 2,800.00", "Save CHF 2,200.00"),
    },
    "webservice": {
        "webservice-12h": ("Price on request", None),
        "webservice-24h": ("Price on request", None),
        "webservice-36h": ("Price on request", None),
    },
    "digitale": {
        "digitale-3h": ("€180.00", "Save €15.00"),
        "digitale-5h": ("€285.00", "Save €40.00"),
        "digitale-10h": ("€550.00", "Save €100.00"),
    },
    "innova": {
        "innova-15": ("€10.00", None),
        "innova-30": ("€20.00", None),
        "innova-60": ("€36.00", "Save €4.00"),
        "innova-120": ("€72.00", "Save €8.00"),
        "innova-240": ("€144.00", "Save €16.00"),
        "innova-480": ("€256.00", "Save €64.00"),
    },
    "itsupport": {
        "itsupport-trial": ("Free", None),
        "itsupport-ticket-1": ("Price on request", None),
        "itsupport-tickets-20": ("Price on request", None),
        "itsupport-team-tickets": ("Price on request", None),
        "itsupport-hour": ("Price on request", None),
        "itsupport-unlimited": ("Price on request", None),
    },
    "demo": {
        "demo-trial": ("Free", None),
        "demo-hours-5": ("€425.00", "Save €25.00"),
        "demo-hours-10": ("€810.00", "Save €90.00"),
        "demo-credits-100": ("€1,912.50", "Save €337.50"),
        "demo-tickets-10": ("€400.00", "Save €50.00"),
        "demo-team-tickets": ("€38.00", "Save €7.00 a ticket"),
        "demo-annual-24h": ("€1,980.00", "Save €180.00"),
        "demo-unlimited": ("€149.00", None),
    },
}


def test_every_preset_is_checked():
    assert sorted(SEED_CARDS) == preset_names()


@pytest.mark.parametrize("preset", sorted(SEED_CARDS))
def test_catalogue_shows_each_seeds_prices_and_savings(client, load, preset):
    load(preset)
    html = page_of(client, "/")
    for slug, (price, saving) in SEED_CARDS[preset].items():
        seen = text(card(html, slug))
        assert price in seen, (slug, seen)
        if saving:
            assert saving in seen, (slug, seen)
        else:
            assert "Save " not in seen, (slug, seen)
    assert html.count('class="offer-card') == len(SEED_CARDS[preset])


def test_toopixel_cards_say_vat_included_and_what_the_credits_are_worth(client, load):
    load("toopixel")
    seen = text(card(page_of(client, "/"), "toopixel-36"))
    assert "CHF 950.00 incl. 8.1 % VAT CHF 878.82 excl. VAT" in seen
    assert "36 credits = 6 h of work" in seen
    assert "CHF 158.33 an hour CHF 26.39 a credit" in seen
    assert "against CHF 200.00 an hour" in seen
    assert "Counted in blocks of 10 min of real work" in seen
    assert "Valid 24 months" in seen


def test_net_prices_say_vat_excluded(client, load):
    load("digitale", "innova")
    html = page_of(client, "/")
    assert "€180.00 excl. VAT €216.00 incl. 20 % VAT" in text(card(html, "digitale-3h"))
    assert "€60.00 an hour" in text(card(html, "digitale-3h"))
    innova = text(card(html, "innova-15"))
    assert "€10.00 excl. VAT €12.10 incl. 21 % VAT" in innova
    assert "First pack valid 12 months, top-ups never expire" in innova


def test_itsupport_cards_tell_tickets_pools_and_the_subscription(client, load):
    load("itsupport")
    html = page_of(client, "/")
    assert "20 tickets of up to 30 min each" in text(card(html, "itsupport-tickets-20"))
    assert "Single user" in text(card(html, "itsupport-tickets-20"))
    team = text(card(html, "itsupport-team-tickets"))
    assert "From 20 tickets of up to 30 min each" in team
    assert "Pooled" in team
    unlimited = text(card(html, "itsupport-unlimited"))
    assert "Unlimited tickets" in unlimited
    assert "Monthly, cancel any time" in unlimited
    assert "First 30 min of a request charged in full, then to the minute" in text(card(html, "itsupport-hour"))
    assert "Ask for a quote" in unlimited


def test_catalogue_groups_packs_by_kind_within_each_provider(client, shop):
    html = page_of(client, "/")
    sections = re.findall(r'<section class="catalogue" id="([a-z]+)"', html)
    assert sections == ["demo", "toopixel", "webservice", "digitale", "innova", "itsupport"]
    itsupport = html[html.index('id="itsupport"'):]
    headings = re.findall(r'<h3 id="itsupport-[a-z_]+">([^<]+)</h3>', itsupport)
    assert headings == ["Free trial", "Packs", "Subscription"]
    assert "Web Service looks after your site from A to Z" in html
    assert 'href="/packs/toopixel-36"' in html


def test_catalogue_in_french_formats_money_the_french_way(client, load):
    load("toopixel", "innova")
    html = page_of(client, "/", headers=FR)
    assert '<html lang="fr"' in html
    assert "Crédits webmastering\u00a0: avec les crédits, vous payez ce que vous consommez." in html
    for slug, price, saving in [
        ("toopixel-36", f"950,00{NBSP}CHF", f"250,00{NBSP}CHF"),
        ("toopixel-72", f"1{NNBSP}500,00{NBSP}CHF", f"900,00{NBSP}CHF"),
        ("toopixel-150", f"2{NNBSP}800,00{NBSP}CHF", f"2{NNBSP}200,00{NBSP}CHF"),
        ("innova-60", f"36,00{NBSP}€", f"4,00{NBSP}€"),
    ]:
        seen = card(html, slug)
        assert price in seen and saving in seen, slug
    assert ">36 crédits</h4>" in html
    assert "TTC (TVA 8,1 %)" in html


def test_retired_packs_are_hidden(app, client, load):
    load("toopixel")
    with app.app_context():
        active_pack(db.session, "toopixel-72").retired_at = clock.now()
        db.session.commit()
    html = page_of(client, "/")
    assert "toopixel-72" not in html
    assert "toopixel-36" in html
    assert client.get("/packs/toopixel-72").status_code == 404
    assert client.get("/estimate?pack=toopixel-72&minutes=10").status_code == 400


def test_empty_catalogue(client):
    assert "No packs are on sale yet." in page_of(client, "/")
    assert "No packs are on sale yet." in page_of(client, "/estimate")


# ------------------------------------------------------------------ pack page


@pytest.mark.parametrize(
    ("slug", "expected"),
    [
        ("toopixel-36", [
            "Too Pixel Sàrl",
            "We count them in 10-minute blocks of real work",
            "Edit the content of your site",
            "Buying images",
            "1 credit = 10 min of work.",
            "Work is counted in blocks of 10 min, on the total time of each request",
            "Work never goes beyond your balance",
            "Valid 24 months",
            "Not refundable",
            "CHF 950.00",
            "Save CHF 250.00",
        ]),
        ("innova-60", [
            "Consultation At least 15 credits, then in blocks of 15 min",
            "Intervention At least 60 credits, then in blocks of 15 min",
            "Website security update Fixed price: 60 credits",
            "First pack valid 12 months, top-ups never expire",
            "Security updates with external modules",
        ]),
        ("digitale-3h", [
            "E-mail exchanges and video briefs Not charged",
            "Production To the minute",
            "accept the extra time billed at €65.00 an hour",
            "Valid 3 months",
        ]),
        ("webservice-12h", [
            "12 h a year, 1 h a month",
            "Minimum commitment: 12 months.",
            "Price on request",
        ]),
        ("itsupport-tickets-20", [
            "A ticket covers one subject and up to 30 min of work; beyond that, the request takes another ticket.",
            "Whatever expires unused is added back to your balance when you buy a new pack.",
        ]),
        ("itsupport-hour", ["Support session At least 30 min, then to the minute"]),
        ("itsupport-unlimited", [
            "Unlimited tickets",
            "Monthly, cancel any time",
            "After cancelling, you can subscribe again once 3 months have passed.",
        ]),
        ("itsupport-trial", ["Free", "Start the free trial", "We offer you 15 minutes of support"]),
    ],
)
def test_pack_page_tells_everything(client, shop, slug, expected):
    html = page_of(client, f"/packs/{slug}")
    seen = text(html)
    for phrase in expected:
        assert phrase in seen, phrase
    # The estimator is embedded, for this pack only.
    assert f'<input type="hidden" name="pack" value="{slug}">' in html
    assert 'id="estimate-result"' in html


def test_pack_page_in_french(client, shop):
    html = page_of(client, "/packs/innova-60", headers=FR)
    assert "<h1>Recharge assistance, 60 crédits</h1>" in html
    assert "Mise à jour de sécurité du site" in html
    assert f"36,00{NBSP}€" in html


@pytest.mark.parametrize("path", ["/packs/nope", "/packs/", "/packs/toopixel-36x"])
def test_unknown_pack_is_our_404(client, shop, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


# ------------------------------------------------------------------ estimator


@pytest.mark.parametrize(
    ("query", "headline", "why", "left"),
    [
        ("pack=toopixel-36&minutes=27", "3 credits", "27 min → 3 blocks of 10 min → 3 credits",
         "Left of the 36 credits in the pack: 33 credits (5 h 30 min)"),
        ("pack=webservice-12h&minutes=50", "50 min", "50 min → 50 minutes",
         "Left of the 12 h in the pack: 11 h 10 min"),
        ("pack=digitale-3h&minutes=20&kind=communication", "Not charged", "20 min → not billable → 0 minutes",
         "Left of the 3 h in the pack: 3 h"),
        ("pack=innova-60&minutes=20&kind=consultation", "30 credits", "20 min → 2 blocks of 15 min → 30 credits",
         "Left of the 60 credits in the pack: 30 credits"),
        ("pack=innova-120&minutes=61&kind=intervention", "75 credits", "61 min → 5 blocks of 15 min → 75 credits",
         "Left of the 120 credits in the pack: 45 credits"),
        ("pack=innova-60&minutes=5&kind=security-update", "60 credits", "5 min → fixed price → 60 credits",
         "Left of the 60 credits in the pack: 0 credits"),
        ("pack=itsupport-tickets-20&minutes=40", "2 tickets", "40 min → 2 blocks of 30 min → 2 tickets",
         "Left of the 20 tickets in the pack: 18 tickets"),
        ("pack=itsupport-team-tickets&minutes=40", "2 tickets", "40 min → 2 blocks of 30 min → 2 tickets",
         "Left of the 20 tickets in the pack: 18 tickets"),
        ("pack=itsupport-hour&minutes=12", "30 min", "12 min → minimum 30 minutes → 30 minutes",
         "Left of the 1 h in the pack: 30 min"),
        ("pack=itsupport-hour&minutes=47", "47 min", "47 min → 47 minutes", "Left of the 1 h in the pack: 13 min"),
        ("pack=itsupport-unlimited&minutes=40", "2 tickets", "40 min → 2 blocks of 30 min → 2 tickets",
         "Included in the subscription: nothing is deducted."),
        ("pack=itsupport-trial&minutes=40", "40 min", "40 min → 40 minutes",
         "That is 25 min more than the pack holds."),
        ("pack=digitale-3h&minutes=200", "3 h 20 min", "200 min → 200 minutes",
         "accept the extra time billed at €65.00 an hour"),
    ],
)
def test_estimator_gives_the_seeds_examples_as_page_and_fragment(client, shop, query, headline, why, left):
    page = client.get(f"/estimate?{query}")
    fragment = client.get(f"/estimate?{query}", headers=HX)
    for response in (page, fragment):
        assert response.status_code == 200
        assert "HX-Request" in response.headers["Vary"]
        html = response.get_data(as_text=True)
        assert f'<p class="estimate-headline">{headline}</p>' in html
        assert f'<p class="estimate-why">{why}</p>' in html
        assert left in text(html)
    assert "<html" in page.get_data(as_text=True)
    assert fragment.get_data(as_text=True).lstrip().startswith('<div id="estimate-result"')


def test_estimator_page_offers_every_pack_and_the_kinds_of_the_chosen_one(client, shop):
    html = page_of(client, "/estimate?pack=innova-60")
    assert re.findall(r'<option[^>]* value="(innova-\d+)"', html) == [
        f"innova-{n}" for n in (15, 30, 60, 120, 240, 480)]
    assert '<optgroup label="Innova 2tic">' in html
    assert re.findall(r'<option[^>]* value="([a-z-]+)">', html[html.index('name="kind"'):]) == [
        "consultation", "intervention", "security-update",
    ]
    assert '<option selected value="consultation">' in html
    assert "Enter the minutes of work to see what they cost." in html
    # A policy without kinds asks for none.
    assert 'name="kind"' not in page_of(client, "/estimate?pack=toopixel-36")


def test_choosing_another_pack_with_htmx_swaps_the_whole_estimator(client, shop):
    response = client.get(
        "/estimate?shown=toopixel-36&pack=innova-60&minutes=20",
        headers={**HX, "HX-Target": "estimator"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="estimator"')
    assert '<option selected value="consultation">' in html
    assert '<input id="shown" name="shown" type="hidden" value="innova-60">' in html
    assert "20 min → 2 blocks of 15 min → 30 credits" in html


def test_choosing_another_pack_without_javascript_resets_the_kind(client, shop):
    html = page_of(client, "/estimate?shown=innova-60&pack=digitale-3h&minutes=20&kind=consultation")
    assert '<option selected value="production">' in html
    assert "20 min → 20 minutes" in html


BAD_MINUTES = [
    ("-5", "Minutes cannot be negative."),
    ("abc", "Enter a whole number of minutes, such as 45."),
    ("2.5", "Enter a whole number of minutes, such as 45."),
    ("1e3", "Enter a whole number of minutes, such as 45."),
    ("10001", "Enter at most 10,000 minutes: a longer job is best quoted."),
    ("9" * 5000, "Enter at most 10,000 minutes: a longer job is best quoted."),
]


@pytest.mark.parametrize(("minutes", "message"), BAD_MINUTES)
def test_bad_minutes_get_a_message_on_the_field_and_a_400(client, shop, minutes, message):
    response = client.get(f"/estimate?pack=toopixel-36&minutes={minutes}")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert re.search(r'<input aria-describedby="minutes-note" aria-invalid="true" [^>]*name="minutes"', html)
    assert f'<small id="minutes-note">{message}</small>' in html
    assert "estimate-headline" not in html


@pytest.mark.parametrize(("minutes", "message"), BAD_MINUTES)
def test_bad_minutes_with_htmx_get_the_message_out_of_band(client, shop, minutes, message):
    response = client.get(f"/estimate?pack=toopixel-36&minutes={minutes}", headers=HX)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert f'<small id="minutes-note" hx-swap-oob="true" role="alert">{message}</small>' in html
    assert "No estimate until the entry above is corrected." in html


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("pack=nope&minutes=10", "pack", "Choose one of the packs in the list."),
        ("pack=innova-60&minutes=10&kind=bogus", "kind", "Choose one of the request kinds in the list."),
        ("shown=innova-60&pack=innova-60&minutes=10&kind=bogus", "kind",
         "Choose one of the request kinds in the list."),
    ],
)
def test_unknown_pack_or_kind_is_a_400_with_a_message(client, shop, query, field, message):
    response = client.get(f"/estimate?{query}")
    assert response.status_code == 400
    assert f'<small id="{field}-note">{message}</small>' in response.get_data(as_text=True)


def test_a_valid_estimate_clears_the_fields_messages_out_of_band(client, shop):
    html = client.get("/estimate?pack=innova-60&minutes=20&kind=consultation", headers=HX).get_data(as_text=True)
    assert ('<small id="minutes-note" hx-swap-oob="true">Whole minutes, as staff log them on one request.</small>'
            in html)
    assert '<small id="kind-note" hx-swap-oob="true">Some kinds have a minimum or a fixed price.</small>' in html


def test_estimator_in_french(client, shop):
    html = page_of(client, "/estimate?pack=innova-60&minutes=20&kind=consultation", headers=FR)
    assert '<html lang="fr"' in html
    assert '<option selected value="innova-60">Recharge assistance, 60 crédits</option>' in html
    assert ">Mise à jour de sécurité du site</option>" in html


def test_fields_have_labels(client, shop):
    html = page_of(client, "/estimate?pack=innova-60")
    for name in ("pack", "minutes", "kind"):
        assert f'<label for="{name}">' in html
        assert f'id="{name}"' in html


# ------------------------------------------------------------------ in the browser


@pytest.mark.browser
def test_estimator_updates_as_you_type_and_follows_the_pack(page: Page, live_server):
    url, app = live_server
    with app.app_context():
        load_preset(db.session, "toopixel")
        load_preset(db.session, "innova")
    start(page, url)
    nav(page, "Estimator")
    pack, minutes = page.get_by_label("Pack"), page.get_by_label("Minutes of work")

    pack.select_option("innova-120")
    kind = page.get_by_label("Kind of request")
    expect(kind).to_have_value("consultation")
    kind.select_option("intervention")
    minutes.fill("61")
    result = page.locator("#estimate-result")
    expect(result).to_contain_text("61 min → 5 blocks of 15 min → 75 credits")
    expect(page).to_have_url(re.compile(r"minutes=61"))

    minutes.fill("-3")
    expect(page.locator("#minutes-note")).to_have_text("Minutes cannot be negative.")
    expect(result).to_contain_text("No estimate until the entry above is corrected.")

    pack.select_option("toopixel-36")
    expect(page.get_by_label("Kind of request")).to_have_count(0)
    page.get_by_label("Minutes of work").fill("27")
    expect(result).to_contain_text("27 min → 3 blocks of 10 min → 3 credits")
    expect(page.locator("#minutes-note")).to_have_text("Whole minutes, as staff log them on one request.")


@pytest.mark.parametrize("header", ["HX-Boosted", "HX-History-Restore-Request"])
def test_boosted_navigation_and_history_restore_get_the_whole_estimator_page(client, header):
    """Both send HX-Request, yet swap the whole body: a fragment would blank the page."""
    response = client.get("/estimate", headers={"HX-Request": "true", header: "true"})
    assert response.status_code == 200
    assert "<html" in response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]
