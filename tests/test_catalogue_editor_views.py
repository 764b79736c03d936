"""The catalogue editor in the browser (portal/catalogue_editor.py), through
the Flask test client: forms that save, previews that write nothing, 422s
with the message beside the field, export and import, publish, retire and
restore."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from billing.audit import AuditEntry
from billing.catalogue import versions
from billing.catalogue.models import Catalogue, Pack, Policy
from billing.catalogue.offers import active_pack, load_preset, parse_preset, read_preset
from common.extensions import db
from tests.conftest import login, post_form
from tests.test_catalogue import snapshot


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def admin(app, client, people):
    with app.app_context():
        load_preset(db.session, "toopixel")
    assert login(client, people["staff"]).status_code == 302
    return client


def ids(app) -> dict[str, int]:
    with app.app_context():
        return {"catalogue": db.session.scalar(select(Catalogue.id).where(Catalogue.slug == "toopixel")),
                "pack": versions.current_pack(db.session, "toopixel-36").id,
                "policy": versions.current_policy(db.session, "toopixel-credits").id}


NEW_PACK = {
    "name-en": "Starter, 12 credits", "name-fr": "Démarrage, 12 crédits", "name-es": "Inicio, 12 créditos",
    "description-en": "Two hours.", "description-fr": "Deux heures.", "description-es": "Dos horas.",
    "kind": "pack", "policy": "toopixel-credits", "quantity": "12", "price": "390", "vat_rate": "8.1",
    "price_includes_vat": "y", "hourly_rate": "200", "validity_months": "24", "min_quantity": "1",
    "position": "0", "action": "save",
}


def snapshot_in(app):
    with app.app_context():
        return snapshot()


def test_the_list_shows_each_catalogue_its_packs_and_policies(app, admin):
    page = admin.get("/staff/catalogue")
    assert page.status_code == 200
    body = text(page)
    assert "Too Pixel Sàrl" in body and "36 credits" in body and "Webmastering credits" in body
    assert f'href="/staff/catalogue/{ids(app)["catalogue"]}/export"' in body


def test_a_new_pack_is_a_draft_until_published_then_on_sale(app, admin):
    catalogue = ids(app)["catalogue"]
    response = post_form(admin, f"/staff/catalogue/{catalogue}/packs/new", NEW_PACK)
    assert response.status_code == 302
    with app.app_context():
        pack = versions.current_pack(db.session, "toopixel-starter-12-credits")
        assert pack.status == "draft" and pack.price == 39000 and pack.name["fr"] == "Démarrage, 12 crédits"
        pack_id = pack.id
        assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.subject_id == pack_id)) == "pack.create"
    assert response.headers["Location"] == f"/staff/catalogue/packs/{pack_id}"
    card = 'id="offer-toopixel-starter-12-credits"'
    assert card not in text(admin.get("/"))
    assert post_form(admin, f"/staff/catalogue/packs/{pack_id}/publish").status_code == 303
    assert card in text(admin.get("/"))
    assert post_form(admin, f"/staff/catalogue/packs/{pack_id}/retire").status_code == 303
    assert card not in text(admin.get("/"))
    assert post_form(admin, f"/staff/catalogue/packs/{pack_id}/restore").status_code == 303
    assert card in text(admin.get("/"))
    with app.app_context():
        assert list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.subject_kind == "pack")
                                       .order_by(AuditEntry.id))) == [
            "pack.create", "pack.publish", "pack.retire", "pack.restore"]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("price", "-10", "An amount cannot be negative."),
    ("name-fr", "", "The French text is missing"),
    ("quantity", "0", "0 for an unlimited pack"),
])
def test_a_wrong_field_answers_422_with_the_message_beside_it_and_writes_nothing(app, admin, field, value, words):
    catalogue = ids(app)["catalogue"]
    before = snapshot_in(app)
    response = post_form(admin, f"/staff/catalogue/{catalogue}/packs/new", {**NEW_PACK, field: value})
    assert response.status_code == 422
    note = re.search(rf'<small id="f-{field}-note" class="field-error" role="alert">([^<]*)</small>', text(response))
    assert note and words in note.group(1)
    assert f'id="f-{field}" name="{field}"' in text(response)
    assert snapshot_in(app) == before


def test_a_block_of_0_minutes_and_a_minimum_above_the_fixed_price_are_refused(app, admin):
    policy = ids(app)["policy"]
    page = text(admin.get(f"/staff/catalogue/policies/{policy}"))
    assert 'name="unit_minutes"' in page
    before = snapshot_in(app)
    form = {"name-en": "Credits", "name-fr": "Crédits", "name-es": "Créditos", "unit": "credit",
            "unit_minutes": "0", "step": "1", "overage_mode": "block", "low_balance_percent": "20",
            "kind-0-slug": "update", "kind-0-name-en": "Update", "kind-0-name-fr": "Mise à jour",
            "kind-0-name-es": "Actualización", "kind-0-minimum": "90", "kind-0-fixed": "60"}
    response = post_form(admin, f"/staff/catalogue/policies/{policy}", form)
    assert response.status_code == 422
    body = text(response)
    assert re.search(r'id="f-unit_minutes-note" class="field-error" role="alert">Enter at least 1.<', body)
    assert "A minimum of 90 cannot be more than the fixed price of 60." in body
    assert snapshot_in(app) == before


def test_the_preview_shows_the_card_and_the_charges_and_writes_nothing(app, admin):
    catalogue = ids(app)["catalogue"]
    before = snapshot_in(app)
    fragment = post_form(admin, f"/staff/catalogue/{catalogue}/packs/preview", {**NEW_PACK, "try_minutes": "27"},
                         headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    body = text(fragment)
    assert body.lstrip().startswith('<section id="preview"')
    assert "Starter, 12 credits" in body and "CHF" in body
    assert "27 min → 3 blocks of 10 min → 3 credits" in body
    # Without JavaScript, "Preview" answers the whole page with it.
    page = post_form(admin, f"/staff/catalogue/{catalogue}/packs/new", {**NEW_PACK, "action": "preview"})
    assert page.status_code == 200 and "<html" in text(page) and "Starter, 12 credits" in text(page)
    assert snapshot_in(app) == before


def test_the_policy_preview_follows_the_rule_as_typed(app, admin):
    values = ids(app)
    form = {"name-en": "Credits", "name-fr": "Crédits", "name-es": "Créditos", "unit": "credit",
            "unit_minutes": "1", "step": "15", "overage_mode": "block", "low_balance_percent": "20",
            "kind-0-slug": "intervention", "kind-0-name-en": "Intervention", "kind-0-name-fr": "Intervention",
            "kind-0-name-es": "Intervención", "kind-0-minimum": "60", "try_minutes": "61",
            "try_kind": "intervention"}
    fragment = post_form(admin, f"/staff/catalogue/{values['catalogue']}/policies/{values['policy']}/preview",
                         form, headers={"HX-Request": "true"})
    assert "75 credits" in text(fragment)


def test_editing_a_sold_pack_makes_a_version_and_says_so(app, admin, people):
    from billing.accounts.models import User
    from billing.clock import now
    from billing.ledger import services as ledger

    values = ids(app)
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        ledger.grant(db.session, owner.account, db.session.get(Pack, values["pack"]), key="sold", now=now())
    page = text(admin.get(f"/staff/catalogue/packs/{values['pack']}"))
    assert 'value="950.00"' in page
    form = dict(re.findall(r'<input id="f-[^"]+" name="([^"]+)"[^>]* value="([^"]*)"', page))
    form.update({k: v for k, v in re.findall(r'<textarea id="f-[^"]+" name="([^"]+)"[^>]*>([^<]*)</textarea>', page)})
    form.update({"kind": "pack", "policy": "toopixel-credits", "price_includes_vat": "y", "price": "990",
                 "action": "save"})
    form.pop("try_minutes", None)
    response = post_form(admin, f"/staff/catalogue/packs/{values['pack']}", form)
    assert response.status_code == 302, text(response)
    with app.app_context():
        assert db.session.get(Pack, values["pack"]).price == 95000
        current = active_pack(db.session, "toopixel-36")
        assert current.price == 99000 and current.version == 2
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "pack.version"))
        assert (entry.subject_kind, entry.subject_id, entry.actor.email) == ("pack", current.id, people["staff"])
        assert (entry.before["price"], entry.after["price"], entry.before["version"]) == (95000, 99000, 1)
    assert "version 2" in text(admin.get(response.headers["Location"]))
    # The client's statement says which version the credits were bought under.
    with app.app_context():
        account_id = db.session.scalar(select(User.account_id).where(User.email == people["owner"]))
    assert "36 credits (version 1)" in text(admin.get(f"/portal/accounts/{account_id}/statement"))
    # The old version's address leads to the current one.
    assert admin.get(f"/staff/catalogue/packs/{values['pack']}").headers["Location"].endswith(f"/{current.id}")


def test_export_downloads_the_catalogue_as_a_preset(app, admin):
    response = admin.get(f"/staff/catalogue/{ids(app)['catalogue']}/export")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="toopixel.toml"'
    assert parse_preset(text(response), "toopixel") == read_preset("toopixel")


def test_import_a_shipped_preset_or_a_file(app, admin):
    response = post_form(admin, "/staff/catalogue/import", {"preset": "innova"})
    assert response.status_code == 302
    with app.app_context():
        assert active_pack(db.session, "innova-480") is not None
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "catalogue.import"))
        assert entry.after["preset"] == "innova.toml" and "created pack innova-480" in entry.after["changes"]
    exported = admin.get(f"/staff/catalogue/{ids(app)['catalogue']}/export").get_data()
    changed = exported.replace(b"price = 95000", b"price = 96000")
    response = post_form(admin, "/staff/catalogue/import",
                         {"file": (io.BytesIO(changed), "toopixel.toml")}, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context():
        assert active_pack(db.session, "toopixel-36").price == 96000
    before = snapshot_in(app)
    broken = post_form(admin, "/staff/catalogue/import", {"file": (io.BytesIO(b"[catalogue]\n"), "bad.toml")},
                       content_type="multipart/form-data")
    assert broken.status_code == 422 and "This file cannot be loaded" in text(broken)
    assert snapshot_in(app) == before


def test_a_new_catalogue_and_policy(app, admin):
    response = post_form(admin, "/staff/catalogue/new", {
        "slug": "acme", "name-en": "Acme", "name-fr": "Acme", "name-es": "Acme", "tagline-en": "Help.",
        "tagline-fr": "De l'aide.", "tagline-es": "Ayuda.", "currency": "eur", "language": "fr", "position": "9"})
    assert response.status_code == 302
    with app.app_context():
        catalogue = db.session.scalar(select(Catalogue).where(Catalogue.slug == "acme"))
        assert catalogue.currency == "EUR"
    # Empty, it says so rather than showing a table of headings alone.
    listing = text(admin.get("/staff/catalogue"))
    assert "No pack yet." in listing and "No billing policy yet: a pack needs one." in listing
    response = post_form(admin, f"/staff/catalogue/{catalogue.id}/policies/new", {
        "name-en": "Hours", "name-fr": "Heures", "name-es": "Horas", "unit": "minute", "unit_minutes": "1",
        "step": "15", "overage_mode": "ask", "overage_hourly_rate": "80", "low_balance_percent": "10",
        "action": "save"})
    assert response.status_code == 302
    with app.app_context():
        policy = db.session.scalar(select(Policy).where(Policy.slug == "acme-hours"))
        assert (policy.step, policy.overage_hourly_rate) == (15, 8000)


def test_an_agent_may_not_edit_the_catalogue(app, client, people):
    from common.identity import accounts

    with app.app_context():
        load_preset(db.session, "toopixel")
        accounts.create_staff(db.session, "Ann Agent", "agent@example.com", "correct horse battery staple",
                              role="agent")
    login(client, "agent@example.com")
    assert client.get("/staff/catalogue").status_code == 403
    before = snapshot_in(app)
    assert post_form(client, f"/staff/catalogue/{ids(app)['catalogue']}/packs/new", NEW_PACK).status_code == 403
    assert post_form(client, "/staff/catalogue/import", {"preset": "innova"}).status_code == 403
    assert snapshot_in(app) == before


def test_a_policy_with_kinds_shows_them_and_its_default(app, admin):
    with app.app_context():
        load_preset(db.session, "innova")
        policy = versions.current_policy(db.session, "innova-credits")
    page = text(admin.get(f"/staff/catalogue/policies/{policy.id}"))
    assert 'name="kind-2-fixed" type="text" value="60"' in page
    assert '<option value="consultation" selected>Consultation</option>' in page
    # The preview prices seed 003's examples: a consultation of 20 min is 30 credits.
    fragment = post_form(admin, f"/staff/catalogue/{policy.catalogue_id}/policies/{policy.id}/preview",
                         {**_form_of(page), "try_minutes": "20", "try_kind": "consultation"},
                         headers={"HX-Request": "true"})
    assert "30 credits" in text(fragment)


def _form_of(page: str) -> dict[str, str]:
    """The values a browser would send from the form on ``page`` (text fields, ticked boxes, selections)."""
    form = dict(re.findall(r'<input id="f-[^"]+" name="([^"]+)"[^>]*? value="([^"]*)"', page))
    form.update(re.findall(r'<input type="checkbox" name="([^"]+)" value="(y)" id="f-[^"]+" checked', page))
    for name, options in re.findall(r'<select id="f-[^"]+" name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', options)
        if chosen:
            form[name] = chosen.group(1)
    return form


def test_a_tickets_report_says_which_terms_counted_it(app, admin, people):
    """Its policy changed since the ticket was opened: the report names the version it was counted by."""
    from billing.accounts.models import User
    from billing.clock import now
    from billing.ledger import services as ledger

    values = ids(app)
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == people["owner"]))
        ledger.grant(db.session, owner.account, db.session.get(Pack, values["pack"]), key="sold", now=now())
        ticket = ledger.open_ticket(db.session, owner.account, owner, "Site down", now=now())
        ledger.charge_ticket_to(db.session, ticket, 27, by=None, key="c", now=now())
        ticket.status, ticket.resolved_at = "resolved", now()  # a report is that of a resolved ticket
        db.session.commit()
        ticket_id = ticket.id
    page = text(admin.get(f"/staff/catalogue/policies/{values['policy']}"))
    form = _form_of(page) | {"unit_minutes": "15", "action": "save"}
    assert post_form(admin, f"/staff/catalogue/policies/{values['policy']}", form).status_code == 302
    with app.app_context():
        assert versions.current_policy(db.session, "toopixel-credits").version == 2
    report = text(admin.get(f"/portal/tickets/{ticket_id}/report"))
    assert "Webmastering credits (terms of version 1)" in report
