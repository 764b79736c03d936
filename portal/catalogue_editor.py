"""The catalogue editor: admins create and edit catalogues, policies and
packs in the browser, see the storefront card and the charges while they
type, publish, retire and restore packs, import a preset and export the live
catalogue. The rules and the saving live in billing.catalogue.editing; this
module reads forms, checks who asks and answers.

Every form also works without JavaScript: "Preview" sends it back with the
previews and saves nothing; a refused save answers 422 with a message beside
each wrong field, and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from billing import clock
from billing.catalogue import editing, offers, versions
from billing.catalogue.models import PACK_KINDS, Catalogue, Pack, Policy
from billing.ledger.rules import PolicyRule, RuleError, explain, units
from billing.models import localized
from common.extensions import db
from common.fragments import page_or_fragment
from common.i18n import current_locale, translate, translate_plural
from common.identity.access import INVALID, admin_required

bp = Blueprint("catalogue_editor", __name__, url_prefix="/staff/catalogue")

PACK_KIND_LABELS = {"trial": _l("Free trial"), "pack": _l("Pack"), "annual_plan": _l("Annual plan"),
                    "subscription": _l("Subscription")}
UNIT_LABELS = {"minute": _l("Minutes"), "credit": _l("Credits"), "ticket": _l("Tickets")}
OVERAGE_LABELS = {"block": _l("Refuse: the client buys a pack first"),
                  "ask": _l("Ask the client's owner first, then bill at the hourly rate"),
                  "allow": _l("Allow, and bill at the hourly rate")}
STATUS_LABELS = {"draft": _l("Draft"), "on_sale": _l("On sale"), "retired": _l("Retired"),
                 "superseded": _l("Earlier version")}
# The minutes the charge preview prices, for each request kind.
SAMPLE_MINUTES = (10, 20, 27, 40, 61, 90)


# ------------------------------------------------------------------ loaders

def get_catalogue(catalogue_id: int) -> Catalogue:
    found = db.session.get(Catalogue, catalogue_id)
    if found is None:
        abort(404)
    return found


def get_pack(pack_id: int) -> Pack:
    found = db.session.get(Pack, pack_id)
    if found is None:
        abort(404)
    return found


def get_policy(policy_id: int) -> Policy:
    found = db.session.get(Policy, policy_id)
    if found is None:
        abort(404)
    return found


def messages(draft: editing.Draft) -> dict[str, str]:
    """Each field's error, in the reader's language."""
    return {name: _(error.message, **error.params) for name, error in draft.errors.items()}


def _to_current(current: Pack | Policy | None, endpoint: str, key: str) -> Response:
    """An earlier version's address leads to the current version's form."""
    if current is None:
        abort(404)
    flash(_("That was an earlier version, kept for what was sold under it: this is the current one."), "info")
    values: dict[str, Any] = {key: current.id}
    return redirect(url_for(endpoint, **values))


def _saving() -> bool:
    return request.form.get("action", "save") == "save"


def _save(catalogue: Catalogue, row: Any, draft_of: Callable, page: Callable, save: Callable, current: Callable,
          endpoint: str, key: str) -> Response | tuple[Any, str]:
    """A policy's or a pack's form posted: the form again (422 with the
    errors, or the preview asked for), or what ``save`` made and how
    ("created", "versioned", "updated")."""
    form = request.form.to_dict()
    draft = draft_of(db.session(), form, catalogue, row)
    if not draft.ok:
        return page(catalogue, row, form, draft, INVALID)
    if not _saving():
        return page(catalogue, row, form, draft)
    try:
        return save(db.session(), catalogue, row, draft, clock.now(), current_user)
    except editing.EditorError:  # another admin made a newer version meanwhile
        assert row is not None
        return _to_current(current(db.session(), row.slug), endpoint, key)


# ------------------------------------------------------------------ the list

@bp.get("")
@admin_required
def index():
    session = db.session()
    catalogues = list(session.scalars(select(Catalogue).order_by(Catalogue.position, Catalogue.slug)))
    packs: dict[int, list[Pack]] = {}
    for pack in session.scalars(select(Pack).where(Pack.superseded_at.is_(None))
                                .order_by(Pack.position, Pack.id)):
        packs.setdefault(pack.catalogue_id, []).append(pack)
    policies: dict[int, list[Policy]] = {}
    for policy in session.scalars(select(Policy).where(Policy.superseded_at.is_(None)).order_by(Policy.id)):
        policies.setdefault(policy.catalogue_id, []).append(policy)
    earlier = {slug: count for slug, count in session.execute(
        select(Pack.slug, db.func.count()).where(Pack.superseded_at.is_not(None)).group_by(Pack.slug))}
    return render_template("catalogue_editor/index.html", catalogues=catalogues, packs=packs, policies=policies,
                           earlier=earlier, presets=offers.preset_names(), status_labels=STATUS_LABELS)


# ------------------------------------------------------------------ catalogues

def _catalogue_page(catalogue: Catalogue | None, form: dict[str, str], errors: dict[str, str],
                    status: int = 200) -> Response:
    return make_response(render_template("catalogue_editor/catalogue.html", catalogue=catalogue, form=form,
                                         errors=errors), status)


@bp.route("/new", methods=["GET", "POST"])
@admin_required
def new_catalogue():
    if request.method == "GET":
        return _catalogue_page(None, {"language": "en", "currency": "EUR", "position": "0"}, {})
    return _save_catalogue(None)


@bp.route("/<int:catalogue_id>", methods=["GET", "POST"])
@admin_required
def edit_catalogue(catalogue_id: int):
    catalogue = get_catalogue(catalogue_id)
    if request.method == "GET":
        form = {"slug": catalogue.slug, "currency": catalogue.currency, "language": catalogue.language,
                "position": str(catalogue.position)}
        form.update({f"name-{lang}": text for lang, text in catalogue.name.items()})
        form.update({f"tagline-{lang}": text for lang, text in catalogue.tagline.items()})
        if catalogue.publishes_service_levels:
            form["publishes_service_levels"] = "y"
        return _catalogue_page(catalogue, form, {})
    return _save_catalogue(catalogue)


def _save_catalogue(catalogue: Catalogue | None) -> Response:
    form = request.form.to_dict()
    draft = editing.catalogue_draft(db.session(), form, catalogue)
    if not draft.ok:
        return _catalogue_page(catalogue, form, messages(draft), INVALID)
    saved = editing.save_catalogue(db.session(), catalogue, draft, current_user)
    flash(_("Catalogue %(name)s saved.", name=localized(saved.name, current_locale())), "success")
    return redirect(url_for(".index", _anchor=f"catalogue-{saved.slug}"))


@bp.get("/<int:catalogue_id>/export")
@admin_required
def export(catalogue_id: int):
    catalogue = get_catalogue(catalogue_id)
    response = make_response(editing.export_preset(db.session(), catalogue))
    response.content_type = "application/toml; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{catalogue.slug}.toml"'
    return response


@bp.post("/import")
@admin_required
def import_preset():
    """A preset shipped with Forfait (by name) or a file the admin uploads."""
    upload = request.files.get("file")
    name = request.form.get("preset", "")
    try:
        if upload is not None and upload.filename:
            stem = upload.filename.rsplit("/", 1)[-1].removesuffix(".toml")
            text = upload.read(1_000_001)
            if len(text) > 1_000_000:
                raise editing.EditorError(editing.PRESET_REFUSED, "file", reason="larger than 1 MB")
            report = editing.import_preset(db.session(), text.decode("utf-8", errors="replace"), stem, current_user)
        elif name in offers.preset_names():
            report = editing.import_preset(db.session(), None, name, current_user)
        else:
            raise editing.EditorError(editing.CHOICE, "preset")
    except editing.EditorError as error:
        # Shown on the list answered with it, 422: nothing was loaded.
        flash(_(error.message, **error.params), "error")
        response = make_response(index())
        response.status_code = INVALID
        return response
    changed = [f"{action} {row}" for action, row in report.changes if action != "unchanged"]
    flash(_("Preset %(name)s loaded: %(count)d change(s).", name=report.catalogue, count=len(changed)), "success")
    return redirect(url_for(".index", _anchor=f"catalogue-{report.catalogue}"))


# ------------------------------------------------------------------ policies

def _charges(rule: PolicyRule, kinds: list[tuple[str, str]], form: dict[str, str]) -> dict[str, Any]:
    """The charge preview: units for the sample durations under each kind,
    and the estimator's answer for the minutes typed."""
    tried, tried_kind = form.get("try_minutes", ""), form.get("try_kind", "")
    rows = []
    for slug, label in kinds or [("", "")]:
        cells = [units(rule, minutes, slug or None) for minutes in SAMPLE_MINUTES]
        rows.append((label, cells))
    tried_charge = tried_error = None
    if tried.strip():
        try:
            minutes = int(tried.strip())
            if not 0 <= minutes <= 10_000:
                raise ValueError
            tried_charge = units(rule, minutes, tried_kind or None)
        except (ValueError, RuleError):
            tried_error = _("Enter a whole number of minutes, such as 45.")
    return {"samples": SAMPLE_MINUTES, "rows": rows, "tried": tried_charge, "tried_error": tried_error,
            "explanation": explain(tried_charge, translate, translate_plural) if tried_charge else None,
            "unit": rule.unit, "unit_label": UNIT_LABELS[rule.unit], "kinds": kinds}


def _editor_page(template: str, context: dict[str, Any], draft: editing.Draft | None, status: int = 200
                 ) -> Response:
    """A form page with its previews; the fields' messages when refused."""
    return page_or_fragment(template, None, status,
                            errors=messages(draft) if draft is not None and status != 200 else {}, **context)


def _policy_context(catalogue: Catalogue, policy: Policy | None, form: dict[str, str],
                    draft: editing.Draft | None) -> dict[str, Any]:
    locale = current_locale()
    rows = editing.kind_rows(form)
    rows.append(max(rows, default=-1) + 1)  # an empty row to add a kind
    preview = None
    if draft is not None and draft.ok:
        spec = offers.check_policy(draft.values, draft.kinds)
        kinds = [(kind["slug"], localized(kind["name"], locale)) for kind in draft.kinds]
        preview = _charges(spec.rule(), kinds, form)
    # The default kind is one of the kinds the form holds, as typed.
    kind_choices = [(slug, form.get(f"kind-{row}-name-{locale[:2]}") or slug) for row in rows
                    if (slug := form.get(f"kind-{row}-slug", "").strip())]
    return {"catalogue": catalogue, "policy": policy, "form": form, "kind_rows": rows, "preview": preview,
            "kind_choices": kind_choices,
            "unit_labels": UNIT_LABELS, "overage_labels": OVERAGE_LABELS,
            "preview_url": url_for(".preview_policy", catalogue_id=catalogue.id,
                                   policy_id=policy.id if policy else None)}


def _policy_page(catalogue: Catalogue, policy: Policy | None, form: dict[str, str], draft: editing.Draft | None,
                 status: int = 200) -> Response:
    return _editor_page("catalogue_editor/policy.html", _policy_context(catalogue, policy, form, draft), draft,
                        status)


@bp.route("/<int:catalogue_id>/policies/new", methods=["GET", "POST"])
@admin_required
def new_policy(catalogue_id: int):
    catalogue = get_catalogue(catalogue_id)
    if request.method == "GET":
        form = {"unit": "minute", "unit_minutes": "1", "step": "1", "overage_mode": "block",
                "low_balance_percent": "20"}
        return _policy_page(catalogue, None, form, editing.policy_draft(db.session(), form, catalogue, None))
    return _save_policy(catalogue, None)


@bp.route("/policies/<int:policy_id>", methods=["GET", "POST"])
@admin_required
def edit_policy(policy_id: int):
    policy = get_policy(policy_id)
    if policy.superseded_at is not None:
        return _to_current(versions.current_policy(db.session(), policy.slug), ".edit_policy", "policy_id")
    catalogue = policy.catalogue
    if request.method == "GET":
        form = editing.policy_form(policy, catalogue.currency)
        return _policy_page(catalogue, policy, form, editing.policy_draft(db.session(), form, catalogue, policy))
    return _save_policy(catalogue, policy)


def _save_policy(catalogue: Catalogue, policy: Policy | None) -> Response:
    result = _save(catalogue, policy, editing.policy_draft, _policy_page, editing.save_policy,
                   versions.current_policy, ".edit_policy", "policy_id")
    if isinstance(result, Response):
        return result
    saved, done = result
    name = localized(saved.name, current_locale())
    if done == "versioned":
        flash(_("Policy %(name)s saved as version %(version)d: what was sold keeps the terms of the earlier "
                "version.", name=name, version=saved.version), "success")
    else:
        flash(_("Policy %(name)s saved.", name=name), "success")
    return redirect(url_for(".index", _anchor=f"catalogue-{catalogue.slug}"))


@bp.post("/<int:catalogue_id>/policies/preview")
@bp.post("/<int:catalogue_id>/policies/<int:policy_id>/preview")
@admin_required
def preview_policy(catalogue_id: int, policy_id: int | None = None):
    """The charge preview for the form as typed: writes nothing."""
    catalogue = get_catalogue(catalogue_id)
    policy = get_policy(policy_id) if policy_id is not None else None
    if policy is not None and policy.catalogue_id != catalogue.id:
        abort(404)
    form = request.form.to_dict()
    draft = editing.policy_draft(db.session(), form, catalogue, policy)
    context = _policy_context(catalogue, policy, form, draft)
    return page_or_fragment("catalogue_editor/_policy_preview.html", "catalogue_editor/_policy_preview.html",
                            **context)


# ------------------------------------------------------------------ packs

def _pack_context(catalogue: Catalogue, pack: Pack | None, form: dict[str, str],
                  draft: editing.Draft | None) -> dict[str, Any]:
    session = db.session()
    locale = current_locale()
    policies = editing.current_policies(session, catalogue)
    transient = editing.preview_pack(session, catalogue, draft, pack) if draft is not None else None
    card = charges = None
    if transient is not None and not (draft and {"quantity", "price", "policy", "kind"}
                                      & set(draft.errors)):
        card = offers.offer(transient, locale)
        kinds = [(kind.slug, localized(kind.name, locale)) for kind in transient.policy.kinds]
        charges = _charges(transient.policy.rule(), kinds, form)
    history = []
    if pack is not None:
        history = list(session.scalars(select(Pack).where(Pack.slug == pack.slug).order_by(Pack.version.desc())))
    return {"catalogue": catalogue, "pack": pack, "form": form, "card": card, "charges": charges,
            "policies": [(p.slug, localized(p.name, locale)) for p in policies],
            "kinds": [(kind, PACK_KIND_LABELS[kind]) for kind in PACK_KINDS], "history": history,
            "status_labels": STATUS_LABELS,
            "preview_url": url_for(".preview_pack", catalogue_id=catalogue.id,
                                   pack_id=pack.id if pack else None)}


def _pack_page(catalogue: Catalogue, pack: Pack | None, form: dict[str, str], draft: editing.Draft | None,
               status: int = 200) -> Response:
    return _editor_page("catalogue_editor/pack.html", _pack_context(catalogue, pack, form, draft), draft, status)


@bp.route("/<int:catalogue_id>/packs/new", methods=["GET", "POST"])
@admin_required
def new_pack(catalogue_id: int):
    catalogue = get_catalogue(catalogue_id)
    if request.method == "GET":
        form = editing.new_pack_form(catalogue, editing.current_policies(db.session(), catalogue))
        return _pack_page(catalogue, None, form, None)
    return _save_pack(catalogue, None)


@bp.route("/packs/<int:pack_id>", methods=["GET", "POST"])
@admin_required
def edit_pack(pack_id: int):
    pack = get_pack(pack_id)
    if pack.superseded_at is not None:
        return _to_current(versions.current_pack(db.session(), pack.slug), ".edit_pack", "pack_id")
    catalogue = pack.catalogue
    if request.method == "GET":
        form = editing.pack_form(pack)
        return _pack_page(catalogue, pack, form, editing.pack_draft(db.session(), form, catalogue, pack))
    return _save_pack(catalogue, pack)


def _save_pack(catalogue: Catalogue, pack: Pack | None) -> Response:
    result = _save(catalogue, pack, editing.pack_draft, _pack_page, editing.save_pack, versions.current_pack,
                   ".edit_pack", "pack_id")
    if isinstance(result, Response):
        return result
    saved, done = result
    name = localized(saved.name, current_locale())
    if done == "versioned":
        flash(_("Pack %(name)s saved as version %(version)d: what was sold keeps the terms of the earlier version.",
                name=name, version=saved.version), "success")
    elif done == "created":
        flash(_("Pack %(name)s created as a draft: publish it to put it on sale.", name=name), "success")
    else:
        flash(_("Pack %(name)s saved.", name=name), "success")
    return redirect(url_for(".edit_pack", pack_id=saved.id))


@bp.post("/<int:catalogue_id>/packs/preview")
@bp.post("/<int:catalogue_id>/packs/<int:pack_id>/preview")
@admin_required
def preview_pack(catalogue_id: int, pack_id: int | None = None):
    """The storefront card and the charges for the form as typed: writes nothing."""
    catalogue = get_catalogue(catalogue_id)
    pack = get_pack(pack_id) if pack_id is not None else None
    if pack is not None and pack.catalogue_id != catalogue.id:
        abort(404)
    form = request.form.to_dict()
    draft = editing.pack_draft(db.session(), form, catalogue, pack)
    context = _pack_context(catalogue, pack, form, draft)
    return page_or_fragment("catalogue_editor/_pack_preview.html", "catalogue_editor/_pack_preview.html",
                            **context)


def _sale_change(pack_id: int, change: str) -> Response:
    pack = get_pack(pack_id)
    name = localized(pack.name, current_locale())
    try:
        if change == "retire":
            editing.retire(db.session(), pack, clock.now(), current_user)
            flash(_("Pack %(name)s retired: it is no longer on sale; what was sold stays as it was.", name=name),
                  "success")
        else:
            editing.publish(db.session(), pack, clock.now(), current_user)
            flash(_("Pack %(name)s is on sale.", name=name), "success")
    except editing.EditorError as error:
        flash(_(error.message, **error.params), "error")
        return redirect(url_for(".edit_pack", pack_id=pack.id), 303)
    return redirect(url_for(".edit_pack", pack_id=pack.id), 303)


@bp.post("/packs/<int:pack_id>/publish")
@admin_required
def publish(pack_id: int):
    return _sale_change(pack_id, "publish")


@bp.post("/packs/<int:pack_id>/restore")
@admin_required
def restore(pack_id: int):
    return _sale_change(pack_id, "publish")


@bp.post("/packs/<int:pack_id>/retire")
@admin_required
def retire(pack_id: int):
    return _sale_change(pack_id, "retire")
