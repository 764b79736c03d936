"""The catalogue editor's services (billing.catalogue.editing and .versions):
presets round-trip through the export, forms are checked field by field and a
refused one writes nothing, and terms already sold never change: a pack or
policy in use gets a new version, its lots and tickets keep the old one, and
the ledger stays exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billing.accounts.models import Account, User
from billing.catalogue import editing, versions
from billing.catalogue.models import Catalogue, Pack, Policy
from billing.catalogue.offers import active_pack, load, load_preset, parse_preset, preset_names, read_preset
from billing.ledger import services as ledger
from billing.ledger import statement
from billing.ledger.verify import verify
from common.extensions import db
from tests.test_catalogue import BOTH_ENGINES, snapshot

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_exported_reads_back_the_same(app, name):
    """Load the preset, export the live catalogue, read the export: the same
    preset, field for field; and exporting what the export loads gives the same text."""
    with app.app_context():
        load_preset(db.session, name)
        catalogue = db.session.scalar(select(Catalogue).where(Catalogue.slug == name))
        text = editing.export_preset(db.session, catalogue)
        assert parse_preset(text, name) == read_preset(name)
        report = load(db.session, parse_preset(text, name))
        assert {action for action, _row in report.changes} == {"unchanged"}
        assert editing.export_preset(db.session, catalogue) == text


def test_an_export_is_readable_toml_with_defaults_said_once(app):
    with app.app_context():
        load_preset(db.session, "toopixel")
        catalogue = db.session.scalar(select(Catalogue).where(Catalogue.slug == "toopixel"))
        text = editing.export_preset(db.session, catalogue)
    assert "[pack_defaults]" in text and 'policy = "toopixel-credits"' in text
    assert text.count("validity_months = 24") == 1
    assert 'name = "Too Pixel Sàrl"' in text


# --- Forms ----------------------------------------------------------------------

def pack_form(**changes: str) -> dict[str, str]:
    form = {
        "name-en": "Pro 10", "name-fr": "Pro 10", "name-es": "Pro 10",
        "description-en": "Ten credits.", "description-fr": "Dix crédits.", "description-es": "Diez créditos.",
        "kind": "pack", "policy": "toopixel-credits", "quantity": "10", "price": "250.50", "vat_rate": "8.1",
        "price_includes_vat": "y", "hourly_rate": "200", "validity_months": "24", "min_quantity": "1",
        "refundable": "y", "position": "3",
    }
    form.update(changes)
    return {name: value for name, value in form.items() if value is not None}


@pytest.fixture
def toopixel(app):
    with app.app_context():
        load_preset(db.session, "toopixel")
        yield db.session.scalar(select(Catalogue).where(Catalogue.slug == "toopixel"))


def test_a_pack_form_gives_the_values_a_preset_would(toopixel):
    draft = editing.pack_draft(db.session, pack_form(), toopixel, None)
    assert draft.ok, draft.errors
    assert draft.values["slug"] == "toopixel-pro-10"
    assert draft.values["price"] == 25050 and draft.values["vat_rate_bp"] == 810
    assert draft.values["description"]["fr"] == "Dix crédits."
    pack, done = editing.save_pack(db.session, toopixel, None, draft, NOW, None)
    assert done == "created" and pack.status == "draft" and active_pack(db.session, pack.slug) is None
    editing.publish(db.session, pack, NOW, None)
    assert active_pack(db.session, "toopixel-pro-10").price == 25050


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"price": "-5"}, "price", "cannot be negative"),
    ({"price": "12.345"}, "price", "Enter an amount"),
    ({"name-fr": " "}, "name-fr", "French text is missing"),
    ({"included-en": "Mail", "included-fr": "Courriel"}, "included-es", "Spanish text is missing"),
    ({"quantity": "0"}, "quantity", "unlimited"),
    ({"vat_rate": "100"}, "vat_rate", "below 100"),
    ({"kind": "trial"}, "price", "trial is free"),
    ({"policy": "innova-credits"}, "policy", "Choose one"),
    ({"validity_months": "0"}, "validity_months", "at least 1"),
    ({"slug": "Bad Slug"}, "slug", "lower-case"),
])
def test_a_wrong_pack_field_is_named_and_nothing_is_written(toopixel, changes, field, words):
    before = snapshot()
    draft = editing.pack_draft(db.session, pack_form(**changes), toopixel, None)
    assert not draft.ok
    assert words in str(draft.errors[field])
    assert snapshot() == before


def policy_form(**changes: str) -> dict[str, str]:
    form = {
        "name-en": "Support", "name-fr": "Assistance", "name-es": "Soporte", "unit": "credit",
        "unit_minutes": "1", "step": "15", "overage_mode": "block", "low_balance_percent": "20",
        "default_kind": "consultation",
        "kind-0-slug": "consultation", "kind-0-name-en": "Consultation", "kind-0-name-fr": "Consultation",
        "kind-0-name-es": "Consulta", "kind-0-minimum": "15", "kind-0-fixed": "",
        "kind-1-slug": "security-update", "kind-1-name-en": "Update", "kind-1-name-fr": "Mise à jour",
        "kind-1-name-es": "Actualización", "kind-1-minimum": "", "kind-1-fixed": "60",
        "kind-2-slug": "", "kind-2-name-en": "", "kind-2-name-fr": "", "kind-2-name-es": "",
    }
    form.update(changes)
    return form


def test_a_policy_form_gives_its_rule(toopixel):
    draft = editing.policy_draft(db.session, policy_form(), toopixel, None)
    assert draft.ok, draft.errors
    assert [kind["slug"] for kind in draft.kinds] == ["consultation", "security-update"]
    policy, done = editing.save_policy(db.session, toopixel, None, draft, NOW, None)
    assert done == "created" and policy.slug == "toopixel-support"
    rule = policy.rule()
    from billing.ledger.rules import units
    assert units(rule, 20, "consultation").units == 30
    assert units(rule, 5, "security-update").units == 60


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"step": "0"}, "step", "at least 1"),
    ({"unit_minutes": "0"}, "unit_minutes", "at least 1"),
    ({"kind-1-minimum": "90"}, "kind-1-minimum", "cannot be more than the fixed price"),
    ({"kind-0-name-es": ""}, "kind-0-name-es", "Spanish text is missing"),
    ({"default_kind": "nothing"}, "default_kind", "request kinds"),
    ({"kind-1-slug": "consultation"}, "kind-1-slug", "Two request kinds"),
    ({"overage_hourly_rate": "-1"}, "overage_hourly_rate", "negative"),
    ({"unit": "hour"}, "unit", "Choose one"),
])
def test_a_wrong_policy_field_is_named_and_nothing_is_written(toopixel, changes, field, words):
    before = snapshot()
    draft = editing.policy_draft(db.session, policy_form(**changes), toopixel, None)
    assert words in str(draft.errors[field])
    assert snapshot() == before


def test_amounts_follow_the_currency():
    assert editing.parse_amount("1'500", "CHF") == 150000
    assert editing.parse_amount("1 500,5", "EUR") == 150050
    assert editing.parse_amount("1500", "JPY") == 1500
    with pytest.raises(ValueError):
        editing.parse_amount("15.5", "JPY")
    assert editing.format_amount(150050, "EUR") == "1500.50"
    assert editing.parse_rate("8.1") == 810 and editing.format_rate(810) == "8.1" and editing.format_rate(2000) == "20"


# --- Versions -----------------------------------------------------------------

def client_account() -> tuple[Account, User]:
    account = Account(name="Acme", country="CH")
    user = User(account=account, role="owner", email="o@example.com", name="O", password_hash="-")
    db.session.add_all([account, user])
    db.session.commit()
    return account, user


@pytest.mark.parametrize("database_url", BOTH_ENGINES, indirect=True)
def test_a_sold_pack_edited_is_a_new_version_and_the_lot_keeps_its_terms(app):
    with app.app_context():
        load_preset(db.session, "toopixel")
        catalogue = db.session.scalar(select(Catalogue).where(Catalogue.slug == "toopixel"))
        account, _user = client_account()
        old = versions.current_pack(db.session, "toopixel-36")
        lot = ledger.grant(db.session, account, old, key="buy-1", now=NOW).lot
        old_id = old.id

        form = editing.pack_form(old) | {"price": "990", "validity_months": "12"}
        draft = editing.pack_draft(db.session, form, catalogue, old)
        assert draft.ok, draft.errors
        new, done = editing.save_pack(db.session, catalogue, old, draft, NOW, None)
        assert done == "versioned" and new.id != old_id and new.version == 2
        old = db.session.get(Pack, old_id)
        assert (old.price, old.validity_months, old.status) == (95000, 24, "superseded")
        assert lot.pack_id == old_id
        assert active_pack(db.session, "toopixel-36").id == new.id and new.price == 99000

        # Editing version 2, not yet sold, changes it in place.
        again = editing.pack_draft(db.session, form | {"price": "980"}, catalogue, new)
        assert editing.save_pack(db.session, catalogue, new, again, NOW, None) == (new, "updated")
        # Moving it in the list is no change of terms.
        moved = editing.pack_draft(db.session, form | {"price": "980", "position": "7"}, catalogue, new)
        ledger.grant(db.session, account, new, key="buy-2", now=NOW)
        assert editing.save_pack(db.session, catalogue, new, moved, NOW, None) == (new, "updated")
        assert db.session.scalar(select(func.count()).select_from(Pack).where(Pack.slug == "toopixel-36")) == 2
        assert verify(db.session, account.id).breaches == []


@pytest.mark.parametrize("database_url", BOTH_ENGINES, indirect=True)
def test_a_policy_in_use_edited_keeps_charging_its_tickets_by_the_old_rule(app):
    with app.app_context():
        load_preset(db.session, "toopixel")
        catalogue = db.session.scalar(select(Catalogue).where(Catalogue.slug == "toopixel"))
        account, user = client_account()
        pack = versions.current_pack(db.session, "toopixel-36")
        ledger.grant(db.session, account, pack, key="buy-1", now=NOW)
        old_policy = pack.policy
        ticket = ledger.open_ticket(db.session, account, user, "Help", now=NOW)
        ledger.charge_ticket_to(db.session, ticket, 27, by=None, key="c1", now=NOW)

        # Blocks of 15 minutes instead of 10.
        form = editing.policy_form(old_policy, "CHF") | {"unit_minutes": "15"}
        draft = editing.policy_draft(db.session, form, catalogue, old_policy)
        new_policy, done = editing.save_policy(db.session, catalogue, old_policy, draft, NOW, None)
        assert done == "versioned" and new_policy.version == 2 and old_policy.superseded_at is not None

        # The ticket opened under version 1 still counts 10-minute blocks: 41 min → 5 credits.
        ledger.charge_ticket_to(db.session, ticket, 41, by=None, key="c2", now=NOW)
        assert ticket.policy_id == old_policy.id
        assert ledger.balance(db.session, account.id, old_policy.id, "credit", now=NOW).net == 36 - 5
        # The pack sold under version 1 is a version of its own; the pack on sale sells version 2.
        on_sale = active_pack(db.session, "toopixel-36")
        assert on_sale.id != pack.id and on_sale.policy_id == new_policy.id and pack.policy_id == old_policy.id
        # A pack nobody bought just follows the new version.
        unsold = active_pack(db.session, "toopixel-72")
        assert unsold.version == 1 and unsold.policy_id == new_policy.id
        # Renaming is no change of terms: no third version.
        renamed = editing.policy_draft(db.session, form | {"name-en": "Credits"}, catalogue, new_policy)
        assert editing.save_policy(db.session, catalogue, new_policy, renamed, NOW, None)[1] == "updated"
        assert verify(db.session, account.id).breaches == []

        # The statement says which terms each balance and each purchase had.
        ledger.grant(db.session, account, on_sale, key="buy-2", now=NOW)
        report = statement.statement(db.session, account, NOW.date(), NOW.date(), now=NOW + timedelta(days=1))
        parts = {part.policy_slug: part for part in report.sections}
        assert set(parts) == {"toopixel-credits v1", "toopixel-credits v2"}
        assert (parts["toopixel-credits v1"].closing, parts["toopixel-credits v2"].closing) == (31, 36)
        assert [grant.pack_version for grant in parts["toopixel-credits v1"].grants] == [1]
        assert [grant.pack_version for grant in parts["toopixel-credits v2"].grants] == [2]
        grants = [row for row in statement.rows(report) if row[3] == "grant"]
        assert [(row[0], row[6], row[7]) for row in grants] == [
            ("toopixel-credits v1", "36", "purchase toopixel-36 v1"),
            ("toopixel-credits v2", "36", "purchase toopixel-36 v2")]


def test_a_registration_under_the_old_version_still_registers(app):
    """Innova (seed 003): the first pack is valid one year, top-ups never
    expire, even when the terms changed in between."""
    with app.app_context():
        load_preset(db.session, "innova")
        catalogue = db.session.scalar(select(Catalogue).where(Catalogue.slug == "innova"))
        account, _user = client_account()
        first = ledger.grant(db.session, account, versions.current_pack(db.session, "innova-15"), key="r",
                             now=NOW).lot
        assert first.expires_at is not None
        policy = versions.current_policy(db.session, "innova-credits")
        form = editing.policy_form(policy, "EUR") | {"step": "5"}
        editing.save_policy(db.session, catalogue, policy,
                            editing.policy_draft(db.session, form, catalogue, policy), NOW, None)
        topup = ledger.grant(db.session, account, active_pack(db.session, "innova-30"), key="t",
                             now=NOW + timedelta(days=3)).lot
        assert topup.policy_id != first.policy_id and topup.expires_at is None


def test_a_reload_of_a_changed_preset_versions_what_was_sold(app, tmp_path):
    with app.app_context():
        load_preset(db.session, "toopixel")
        account, _user = client_account()
        sold = versions.current_pack(db.session, "toopixel-36")
        ledger.grant(db.session, account, sold, key="buy", now=NOW)
        text = (read_preset.__globals__["PRESETS"] / "toopixel.toml").read_text()
        (tmp_path / "toopixel.toml").write_text(text.replace("price = 95000", "price = 97000"))
        report = load_preset(db.session, "toopixel", tmp_path)
        assert "pack toopixel-36" in report.rows("updated")
        assert sold.price == 95000 and active_pack(db.session, "toopixel-36").price == 97000


def test_retire_and_restore(toopixel):
    pack = versions.current_pack(db.session, "toopixel-72")
    editing.retire(db.session, pack, NOW, None)
    assert pack.status == "retired" and active_pack(db.session, "toopixel-72") is None
    with pytest.raises(editing.EditorError):
        editing.retire(db.session, pack, NOW, None)
    editing.publish(db.session, pack, NOW, None)
    assert active_pack(db.session, "toopixel-72") is pack


def test_an_uploaded_preset_that_is_wrong_writes_nothing(toopixel):
    before = snapshot()
    with pytest.raises(editing.EditorError) as refused:
        editing.import_preset(db.session, '[catalogue]\nname = "X"\n', "broken", None)
    assert "missing field 'currency'" in str(refused.value)
    assert snapshot() == before
    assert db.session.scalar(select(func.count()).select_from(Policy)) == 1


def test_the_command_line_exports_a_catalogue(app, runner, tmp_path):
    with app.app_context():
        load_preset(db.session, "itsupport")
    result = runner.invoke(args=["catalogue", "export", "itsupport"])
    assert result.exit_code == 0
    assert parse_preset(result.stdout, "itsupport") == read_preset("itsupport")
    missing = runner.invoke(args=["catalogue", "export", "nothing"])
    assert (missing.exit_code, missing.stdout, missing.stderr) == (2, "", "Error: no catalogue 'nothing'\n")


@pytest.mark.parametrize("database_url", BOTH_ENGINES, indirect=True)
def test_two_admins_saving_a_sold_pack_at_once_make_one_new_version(app):
    """The second save read the pack before the first made version 2: it is
    refused (edit the current version), not a second version 2."""
    from sqlalchemy.orm import Session

    with app.app_context():
        load_preset(db.session, "toopixel")
        account, _user = client_account()
        ledger.grant(db.session, account, versions.current_pack(db.session, "toopixel-36"), key="sold", now=NOW)
        catalogue_id = db.session.scalar(select(Catalogue.id).where(Catalogue.slug == "toopixel"))
        with Session(db.engine) as first, Session(db.engine) as second:
            drafts = []
            for session in (first, second):
                catalogue = session.get(Catalogue, catalogue_id)
                pack = versions.current_pack(session, "toopixel-36")
                form = editing.pack_form(pack) | {"price": "990"}
                drafts.append((session, catalogue, pack, editing.pack_draft(session, form, catalogue, pack)))
            for session, catalogue, pack, draft in drafts[:1]:
                assert editing.save_pack(session, catalogue, pack, draft, NOW, None)[1] == "versioned"
            session, catalogue, pack, draft = drafts[1]
            with pytest.raises(editing.EditorError):
                editing.save_pack(session, catalogue, pack, draft, NOW, None)
        assert db.session.scalar(select(func.count()).select_from(Pack).where(Pack.slug == "toopixel-36")) == 2


def test_what_the_editor_makes_exports_and_loads_back_unchanged(toopixel):
    """A policy with a fixed-price and a non-billable kind, and a pooled pack
    from 20 with a first-pack validity, included items in three languages:
    the export reads back as the same catalogue."""
    form = policy_form(**{"kind-2-slug": "emails", "kind-2-name-en": "E-mails", "kind-2-name-fr": "Courriels",
                          "kind-2-name-es": "Correos", "kind-2-free": "y", "overage_mode": "ask",
                          "overage_hourly_rate": "65"})
    policy, _done = editing.save_policy(db.session, toopixel, None,
                                        editing.policy_draft(db.session, form, toopixel, None), NOW, None)
    pack_values = pack_form(policy="toopixel-support", pooled="y", min_quantity="20", quantity="1",
                            registration_first="y", topups_never_expire="y", validity_months="12",
                            rollover_expired="y", refundable=None, price=None, **{
                                "included-en": "Mail\nPhones", "included-fr": "Courriel\nTéléphones",
                                "included-es": "Correo\nTeléfonos"})
    pack, _done = editing.save_pack(db.session, toopixel, None,
                                    editing.pack_draft(db.session, pack_values, toopixel, None), NOW, None)
    editing.publish(db.session, pack, NOW, None)
    text = editing.export_preset(db.session, toopixel)
    assert "[[policies.kinds]]" in text and "billable = false" in text and "min_quantity = 20" in text
    report = load(db.session, parse_preset(text, "toopixel"))
    assert {action for action, _row in report.changes} == {"unchanged"}
    exported = parse_preset(text, "toopixel")
    assert exported.policies["toopixel-support"].values["overage_hourly_rate"] == 6500
    assert [p for p in exported.packs if p["slug"] == pack.slug][0]["included"]["fr"] == ["Courriel", "Téléphones"]
