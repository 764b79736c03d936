"""The `ledger` command group, under the contract of common/cli.py: English,
one record a line, tab-separated fields; a usage error is one line on stderr
with exit code 2 and nothing on stdout.

    flask ledger verify                     every breach, or "ok" and counts
    flask ledger statement ACCOUNT --from DATE --to DATE [--csv]
                                            BALANCE UNIT DATE MOVEMENT LOT TICKET UNITS DETAIL
    flask ledger expire [--warn-days N]     expiry entries for lapsed lots, expiry warnings

A statement has, per balance: "opening" (the balance net of debt on the
first day), the movements, "closing" (the same on the last day). MOVEMENT is
grant, consume (per ticket, undated), debt (charged beyond the balance under
an ``allow`` policy), debt-reduced (what a correction of the ticket's time
took off a debt), debt-paid (what a grant paid of a debt), expire, refund or
adjust: their UNITS add up from opening to closing. Then
overage-pending, overage-approved (DETAIL ends with the amount billed, when
known) and overage-declined, whose UNITS were asked beyond the balance and
never moved it. An account without any balance prints its opening and
closing (0) with BALANCE and UNIT empty.
"""

from __future__ import annotations

import io
from datetime import date

import click
from flask import Flask

from billing import clock
from billing.accounts.models import Account
from billing.ledger import services as ledger
from billing.ledger.statement import CSV_HEADER, StatementError, rows, statement
from billing.ledger.verify import verify
from billing.notifications import alerts
from commands.cli import ScriptError, ScriptGroup
from common.extensions import db
from common.safety import csv_writer

ledger_cli = ScriptGroup("ledger", help="Check the ledger, print statements, expire lapsed lots.")


@ledger_cli.command("verify")
@click.pass_context
def verify_command(ctx: click.Context) -> None:
    """Check invariants 1 to 6 of DESIGN.md across the database: print every
    breach and exit 1, or print "ok" and what was checked."""
    report = verify(db.session())
    for breach in report.breaches:
        click.echo(breach)
    if not report.ok:
        ctx.exit(1)
    click.echo("ok\t" + "\t".join(f"{count} {name}" for name, count in report.counts.items()))


def _day(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ScriptError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


@ledger_cli.command("statement")
@click.argument("account_id", metavar="ACCOUNT")
@click.option("--from", "start", required=True, metavar="DATE", help="First day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day, YYYY-MM-DD (included).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line instead of tab-separated lines.")
def statement_command(account_id: str, start: str, end: str, as_csv: bool) -> None:
    """The credit statement of account ACCOUNT (its id) for a period, in UTC days."""
    first, last = _day("--from", start), _day("--to", end)
    account = db.session.get(Account, int(account_id)) if account_id.isdigit() else None
    if account is None:
        raise ScriptError(f"no account {account_id!r}")
    try:
        lines = rows(statement(db.session(), account, first, last, now=clock.now()))
    except StatementError as error:
        raise ScriptError(str(error)) from None
    if as_csv:
        out = io.StringIO()
        writer = csv_writer(out, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(lines)
        click.echo(out.getvalue(), nl=False)
        return
    for line in lines:
        click.echo("\t".join(line))


@ledger_cli.command("expire")
@click.option("--warn-days", type=click.IntRange(min=0), default=30, show_default=True,
              help="Also warn about lots expiring within this many days.")
def expire_command(warn_days: int) -> None:
    """Write the expiry of every lapsed lot, then record expiry warnings (run it daily)."""
    now = clock.now()
    done = ledger.expire(db.session(), key=f"expire:{now.isoformat()}", now=now)
    click.echo(f"expired\t{len(done.entries)} lot(s)")
    click.echo(f"warned\t{alerts.warn_expiring(db.session(), now=now, days=warn_days)} lot(s)")


def init_app(app: Flask) -> None:
    app.cli.add_command(ledger_cli)
