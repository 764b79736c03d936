"""The command-line groups. Staff script them, so their output is a contract
(tests/test_cli.py): English, one record a line, tab-separated fields; a
usage error is one line on stderr with exit code 2 and nothing on stdout.

    flask catalogue load NAME... [--if-empty]
    flask catalogue list                    SLUG UNIT QUANTITY PRICE NAME
    flask catalogue export SLUG             the live catalogue as a preset (TOML)
    flask billing estimate SLUG MINUTES [--kind KIND]
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from billing.catalogue import editing
from billing.catalogue import offers as presets
from billing.catalogue.models import Catalogue
from billing.ledger.rules import RuleError, explain, units
from billing.models import localized
from common.extensions import db
from common.i18n import plain_amount


class ScriptError(click.UsageError):
    """A usage error shown as one line, without click's usage text: a script
    reading stderr gets the reason and nothing else."""

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class ScriptGroup(AppGroup):
    """Turns every usage error of its commands, click's own included, into a ScriptError."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise ScriptError(error.format_message()) from None


catalogue_cli = ScriptGroup("catalogue", help="Load the catalogue presets and list the packs on sale.")
billing_cli = ScriptGroup("billing", help="Apply the billing rules.")


@catalogue_cli.command("load")
@click.argument("names", nargs=-1, required=True, metavar="NAME...", type=click.Choice(presets.preset_names()))
@click.option("--if-empty", is_flag=True, help="Load only when the database has no catalogue yet.")
def load(names: tuple[str, ...], if_empty: bool) -> None:
    """Create or update the catalogue of each preset NAME, and say what changed."""
    if if_empty and presets.has_catalogue(db.session()):
        click.echo("nothing loaded: the database already has a catalogue")
        return
    for name in names:
        try:
            report = presets.load_preset(db.session(), name)
        except presets.CatalogueError as error:
            raise click.ClickException(str(error)) from None
        for line in report.lines():
            click.echo(line)


@catalogue_cli.command("export")
@click.argument("slug")
def export(slug: str) -> None:
    """The catalogue SLUG as it is sold now, as a preset file on standard output."""
    catalogue = db.session.scalar(select(Catalogue).where(Catalogue.slug == slug))
    if catalogue is None:
        raise ScriptError(f"no catalogue {slug!r}")
    click.echo(editing.export_preset(db.session(), catalogue), nl=False)


@catalogue_cli.command("list")
def list_packs() -> None:
    """One pack on sale a line: SLUG, UNIT, QUANTITY, PRICE, NAME (tab-separated)."""
    for pack in presets.active_packs(db.session()):
        quantity = "unlimited" if pack.unlimited else str(pack.quantity)
        price = "on request" if pack.price is None else plain_amount(pack.price, pack.currency)
        click.echo("\t".join((pack.slug, pack.unit, quantity, price, localized(pack.name, "en"))))


# Unknown options pass through as arguments, so that "-5" reaches MINUTES and
# gets the message about minutes rather than "no such option".
@billing_cli.command("estimate", context_settings={"ignore_unknown_options": True})
@click.argument("slug")
@click.argument("minutes")
@click.option("--kind", help="Request kind; the policy's default when left out.")
def estimate(slug: str, minutes: str, kind: str | None) -> None:
    """Units a ticket of MINUTES billable minutes costs under SLUG (a policy or a pack).

    Prints "<units> <unit>", then how the rule got there.
    """
    policy = presets.find_policy(db.session(), slug)
    if policy is None:
        raise ScriptError(f"no policy or pack {slug!r}")
    try:
        charge = units(policy.rule(), _whole_number(minutes), kind)
    except RuleError as error:
        raise ScriptError(str(error)) from None
    click.echo(f"{charge.units} {charge.unit}")
    click.echo(explain(charge))


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ScriptError(f"minutes must be a whole number, got {text!r}") from None


def init_app(app: Flask) -> None:
    app.cli.add_command(catalogue_cli)
    app.cli.add_command(billing_cli)
    from commands import bank as bank_cli  # imported here: they build on ScriptGroup above
    from commands import jobs as jobs_cli
    from commands import ledger as ledger_cli
    from commands import orders as orders_cli
    from commands import reconcile as stripe_cli
    from commands import staff as staff_cli

    bank_cli.init_app(app)
    jobs_cli.init_app(app)
    ledger_cli.init_app(app)
    orders_cli.init_app(app)
    stripe_cli.init_app(app)
    staff_cli.init_app(app)
