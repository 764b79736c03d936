"""Catalogue presets: each loads with its seed's figures, loading is an
idempotent upsert, removed packs are retired or deleted, and a broken file
writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from billing.accounts.models import Account
from billing.catalogue.models import Catalogue, Pack, Policy, RequestKind
from billing.catalogue.offers import (
    CatalogueError,
    active_pack,
    active_packs,
    find_policy,
    has_catalogue,
    load_preset,
    offer,
    preset_names,
    read_preset,
)
from billing.models import Base
from billing.orders.models import Order
from common.extensions import db

BOTH_ENGINES = [pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]

# The seeds' own figures: unit, quantity, price (minor units, None = on request),
# validity in months (None = never expires) and the saving against the hourly rate.
SEED_PACKS = {
    "toopixel-36": ("credit", 36, 95000, 24, 25000),
    "toopixel-72": ("credit", 72, 150000, 24, 90000),
    "toopixel-150": ("credit", 150, 280000, 24, 220000),
    "webservice-12h": ("minute", 720, None, 12, None),
    "webservice-24h": ("minute", 1440, None, 12, None),
    "webservice-36h": ("minute", 2160, None, 12, None),
    "digitale-3h": ("minute", 180, 18000, 3, 1500),
    "digitale-5h": ("minute", 300, 28500, 6, 4000),
    "digitale-10h": ("minute", 600, 55000, 12, 10000),
    "innova-15": ("credit", 15, 1000, 12, None),
    "innova-30": ("credit", 30, 2000, 12, None),
    "innova-60": ("credit", 60, 3600, 12, 400),
    "innova-120": ("credit", 120, 7200, 12, 800),
    "innova-240": ("credit", 240, 14400, 12, 1600),
    "innova-480": ("credit", 480, 25600, 12, 6400),
    "itsupport-trial": ("minute", 15, 0, None, None),
    "itsupport-ticket-1": ("ticket", 1, None, 6, None),
    "itsupport-tickets-20": ("ticket", 20, None, 12, None),
    "itsupport-team-tickets": ("ticket", 1, None, 12, None),
    "itsupport-hour": ("minute", 60, None, 6, None),
    "itsupport-unlimited": ("ticket", 0, None, None, None),
}


def load_all() -> None:
    for name in preset_names():
        load_preset(db.session, name)


def packs_by_slug() -> dict[str, Pack]:
    return {pack.slug: pack for pack in db.session.scalars(select(Pack))}


def snapshot() -> dict[str, list[dict]]:
    """Every row of every table, to compare the database before and after."""
    db.session.expire_all()
    return {
        table.name: [dict(row._mapping) for row in db.session.execute(table.select().order_by(*table.primary_key))]
        for table in Base.metadata.sorted_tables
    }


def test_preset_names():
    assert preset_names() == ["demo", "digitale", "innova", "itsupport", "toopixel", "webservice"]


@pytest.mark.parametrize("database_url", BOTH_ENGINES, indirect=True)
def test_every_preset_loads_with_its_seeds_figures(app):
    with app.app_context():
        assert not has_catalogue(db.session)
        load_all()
        assert has_catalogue(db.session)
        packs = packs_by_slug()
        for slug, (unit, quantity, price, validity, saving) in SEED_PACKS.items():
            pack = packs[slug]
            assert (pack.unit, pack.quantity, pack.price, pack.validity_months) == (
                unit, quantity, price, validity), slug
            assert offer(pack, "en").saving == saving, slug
        for name in preset_names():
            for spec in read_preset(name).policies.values():
                # The rule read back from the database is the file's, kinds included.
                assert find_policy(db.session, spec.slug).rule() == spec.rule()


def test_toopixel(app):
    with app.app_context():
        load_preset(db.session, "toopixel")
        catalogue = db.session.scalar(select(Catalogue).where(Catalogue.slug == "toopixel"))
        assert (catalogue.name, catalogue.currency, catalogue.language) == (
            {"en": "Too Pixel Sàrl", "fr": "Too Pixel Sàrl", "es": "Too Pixel Sàrl"}, "CHF", "fr")
        policy = find_policy(db.session, "toopixel-credits")
        assert (policy.unit, policy.unit_minutes, policy.step, policy.overage_mode) == ("credit", 10, 1, "block")
        for pack in catalogue.packs:
            assert (pack.currency, pack.hourly_rate, pack.refundable) == ("CHF", 20000, False)
            # The prices shown are what the client pays: VAT (8.1 %) included.
            price = offer(pack, "fr").price
            assert (price.gross, price.vat_rate_bp) == (pack.price, 810)
        assert [pack.slug for pack in catalogue.packs] == ["toopixel-36", "toopixel-72", "toopixel-150"]


def test_webservice(app):
    with app.app_context():
        load_preset(db.session, "webservice")
        for pack in active_packs(db.session, "webservice"):
            assert (pack.kind, pack.commitment_months, pack.unit) == ("annual_plan", 12, "minute")
            assert offer(pack, "fr").on_request
        plan = offer(packs_by_slug()["webservice-12h"], "fr")
        assert plan.minutes == 720
        assert plan.description.startswith("1 heure de mise à jour par mois, soit 12 heures dans l'année")


def test_digitale(app):
    with app.app_context():
        load_preset(db.session, "digitale")
        policy = find_policy(db.session, "digitale-minutes")
        assert (policy.unit, policy.overage_mode, policy.overage_hourly_rate) == ("minute", "ask", 6500)
        billable = {kind.slug: kind.billable for kind in policy.kinds}
        assert billable == {"production": True, "correction": True, "training": True, "communication": False}
        gross = {pack.slug: offer(pack, "fr").price.gross for pack in active_packs(db.session, "digitale")}
        assert gross == {"digitale-3h": 21600, "digitale-5h": 34200, "digitale-10h": 66000}
        three_hours = offer(packs_by_slug()["digitale-3h"], "fr")
        assert three_hours.name == "Pack Assistance 3h"
        assert three_hours.price.net == 18000 and three_hours.per_hour == 6000
        assert "Frais d’extensions payantes" in three_hours.excluded


def test_innova(app):
    with app.app_context():
        load_preset(db.session, "innova")
        policy = find_policy(db.session, "innova-credits")
        assert (policy.unit, policy.unit_minutes, policy.step, policy.overage_mode) == ("credit", 1, 15, "block")
        kinds = {kind.slug: (kind.minimum, kind.fixed) for kind in policy.kinds}
        assert kinds == {"consultation": (15, None), "intervention": (60, None), "security-update": (0, 60)}
        packs = packs_by_slug()
        for pack in packs.values():
            assert (pack.registration_first, pack.topups_never_expire, pack.vat_rate_bp) == (True, True, 2100)
            assert not pack.price_includes_vat
        # The discounts the seed announces: 10 % from 60 credits, 20 % for 480.
        for slug, percent in (("innova-60", 10), ("innova-120", 10), ("innova-240", 10), ("innova-480", 20)):
            shown = offer(packs[slug], "es")
            assert shown.saving * 100 == percent * (shown.price.net + shown.saving)
        sixty = offer(packs["innova-60"], "es")
        assert sixty.name == "Recarga asistencia 60 créditos"
        assert (sixty.price.gross, sixty.per_hour, sixty.per_unit, sixty.minutes) == (4356, 3600, 60, 60)
        assert sixty.included[0] == "Actualizaciones de seguridad web" and len(sixty.included) == 9


def test_itsupport(app):
    with app.app_context():
        load_preset(db.session, "itsupport")
        packs = packs_by_slug()
        trial = packs["itsupport-trial"]
        assert (trial.kind, trial.price, trial.unit, trial.quantity) == ("trial", 0, "minute", 15)
        team = packs["itsupport-team-tickets"]
        assert (team.pooled, team.min_quantity, team.quantity) == (True, 20, 1)
        assert not packs["itsupport-tickets-20"].pooled
        for slug in ("itsupport-ticket-1", "itsupport-tickets-20", "itsupport-team-tickets"):
            assert packs[slug].rollover_expired and packs[slug].validity_months >= 6
        unlimited = packs["itsupport-unlimited"]
        assert (unlimited.kind, unlimited.unlimited, unlimited.unit) == ("subscription", True, "ticket")
        assert (unlimited.billing_period_months, unlimited.resubscribe_after_months) == (1, 3)
        assert offer(unlimited, "en").minutes is None
        tickets = find_policy(db.session, "itsupport-tickets")
        assert (tickets.unit, tickets.unit_minutes, tickets.step) == ("ticket", 30, 1)
        hourly = find_policy(db.session, "itsupport-minutes")
        assert (hourly.unit, hourly.default_kind, hourly.kinds[0].minimum) == ("minute", "support", 30)


def test_demo_sells_every_kind_of_pack_with_a_price(app):
    with app.app_context():
        load_preset(db.session, "demo")
        packs = active_packs(db.session, "demo")
        assert {pack.kind for pack in packs} == {"trial", "pack", "annual_plan", "subscription"}
        assert {pack.unit for pack in packs} == {"minute", "credit", "ticket"}
        assert all(pack.price is not None and pack.currency == "EUR" for pack in packs)
        tickets = [pack for pack in packs if pack.unit == "ticket" and pack.kind == "pack"]
        assert {(pack.pooled, pack.min_quantity) for pack in tickets} == {(False, 1), (True, 20)}
        assert any(pack.unlimited for pack in packs)


def test_every_pack_speaks_every_language(app):
    with app.app_context():
        load_all()
        for pack in active_packs(db.session):
            for text in (pack.name, pack.description):
                assert set(text) == {"en", "fr", "es"}, pack.slug


def test_active_packs_order_and_filter(app):
    with app.app_context():
        load_all()
        catalogues = []
        for pack in active_packs(db.session):
            if pack.catalogue.slug not in catalogues:
                catalogues.append(pack.catalogue.slug)
        assert catalogues == ["demo", "toopixel", "webservice", "digitale", "innova", "itsupport"]
        kinds = [pack.kind for pack in active_packs(db.session, "demo")]
        assert kinds == ["trial", "pack", "pack", "pack", "pack", "pack", "annual_plan", "subscription"]
        assert [pack.slug for pack in active_packs(db.session, "innova")][:2] == ["innova-15", "innova-30"]
        assert active_packs(db.session, "nobody") == []


def test_offer_falls_back_to_english_for_other_locales(app):
    with app.app_context():
        load_preset(db.session, "toopixel")
        pack = packs_by_slug()["toopixel-36"]
        assert offer(pack, "fr_CH").name == "36 crédits"
        assert offer(pack, "de").name == "36 credits"


def test_find_policy_by_policy_or_pack_slug(app):
    with app.app_context():
        load_preset(db.session, "innova")
        assert find_policy(db.session, "innova-credits").slug == "innova-credits"
        assert find_policy(db.session, "innova-480").slug == "innova-credits"
        assert find_policy(db.session, "innova") is None


@pytest.mark.parametrize("database_url", BOTH_ENGINES, indirect=True)
def test_loading_twice_changes_nothing(app):
    with app.app_context():
        load_all()
        before = snapshot()
        for name in preset_names():
            report = load_preset(db.session, name)
            assert [action for action, _ in report.changes] == ["unchanged"] * len(report.changes)
        assert snapshot() == before


def test_unknown_preset(app):
    with app.app_context():
        with pytest.raises(CatalogueError, match=r"unknown preset 'nope' \(known: demo, digitale,"):
            load_preset(db.session, "nope")


# --- A small preset of our own, to change between loads ------------------------

TINY = """
[catalogue]
name = "Tiny Support"
currency = "EUR"
language = "en"
tagline = { en = "Tiny", fr = "Minuscule", es = "Diminuto" }

[[policies]]
slug = "tiny-credits"
unit = "credit"
unit_minutes = 10
default_kind = "question"
name = { en = "Credits", fr = "Crédits", es = "Créditos" }

[[policies.kinds]]
slug = "question"
minimum = 2
name = { en = "Question", fr = "Question", es = "Pregunta" }

[[policies.kinds]]
slug = "repair"
minimum = 6
name = { en = "Repair", fr = "Réparation", es = "Reparación" }

[[policies]]
slug = "tiny-tickets"
unit = "ticket"
unit_minutes = 30
name = { en = "Tickets", fr = "Tickets", es = "Tickets" }

[pack_defaults]
policy = "tiny-credits"
description = { en = "A pack.", fr = "Un pack.", es = "Un paquete." }
"""


def tiny_pack(letter: str, *lines: str) -> str:
    return "\n".join(
        ["[[packs]]", f'slug = "tiny-{letter}"', "quantity = 10", "price = 10000", *lines,
         f'name = {{ en = "{letter}", fr = "{letter}", es = "{letter}" }}', ""]
    )


def write_tiny(directory: Path, text: str) -> None:
    (directory / "tiny.toml").write_text(text, encoding="utf-8")


def order(pack_slug: str) -> None:
    account = Account(name="Acme", country="FR")
    pack = packs_by_slug()[pack_slug]
    db.session.add(Order(account=account, pack=pack, net=pack.price, total=pack.price, currency=pack.currency))
    db.session.commit()


@pytest.mark.parametrize("database_url", BOTH_ENGINES, indirect=True)
def test_removed_packs_are_retired_when_ordered_else_deleted(app, tmp_path):
    everything = TINY + tiny_pack("a") + tiny_pack("b") + tiny_pack("c", 'policy = "tiny-tickets"')
    with app.app_context():
        write_tiny(tmp_path, everything)
        load_preset(db.session, "tiny", tmp_path)
        order("tiny-b")

        write_tiny(tmp_path, TINY + tiny_pack("a"))
        report = load_preset(db.session, "tiny", tmp_path)
        assert report.rows("retired") == ["pack tiny-b"]
        assert report.rows("deleted") == ["pack tiny-c"]
        packs = packs_by_slug()
        assert packs["tiny-b"].retired_at is not None and "tiny-c" not in packs
        assert [pack.slug for pack in active_packs(db.session, "tiny")] == ["tiny-a"]
        assert active_pack(db.session, "tiny-b") is None and active_pack(db.session, "tiny-a").slug == "tiny-a"

        # Retiring again is not news; the order still points at its pack.
        assert load_preset(db.session, "tiny", tmp_path).rows("retired") == []
        assert db.session.scalar(select(Order)).pack.slug == "tiny-b"

        write_tiny(tmp_path, everything)
        report = load_preset(db.session, "tiny", tmp_path)
        assert report.rows("restored") == ["pack tiny-b"]
        assert report.rows("created") == ["pack tiny-c"]
        assert packs_by_slug()["tiny-b"].retired_at is None
        assert [pack.slug for pack in active_packs(db.session, "tiny")] == ["tiny-a", "tiny-b", "tiny-c"]


def test_policies_and_kinds_follow_the_file(app, tmp_path):
    with app.app_context():
        write_tiny(tmp_path, TINY + tiny_pack("a"))
        load_preset(db.session, "tiny", tmp_path)

        # One kind removed, one changed, the unused ticket policy removed.
        changed = TINY.replace("minimum = 2", "minimum = 3").split("[[policies.kinds]]\nslug = \"repair\"")[0]
        changed += '\n[pack_defaults]\npolicy = "tiny-credits"\n'
        changed += 'description = { en = "A pack.", fr = "Un pack.", es = "Un paquete." }\n'
        write_tiny(tmp_path, changed + tiny_pack("a"))
        report = load_preset(db.session, "tiny", tmp_path)
        assert report.rows("updated") == ["policy tiny-credits"]
        assert report.rows("deleted") == ["policy tiny-tickets"]
        policy = find_policy(db.session, "tiny-credits")
        assert [(kind.slug, kind.minimum) for kind in policy.kinds] == [("question", 3)]
        assert db.session.scalars(select(RequestKind.slug)).all() == ["question"]
        assert find_policy(db.session, "tiny-tickets") is None


def test_pack_kinds_are_listed_trial_first(app, tmp_path):
    with app.app_context():
        write_tiny(
            tmp_path,
            TINY
            + tiny_pack("sub", 'kind = "subscription"')
            + tiny_pack("plan", 'kind = "annual_plan"')
            + tiny_pack("pack")
            + tiny_pack("try", 'kind = "trial"').replace("price = 10000", "price = 0"),
        )
        load_preset(db.session, "tiny", tmp_path)
        assert [pack.slug for pack in active_packs(db.session)] == ["tiny-try", "tiny-pack", "tiny-plan", "tiny-sub"]


# (text replaced in a valid file, its replacement, what the message must say)
BROKEN = [
    pytest.param('unit = "credit"', 'unit = "hour"',
                 "tiny.toml: policies[0] (tiny-credits), field 'unit': "
                 "must be one of minute, credit, ticket, got 'hour'",
                 id="unknown unit"),
    pytest.param("price = 10000", "price = -5",
                 "tiny.toml: packs[0] (tiny-a), field 'price': must be at least 0, got -5", id="negative price"),
    pytest.param("price = 10000", "price = 100.5",
                 "tiny.toml: packs[0] (tiny-a), field 'price': must be a whole number, got 100.5", id="float price"),
    pytest.param('slug = "tiny-a"', 'slug = "tiny-a"\npolicy = "tiny-hours"',
                 "tiny.toml: pack 'tiny-a', field 'policy': no policy 'tiny-hours' in this file", id="unknown policy"),
    pytest.param('name = { en = "a", fr = "a", es = "a" }', 'name = { en = "a", fr = "a" }',
                 "tiny.toml: packs[0] (tiny-a), field 'name': missing language 'es'", id="missing language"),
    pytest.param("quantity = 10", "quantity = 10\nvaldity_months = 12",
                 "tiny.toml: packs[0] (tiny-a): unknown field 'valdity_months'", id="unknown field"),
    pytest.param('slug = "tiny-a"', 'slug = "other-a"',
                 "tiny.toml: slug 'other-a' must start with 'tiny-'", id="slug outside the catalogue"),
    pytest.param('slug = "tiny-a"', 'slug = "tiny-tickets"',
                 "tiny.toml: slug 'tiny-tickets' is used twice", id="slug used twice"),
    pytest.param('default_kind = "question"', 'default_kind = "chat"',
                 "tiny.toml: policies[0] (tiny-credits), field 'default_kind': 'chat' is not one of its kinds",
                 id="default kind missing"),
    pytest.param('quantity = 10', 'quantity = 10\nkind = "trial"',
                 "tiny.toml: packs[0] (tiny-a), field 'price': a trial is free (price = 0)", id="paid trial"),
    pytest.param('quantity = 10', 'quantity = 0',
                 "tiny.toml: packs[0] (tiny-a), field 'quantity': 0 for an unlimited pack, at least 1 otherwise",
                 id="empty pack"),
    pytest.param('currency = "EUR"', 'currency = "EURO"',
                 "tiny.toml: [catalogue], field 'currency': must be an ISO 4217 currency code, got 'EURO'",
                 id="bad currency"),
    pytest.param("[pack_defaults]", "[pack_defaults]\nslug = \"tiny-x\"",
                 "tiny.toml: [pack_defaults]: field 'slug' cannot have a default", id="default slug"),
    pytest.param("[catalogue]", "[catalog]", "tiny.toml: unknown table 'catalog'", id="unknown table"),
    pytest.param("minimum = 2", "minimum = 2\nminimum = 3", "tiny.toml: not valid TOML", id="not TOML"),
]


@pytest.mark.parametrize(("old", "new", "message"), BROKEN)
def test_a_broken_file_writes_nothing(app, tmp_path, old, new, message):
    valid = TINY + tiny_pack("a")
    assert old in valid
    broken = valid.replace(old, new, 1)
    with app.app_context():
        write_tiny(tmp_path, broken)
        with pytest.raises(CatalogueError) as error:
            load_preset(db.session, "tiny", tmp_path)
        assert str(error.value).startswith(message)
        assert not has_catalogue(db.session)

        # Nor does it touch a catalogue loaded before.
        write_tiny(tmp_path, valid)
        load_preset(db.session, "tiny", tmp_path)
        before = snapshot()
        write_tiny(tmp_path, broken)
        with pytest.raises(CatalogueError):
            load_preset(db.session, "tiny", tmp_path)
        assert snapshot() == before


def test_a_slug_of_another_catalogue_is_refused_before_anything_is_written(app, tmp_path):
    with app.app_context():
        write_tiny(tmp_path, TINY + tiny_pack("pro-1"))
        load_preset(db.session, "tiny", tmp_path)
        before = snapshot()
        thief = TINY.replace('"tiny-', '"tiny-pro-') + tiny_pack("1").replace('"tiny-', '"tiny-pro-')
        (tmp_path / "tiny-pro.toml").write_text(thief, encoding="utf-8")
        with pytest.raises(CatalogueError, match="tiny-pro.toml: slug 'tiny-pro-1' belongs to catalogue 'tiny'"):
            load_preset(db.session, "tiny-pro", tmp_path)
        assert snapshot() == before
        assert db.session.scalar(select(Policy).where(Policy.slug == "tiny-pro-credits")) is None


@pytest.mark.parametrize("language, name", [("en", "IT user support"), ("fr", "Support utilisateur informatique"),
                                            ("es", "Soporte informático para usuarios")])
def test_a_catalogues_name_is_in_the_readers_language(app, client, language, name):
    """Issue 12.6: the seed's French name no longer stands on English and Spanish pages."""
    with app.app_context():
        load_preset(db.session, "itsupport")
    page = client.get("/", headers={"Accept-Language": language}).get_data(as_text=True)
    assert f">{name}</h2>" in page
    assert "Support utilisateur informatique" not in page or language == "fr"
