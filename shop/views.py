"""The public storefront: the catalogue, a pack's page and the estimator."""

from __future__ import annotations

from itertools import groupby

from flask import Blueprint, abort, make_response, render_template, request
from werkzeug.datastructures import MultiDict

from billing.catalogue.offers import Offer, active_pack, active_packs, offer
from billing.ledger.rules import explain
from billing.models import Catalogue, Pack
from common.extensions import db, htmx
from common.fragments import wants_fragment
from common.i18n import current_locale, translate, translate_plural
from shop.forms import EstimateForm

bp = Blueprint("shop", __name__)


def _sections(packs: list[Pack], locale: str) -> list[tuple[Catalogue, list[tuple[str, list[Offer]]]]]:
    """Offers by catalogue, then by kind of pack, in the order active_packs sorts them."""
    sections = []
    for _catalogue_id, group in groupby(packs, lambda pack: pack.catalogue_id):
        of_catalogue = list(group)
        groups = [(kind, [offer(pack, locale) for pack in of_kind])
                  for kind, of_kind in groupby(of_catalogue, lambda pack: pack.kind)]
        sections.append((of_catalogue[0].catalogue, groups))
    return sections


@bp.get("/")
def catalogue():
    return render_template("shop/catalogue.html", sections=_sections(active_packs(db.session()), current_locale()))


@bp.get("/packs/<slug>")
def pack(slug: str):
    found = active_pack(db.session(), slug)
    if found is None:
        abort(404)
    locale = current_locale()
    form = EstimateForm(MultiDict({"pack": slug}), [found], locale)
    return render_template("shop/pack.html", offer=offer(found, locale), form=form, charge=None)


@bp.get("/estimate")
def estimate():
    """The full page without JavaScript; for htmx, the part that changed.

    Picking another pack re-renders the whole estimator (its request kinds
    differ); typing minutes or choosing a kind only re-renders the result.
    """
    locale = current_locale()
    form = EstimateForm(request.args, active_packs(db.session()), locale)
    if request.args:
        form.validate()
    charge = form.charge()
    context = {
        "form": form,
        "charge": charge,
        "explanation": explain(charge, translate, translate_plural) if charge else None,
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
