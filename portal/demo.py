"""`flask demo users`: the demo staff member and client that `make run` prints."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from common.extensions import db
from portal import accounts

demo_cli = AppGroup("demo", help="Demo data for trying Forfait out.")

# Also in the README: change both together.
STAFF = {"name": "Sam Staff", "email": "staff@forfait.example", "password": "staff-demo-password"}
CLIENT = {
    "organisation": "Atelier Démo",
    "name": "Claire Client",
    "email": "client@forfait.example",
    "password": "client-demo-password",
}


@demo_cli.command("users")
def users() -> None:
    """Create the demo staff user and client account when absent; print their credentials."""
    if accounts.find_user(db.session, STAFF["email"]) is None:
        accounts.create_staff(db.session, STAFF["name"], STAFF["email"], STAFF["password"])
    client = accounts.find_user(db.session, CLIENT["email"])
    if client is None:
        client = accounts.register(
            db.session, CLIENT["organisation"], CLIENT["name"], CLIENT["email"], CLIENT["password"],
            language="fr", country="FR",
        )
        # The demo client should land on a working portal, not on a verification notice.
        accounts.mark_email_verified(db.session, client)
    click.echo(f"staff:  {STAFF['email']} / {STAFF['password']}")
    click.echo(f"client: {CLIENT['email']} / {CLIENT['password']} (owner of {CLIENT['organisation']})")


def init_app(app) -> None:
    app.cli.add_command(demo_cli)
