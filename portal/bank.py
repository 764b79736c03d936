"""Staff import the bank's statements (billing.bank.imports): the upload
form and what each line became, the lines that wait for a person (assign to
an order, or discard), and the CSV column mappings, one per bank (listed,
changed, deleted; each change in the audit log).

Staff only (``staff_required``): a client or anybody else gets 403, an
anonymous visitor the login page. A bad upload (too large, unreadable,
malformed) is answered 413 or 422 with the reason beside the field, and
nothing is written."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from billing import clock
from billing.bank import imports, mappings, statements
from billing.bank.models import CREDITED, BankImport, BankLine, BankMapping
from billing.errors import BillingError
from common import payments
from common.extensions import db
from common.fragments import page_or_fragment, wants_fragment
from common.i18n import money
from common.identity.access import INVALID, staff_required
from common.identity.forms import draw_token, one_time_token

bp = Blueprint("bank", __name__, url_prefix="/portal/staff/bank")

# What one statement file may weigh: a year of a busy account's camt.053 is well under it.
MAX_BYTES = 5 * 1024 * 1024
FORMAT_CHOICES = [SelectChoice("", _l("Read it from the file")), SelectChoice("camt053", "ISO 20022 camt.053"),
                  SelectChoice("camt054", "ISO 20022 camt.054"), SelectChoice("mt940", "SWIFT MT940"),
                  SelectChoice("csv", _l("CSV, with a mapping"))]


class UploadForm(FlaskForm):
    statement = FileField(_l("Statement file"))
    format = SelectField(_l("Format"), choices=FORMAT_CHOICES, default="")
    mapping = SelectField(_l("CSV mapping"), choices=[], default="", validate_choice=False)
    token = one_time_token()


class AssignForm(FlaskForm):
    order = IntegerField(_l("Order number"), validators=[InputRequired(), NumberRange(min=1, max=2**31 - 1)])


class DiscardForm(FlaskForm):
    note = TextAreaField(_l("Why it pays no order"), validators=[DataRequired(), Length(max=500)])


class MappingForm(FlaskForm):
    name = StringField(_l("Bank"), validators=[DataRequired(), Length(max=60)])
    delimiter = SelectField(_l("Separator"), choices=[
        SelectChoice(";", _l("semicolon (;)")), SelectChoice(",", _l("comma (,)")), SelectChoice("\t", _l("tab")),
        SelectChoice("|", _l("vertical bar (|)"))])
    date_column = StringField(_l("Date column"), validators=[DataRequired(), Length(max=60)])
    date_format = StringField(_l("Date format"), default="%d.%m.%Y", validators=[DataRequired(), Length(max=20)],
                              description=_l("%(day)s day, %(month)s month, %(year)s year: 31.12.2026 is %(example)s.",
                                              day="%d", month="%m", year="%Y", example="%d.%m.%Y"))
    amount_column = StringField(_l("Amount column (signed)"), validators=[Optional(), Length(max=60)])
    credit_column = StringField(_l("Or: credit column"), validators=[Optional(), Length(max=60)])
    debit_column = StringField(_l("and debit column"), validators=[Optional(), Length(max=60)])
    decimal_comma = BooleanField(_l("Amounts are written with a decimal comma (1.234,50)"))
    currency_column = StringField(_l("Currency column"), validators=[Optional(), Length(max=60)],
                                  description=_l("Empty: every line is in the currency below."))
    currency = StringField(_l("Currency"), default="EUR", validators=[DataRequired(), Length(max=3)])
    text_column = StringField(_l("Text column"), validators=[DataRequired(), Length(max=60)])
    payer_column = StringField(_l("Payer column"), validators=[Optional(), Length(max=60)])
    reference_column = StringField(_l("Reference column"), validators=[Optional(), Length(max=60)])
    bank_ref_column = StringField(_l("Bank's own line reference column"), validators=[Optional(), Length(max=60)],
                                  description=_l("Recognises a line imported twice; without it, its fields do."))


def _upload_form(form: UploadForm | None = None) -> UploadForm:
    form = form or UploadForm(formdata=None)
    form.mapping.choices = [SelectChoice("", _("None")),
                            *(SelectChoice(m.name, m.name) for m in mappings.all_mappings(db.session()))]
    draw_token(form.token)
    return form


def _index(form: UploadForm | None = None, status: int = 200):
    return render_template("portal/bank.html", form=_upload_form(form), imports=imports.recent_imports(db.session()),
                           waiting=len(imports.waiting(db.session())), max_mb=MAX_BYTES // (1024 * 1024)), status


def _refusal(error: BillingError) -> str:
    """A refused file's reason, the line it names ("line 14", as the parser says it) in the reader's language."""
    params = dict(error.params)
    where = params.get("where")
    if isinstance(where, str) and where.startswith("line "):
        params["where"] = _("line %(number)s", number=where.removeprefix("line "))
    return _(error.message, **params)


@bp.get("/")
@staff_required
def index():
    return _index()


@bp.post("/imports")
@staff_required
def upload():
    request.max_content_length = MAX_BYTES + 64 * 1024  # the file and the form's few fields
    try:
        form = UploadForm()
        valid = form.validate_on_submit()
    except RequestEntityTooLarge:
        abort(413)
    if not valid:
        return _index(_upload_form(form), INVALID)
    file = form.statement.data
    data = file.read(MAX_BYTES + 1) if file else b""
    if not data:
        form.statement.errors.append(_("Choose the statement file your bank gave you."))
        return _index(_upload_form(form), INVALID)
    if len(data) > MAX_BYTES:
        abort(413)
    format_ = form.format.data or statements.guess_format(data, file.filename or "")
    chosen = None
    if format_ == "csv":
        row = db.session.scalar(select(BankMapping).where(BankMapping.name == form.mapping.data))
        if row is None:
            form.mapping.errors = [_("Choose the column mapping of this bank's CSV file.")]
            return _index(_upload_form(form), INVALID)
        chosen = imports.mapping_of(row)
    try:
        done = imports.import_statement(db.session(), data, format=format_, filename=file.filename or "statement",
                                        seller=payments.seller(), now=clock.now(), mapping=chosen,
                                        by=current_user._get_current_object(), token=form.token.data)
    except BillingError as error:
        target = form.mapping if error.field == "mapping" else form.format if error.field == "format" else \
            form.statement
        target.errors = [*target.errors, _refusal(error)]
        return _index(_upload_form(form), INVALID)
    return redirect(url_for("bank.show", import_id=done.bank_import.id))


@bp.get("/imports/<int:import_id>")
@staff_required
def show(import_id: int):
    bank_import = db.session.get(BankImport, import_id)
    if bank_import is None:
        abort(404)
    lines = imports.results(db.session(), bank_import)
    counts: dict[str, int] = {}
    for line in lines:
        counts[line.outcome] = counts.get(line.outcome, 0) + 1
    return render_template("portal/bank_import.html", bank_import=bank_import, lines=lines, counts=counts,
                           outcomes=imports.OUTCOMES)


def _forms(line: BankLine, sent: FlaskForm | None = None) -> dict[str, FlaskForm]:
    """The line's two forms, the one just sent kept with its errors. Many lines
    share the page: each field's id (and its label) is the line's."""
    assign_form = sent if isinstance(sent, AssignForm) else AssignForm(formdata=None, order=line.suggested_order_id)
    discard_form = sent if isinstance(sent, DiscardForm) else DiscardForm(formdata=None)
    assign_form.order.id = f"order-{line.id}"
    discard_form.note.id = f"note-{line.id}"
    return {"assign_form": assign_form, "discard_form": discard_form}


def _waiting(forms: dict[int, FlaskForm] | None = None, status: int = 200):
    lines = imports.waiting(db.session())
    built = {line.id: _forms(line, (forms or {}).get(line.id)) for line in lines}
    return render_template("portal/bank_lines.html", lines=lines,
                           assign={key: pair["assign_form"] for key, pair in built.items()},
                           discard={key: pair["discard_form"] for key, pair in built.items()}), status


def _answer(line: BankLine, sent: FlaskForm, status: int, said: str = "", refused: str = ""):
    """What a line's form gets back. From the page with htmx: the line's row
    as it now is, and how many still wait (the row says what happened, nothing
    is flashed). Without JavaScript: back to the page, or the page again with
    the form's errors."""
    if wants_fragment():
        return page_or_fragment("portal/_bank_line.html", None, status, line=line, said=said,
                                refused=refused, oob=True, waiting=len(imports.waiting(db.session())),
                                **_forms(line, sent))
    if status == 200:
        flash(said, "success" if line.status in CREDITED else "info")
        return redirect(url_for("bank.waiting"))
    if refused:
        flash(refused, "error")
    return _waiting({line.id: sent}, status)


@bp.get("/lines")
@staff_required
def waiting():
    return _waiting()


def _line(line_id: int) -> BankLine:
    line = db.session.get(BankLine, line_id)
    if line is None:
        abort(404)
    return line


@bp.post("/lines/<int:line_id>/assign")
@staff_required
def assign(line_id: int):
    line = _line(line_id)
    form = AssignForm()
    refused = ""
    if form.validate_on_submit():
        try:
            done = imports.assign(db.session(), line.id, form.order.data, seller=payments.seller(), now=clock.now(),
                                  by=current_user._get_current_object())
        except BillingError as error:
            form.order.errors = [_(error.message, **error.params)]
            if error.field is None:  # about the line, which the page may no longer list
                refused = form.order.errors[0]
        else:
            return _answer(line, form, 200, said=outcome_message(done))
    return _answer(line, form, INVALID, refused=refused)


@bp.post("/lines/<int:line_id>/discard")
@staff_required
def discard(line_id: int):
    line = _line(line_id)
    form = DiscardForm()
    refused = ""
    if form.validate_on_submit():
        try:
            imports.discard(db.session(), line.id, note=form.note.data, now=clock.now(),
                            by=current_user._get_current_object())
        except BillingError as error:
            form.note.errors = [_(error.message, **error.params)]
            if error.field is None:
                refused = form.note.errors[0]
        else:
            return _answer(line, form, 200, said=_("The line of %(day)s is set aside: it pays no order.",
                                                   day=line.booked_on.isoformat()))
    return _answer(line, form, INVALID, refused=refused)


def outcome_message(done: imports.LineOutcome) -> str:
    line = done.line
    if done.outcome == "partial":
        return _("Order %(number)d: %(amount)s recorded; %(missing)s still awaited.", number=done.order_id,
                 amount=money(line.amount, line.currency), missing=money(line.missing, line.currency))
    if done.outcome == "overpaid":
        return _("Order %(number)d: %(amount)s recorded, %(excess)s more than the total. Flagged below: "
                 "refund or credit the difference.", number=done.order_id, amount=money(line.amount, line.currency),
                 excess=money(line.excess, line.currency))
    return _("Order %(number)d is paid: credited and invoiced.", number=done.order_id)


# --- Mappings --------------------------------------------------------------------------

def _mapping_page(form: MappingForm, row: BankMapping | None = None, status: int = 200):
    return render_template("portal/bank_mapping.html", form=form, row=row,
                           mappings=mappings.all_mappings(db.session())), status


@bp.get("/mappings")
@staff_required
def new_mapping():
    return _mapping_page(MappingForm(formdata=None))


@bp.get("/mappings/<int:mapping_id>")
@staff_required
def edit_mapping(mapping_id: int):
    row = db.session.get(BankMapping, mapping_id)
    if row is None:
        abort(404)
    return _mapping_page(MappingForm(formdata=None, obj=row), row)


@bp.post("/mappings", defaults={"mapping_id": None})
@bp.post("/mappings/<int:mapping_id>")
@staff_required
def save_mapping(mapping_id: int | None):
    row = db.session.get(BankMapping, mapping_id) if mapping_id is not None else None
    if mapping_id is not None and row is None:
        abort(404)
    form = MappingForm()
    if form.validate_on_submit():
        values = {name: (getattr(form, name).data or "") for name in (
            "name", "delimiter", "date_format", "currency", *mappings.COLUMNS)}
        try:
            saved = mappings.save(db.session(), statements.Mapping(**values, decimal_comma=form.decimal_comma.data),
                                  now=clock.now(), by=current_user._get_current_object(), mapping_id=mapping_id)
        except BillingError as error:
            target = getattr(form, error.field or "name", form.name)
            target.errors = [*target.errors, _(error.message, **error.params)]
        else:
            flash(_("The mapping %(name)s is saved: choose it when you import this bank's CSV file.",
                    name=saved.name), "success")
            return redirect(url_for("bank.index"))
    return _mapping_page(form, row, INVALID)


@bp.post("/mappings/<int:mapping_id>/delete")
@staff_required
def delete_mapping(mapping_id: int):
    """Staff who may make a mapping may delete it: the imports it read stay as they were."""
    try:
        name = mappings.delete(db.session(), mapping_id, by=current_user._get_current_object())
    except mappings.MappingError:  # deleted meanwhile, or never was
        abort(404)
    flash(_("The mapping %(name)s is deleted.", name=name), "info")
    return redirect(url_for("bank.new_mapping"))
