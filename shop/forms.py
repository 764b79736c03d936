"""The estimator's query string, checked field by field.

A plain GET form: the same parameters drive the htmx fragment and the page
without JavaScript, so every check lives here and none only in the browser.
"""

from __future__ import annotations

from flask_babel import format_number
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict
from wtforms import Form, HiddenField, SelectField, StringField
from wtforms.validators import ValidationError

from billing.catalogue.models import Pack
from billing.ledger.rules import Charge, units
from billing.models import localized

# One ticket logging more than a week of work is a typo, not a request; the
# cap also keeps absurd numbers away from the arithmetic and the page.
MAX_MINUTES = 10_000


class EstimateForm(Form):
    pack = SelectField(_l("Pack"), validate_choice=False)
    minutes = StringField(_l("Minutes of work"), description=_l("Whole minutes, as staff log them on one request."))
    kind = SelectField(_l("Kind of request"), validate_choice=False,
                       description=_l("Some kinds have a minimum or a fixed price."))
    # The pack whose request kinds the page showed. When a visitor without
    # JavaScript picks another pack, the kind they left selected belongs to
    # the old pack: it is replaced by the new pack's default, not refused.
    shown = HiddenField()

    def __init__(self, formdata: MultiDict, packs: list[Pack], locale: str) -> None:
        super().__init__(formdata)
        self.packs = {pack.slug: pack for pack in packs}
        groups: dict[str, list[tuple[str, str]]] = {}
        for pack in packs:
            provider = localized(pack.catalogue.name, locale)
            groups.setdefault(provider, []).append((pack.slug, localized(pack.name, locale)))
        # With one catalogue, an <optgroup> would only repeat the provider's name.
        self.pack.choices = groups if len(groups) > 1 else next(iter(groups.values()), [])
        if not self.pack.data and packs:
            self.pack.data = packs[0].slug

        chosen = self.chosen_pack
        kinds = chosen.policy.kinds if chosen else []
        self.kind.choices = [(kind.slug, localized(kind.name, locale)) for kind in kinds]
        slugs = [kind.slug for kind in kinds]
        pack_changed = bool(self.shown.data) and self.shown.data != self.pack.data
        if chosen is None or not kinds:
            self.kind.data = None
        elif not self.kind.data or (pack_changed and self.kind.data not in slugs):
            default = chosen.policy.default_kind
            self.kind.data = default if default in slugs else slugs[0]
        self.shown.data = self.pack.data

    @property
    def chosen_pack(self) -> Pack | None:
        return self.packs.get(self.pack.data or "")

    @property
    def asked(self) -> bool:
        """Whether there is anything to estimate: minutes were entered."""
        return bool((self.minutes.data or "").strip())

    def validate_pack(self, field: SelectField) -> None:
        if self.chosen_pack is None:
            raise ValidationError(_("Choose one of the packs in the list."))

    def validate_minutes(self, field: StringField) -> None:
        text = (field.data or "").strip()
        if not text:
            return
        if not text.lstrip("-").isdecimal():
            raise ValidationError(_("Enter a whole number of minutes, such as 45."))
        if text.startswith("-"):
            raise ValidationError(_("Minutes cannot be negative."))
        if len(text) > 6 or int(text) > MAX_MINUTES:
            raise ValidationError(
                _("Enter at most %(max)s minutes: a longer job is best quoted.", max=format_number(MAX_MINUTES))
            )

    def validate_kind(self, field: SelectField) -> None:
        pack = self.chosen_pack
        if pack and pack.policy.kinds and field.data not in {kind.slug for kind in pack.policy.kinds}:
            raise ValidationError(_("Choose one of the request kinds in the list."))

    def charge(self) -> Charge | None:
        """The charge for the entered minutes, once the form is valid."""
        if not self.asked or self.errors or self.chosen_pack is None:
            return None
        return units(self.chosen_pack.policy.rule(), int(self.minutes.data.strip()), self.kind.data)
