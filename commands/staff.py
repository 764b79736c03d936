"""The `staff` command group, under the contract of commands/cli.py:
English, one record a line, tab-separated fields.

    flask staff create EMAIL --name NAME --role admin|agent [--mail-link]
                                     EMAIL ROLE STATUS (active, or invited when a link is mailed)
    flask staff reset-totp EMAIL     EMAIL LOGINS_ENDED

``create`` makes the first staff member (and any other): it asks for the
password twice, unechoed, or with ``--mail-link`` mails a link to choose one
(the site's address, SERVER_NAME, is then required). An address anybody
uses already, or a role other than admin or agent, is a usage error and
nothing is written. The audit log names the command line as who did it.

For an operator, when a staff member has lost the phone that holds their
second factor: nobody can then log in as them until the factor is cleared,
and they cannot clear it themselves (turning it off asks for a code).
"""

from __future__ import annotations

import click
from flask import Flask, current_app

from billing.accounts.models import STAFF_ROLES
from commands.cli import ScriptError, ScriptGroup
from common.extensions import db
from common.identity import accounts, second_factor, staff
from common.mail import delivery

staff_cli = ScriptGroup("staff", help="Look after the staff's accounts.")


@staff_cli.command("create")
@click.argument("email")
@click.option("--name", required=True, help="The person's name, as staff and clients will see it.")
@click.option("--role", required=True, type=click.Choice(STAFF_ROLES),
              help="agent: the desk and payments; admin: also the catalogue, refunds, credit and the team.")
@click.option("--language", default="en", type=click.Choice(("en", "fr", "es")), show_default=True,
              help="The language of their mail.")
@click.option("--mail-link", is_flag=True, help="Mail a link to choose a password instead of asking for it.")
def create(email: str, name: str, role: str, language: str, mail_link: bool) -> None:
    """Create the staff member EMAIL with NAME and ROLE: asks for the
    password (twice, hidden), or with --mail-link mails a link to choose it."""
    if mail_link and not current_app.config.get("SERVER_NAME"):
        raise ScriptError("SERVER_NAME is not set (e.g. FORFAIT_SERVER_NAME=support.example.com): "
                          "the link in the mail needs the site's address")
    if accounts.find_user(db.session(), email) is not None:
        raise ScriptError(f"{accounts.normalise_email(email)} is already used by an account")
    password = None if mail_link else click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    try:
        user = staff.create(db.session(), email, name, role, password=password, language=language)
    except staff.EmailTaken:
        raise ScriptError(f"{accounts.normalise_email(email)} is already used by an account") from None
    except staff.AccountError as error:
        raise ScriptError(f"{error.field}: {error.message}") from None
    status = "active"
    if mail_link:
        sent = delivery.deliver_now(delivery.queued(f"staff-invite:{user.id}"))
        status = "invited" if sent else "invited (the mail is queued: the mail server did not take it yet)"
    click.echo(f"{user.email}\t{user.role}\t{status}")


@staff_cli.command("reset-totp")
@click.argument("email")
def reset_totp(email: str) -> None:
    """Clear the second factor of the staff member EMAIL and end every login
    of theirs (the audit log keeps it). Their next login asks for the
    password only, then for a new second factor if STAFF_TOTP_REQUIRED."""
    user = accounts.find_user(db.session(), email)
    if user is None or not user.is_staff:
        raise ScriptError(f"no staff member uses {email!r}")
    ended = second_factor.reset(db.session(), user)
    click.echo(f"{user.email}\t{ended}")


def init_app(app: Flask) -> None:
    app.cli.add_command(staff_cli)
