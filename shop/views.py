"""The public storefront: the catalogue, a pack's page and the estimator."""

from __future__ import annotations

from itertools import groupby

from flask import Blueprint, abort, make_response, render_template, request
from flask_babel import get_locale, get_translations
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from billing.catalogue import Offer, active_pack, active_packs, offer
from billing.models import Catalogue, Pack, Translated, localized
from billing.rules import explain, unit_label
from common.extensions import db, htmx
from common.fragments import wants_fragment
from shop.forms import EstimateForm

bp = Blueprint("shop", __name__)


def _locale() -> str:
    return str(get_locale())


def _ngettext(singular: str, plural: str, num: int) -> str:
    # billing.rules fills in its own placeholders; flask_babel's ngettext would
    # fill in ``num`` first and fail on the others.
    return get_translations().ngettext(singular, plural, num)


def _gettext(message: str) -> str:
    return get_translations().gettext(message)


@bp.app_template_filter("localized")
def localized_filter(text: Translated | None) -> str:
    """A provider's text in the visitor's language."""
    return localized(text, _locale())


@bp.app_template_filter()
def duration(minutes: int) -> str:
    """``11 h 10 min``: working time the way a client reads a balance."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return _("%(num)d min", num=rest)
    if not rest:
        return _("%(num)d h", num=hours)
    return _("%(hours)d h %(minutes)d min", hours=hours, minutes=rest)


@bp.app_template_filter()
def quantity(amount: int, unit: str) -> str:
    """A quantity of units; time is shown as time, not as a count of minutes."""
    if unit == "minute":
        return duration(amount)
    return unit_label(unit, amount, _ngettext)  # type: ignore[arg-type]


def _sections(packs: list[Pack], locale: str) -> list[tuple[Catalogue, list[tuple[str, list[Offer]]]]]:
    """Offers by catalogue, then by kind of pack, in the order active_packs sorts them."""
    sections = []
    for _catalogue_id, of_catalogue in groupby(packs, lambda pack: pack.catalogue_id):
        of_catalogue = list(of_catalogue)
        groups = [(kind, [offer(pack, locale) for pack in of_kind]) for kind, of_kind in groupby(of_catalogue, lambda pack: pack.kind)]
        sections.append((of_catalogue[0].catalogue, groups))
    return sections


@bp.get("/")
def catalogue():
    return render_template("shop/catalogue.html", sections=_sections(active_packs(db.session), _locale()))


@bp.get("/packs/<slug>")
def pack(slug: str):
    found = active_pack(db.session, slug)
    if found is None:
        abort(404)
    locale = _locale()
    form = EstimateForm(MultiDict({"pack": slug}), [found], locale)
    return render_template("shop/pack.html", offer=offer(found, locale), form=form, charge=None)


@bp.get("/estimate")
def estimate():
    """The full page without JavaScript; for htmx, the part that changed.

    Picking another pack re-renders the whole estimator (its request kinds
    differ); typing minutes or choosing a kind only re-renders the result.
    """
    locale = _locale()
    form = EstimateForm(request.args, active_packs(db.session), locale)
    if request.args:
        form.validate()
    charge = form.charge()
    context = {
        "form": form,
        "charge": charge,
        "explanation": explain(charge, _gettext, _ngettext) if charge else None,
        "offer": offer(form.chosen_pack, locale) if form.chosen_pack else None,
        "replace_url": True,
    }
    if wants_fragment() and htmx.target == "estimator":
        body = render_template("shop/_estimator.html", **context)
    elif wants_fragment():
        body = render_template("shop/_estimate_result.html", field_messages=True, **context)
    else:
        body = render_template("shop/estimate.html", **context)
    response = make_response(body, 400 if form.errors else 200)
    # One URL answers with a page or a fragment: caches must keep them apart.
    response.vary.add("HX-Request")
    return response
