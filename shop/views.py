"""The public storefront: the catalogue, a pack's page and the estimator."""

from __future__ import annotations

from itertools import groupby

from flask import Blueprint, abort, render_template, request
from werkzeug.datastructures import MultiDict

from billing.catalogue.models import Catalogue, Pack
from billing.catalogue.offers import Offer, active_pack, active_packs, offer
from billing.ledger.rules import explain
from common.extensions import db, htmx
from common.fragments import page_or_fragment, wants_fragment
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
    # Picking another pack swaps the whole estimator; typing, only the result,
    # which then also replaces the fields' notes, out of band.
    whole = htmx.target == "estimator"
    fragment = "shop/_estimator.html" if whole else "shop/_estimate_result.html"
    return page_or_fragment("shop/estimate.html", fragment, 400 if form.errors else 200,
                            field_messages=wants_fragment() and not whole, **context)
