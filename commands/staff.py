"""The `staff` command group, under the contract of commands/cli.py:
English, one record a line, tab-separated fields.

    flask staff reset-totp EMAIL     EMAIL LOGINS_ENDED

For an operator, when a staff member has lost the phone that holds their
second factor: nobody can then log in as them until the factor is cleared,
and they cannot clear it themselves (turning it off asks for a code).
"""

from __future__ import annotations

import click
from flask import Flask

from commands.cli import ScriptError, ScriptGroup
from common.extensions import db
from common.identity import accounts, second_factor

staff_cli = ScriptGroup("staff", help="Look after the staff's accounts.")


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
