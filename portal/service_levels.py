"""The service levels, as admins set them (audited): opening hours per weekday in the
provider's time zone, the target of first response per criticality, and
the holidays. The desk counts due times with them and the public service
page its figures (billing.service).

Who may change them is decided here, once, for every view of the blueprint.
Bad input goes back to the form with the message beside its field (422),
and nothing is written."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, StringField

from billing import clock
from billing.desk.models import CRITICALITIES
from billing.service import figures, levels
from billing.service.hours import ScheduleError, format_ranges, timezones
from billing.service.models import Holiday
from common.extensions import db
from common.fragments import page_or_fragment
from common.i18n import weekday_name
from common.identity.access import INVALID, admin_required

bp = Blueprint("service_levels", __name__, url_prefix="/staff/service-levels")

CRITICALITY_LABELS = {"critical": _l("Critical"), "high": _l("High"), "normal": _l("Normal"), "low": _l("Low")}
HOURS_HELP = _l("Such as 09:00-12:00, 13:30-18:00. Empty: closed.")


class LevelsForm(FlaskForm):
    timezone = StringField(_l("Time zone"), render_kw={"list": "timezones", "autocomplete": "off",
                                                        "spellcheck": "false", "maxlength": 64},
                           description=_l("Opening hours and holidays are read in this zone, such as Europe/Paris."))


for _index, _day in enumerate(levels.WEEKDAYS):
    # The weekday's name in the reader's language, from CLDR (Babel).
    setattr(LevelsForm, _day, StringField(LazyString(weekday_name, _index), description=HOURS_HELP,
                                          render_kw={"maxlength": 200, "autocomplete": "off"}))
for _level in CRITICALITIES:
    setattr(LevelsForm, f"target_{_level}", StringField(
        CRITICALITY_LABELS[_level], description=_l("Hours within opening hours, such as 4 or 1.5."),
        render_kw={"inputmode": "decimal", "maxlength": 7, "autocomplete": "off"}))


class HolidayForm(FlaskForm):
    day = DateField(_l("Date"))
    name = StringField(_l("Name"), render_kw={"maxlength": levels.MAX_HOLIDAY_NAME},
                       description=_l("Such as Christmas Day: shown on the desk's settings only."))


@bp.before_request
@admin_required
def _admins_only() -> None:
    """Every view: admins only (login for anonymous, 403 for agents and clients)."""


def _filled(form: LevelsForm) -> LevelsForm:
    """The form with the settings in force, when it was not just typed."""
    current = levels.levels(db.session())
    form.timezone.data = current.schedule.timezone
    for index, day in enumerate(levels.WEEKDAYS):
        form[day].data = format_ranges(current.schedule.week[index])
    for level in CRITICALITIES:
        minutes = int(current.targets[level].total_seconds() // 60)
        hours, rest = divmod(minutes, 60)
        form[f"target_{level}"].data = f"{hours}:{rest:02d}" if rest else str(hours)
    return form


def _page(form: LevelsForm | None = None, holiday_form: HolidayForm | None = None, status: int = 200):
    return page_or_fragment(
        "service/settings.html", None, status, form=form or _filled(LevelsForm()),
        holiday_form=holiday_form or HolidayForm(formdata=None), holidays=levels.holidays(db.session()),
        weekdays=levels.WEEKDAYS, criticalities=CRITICALITIES, timezones=timezones(),
        current=levels.levels(db.session()))


def _blame(form: FlaskForm, error: ScheduleError) -> None:
    errors = error.errors if isinstance(error, levels.SettingsInvalid) else [error]
    for each in errors:
        target = form[each.field] if each.field and each.field in form else None
        if target is None:
            raise error
        target.errors = [*target.errors, _(each.message, **each.params)]


@bp.get("")
def show():
    return _page()


@bp.post("")
def save():
    form = LevelsForm()
    if not form.validate_on_submit():
        return _page(form, status=INVALID)
    try:
        settings = levels.read_settings(form.timezone.data or "", {d: form[d].data or "" for d in levels.WEEKDAYS},
                                        {c: form[f"target_{c}"].data or "" for c in CRITICALITIES})
    except ScheduleError as error:
        _blame(form, error)
        return _page(form, status=INVALID)
    levels.save_settings(db.session(), settings, by=current_user._get_current_object(), now=clock.now())
    figures.forget()
    flash(_("The service levels are saved: due times and the published figures count with them."), "success")
    return redirect(url_for("service_levels.show"))


@bp.post("/holidays")
def add_holiday():
    form = HolidayForm()
    if not form.validate_on_submit():
        if form.day.errors:
            form.day.errors = [_("Choose a date.")]
        return _page(holiday_form=form, status=INVALID)
    try:
        holiday = levels.add_holiday(db.session(), form.day.data.isoformat() if form.day.data else "",
                                     form.name.data or "", by=current_user._get_current_object(), now=clock.now())
    except ScheduleError as error:
        _blame(form, error)
        return _page(holiday_form=form, status=INVALID)
    figures.forget()
    flash(_("%(name)s is a holiday: nothing falls due that day.", name=holiday.name), "success")
    return redirect(url_for("service_levels.show") + "#holidays")


@bp.post("/holidays/<int:holiday_id>/remove")
def remove_holiday(holiday_id: int):
    holiday = db.session.get(Holiday, holiday_id)
    if holiday is None:
        abort(404)
    name = holiday.name
    levels.remove_holiday(db.session(), holiday, by=current_user._get_current_object())
    figures.forget()
    flash(_("%(name)s is no longer a holiday.", name=name), "success")
    return redirect(url_for("service_levels.show") + "#holidays")
