"""The `orders` command group, under the contract of common/cli.py: English,
one record a line, tab-separated fields. Both commands are idempotent: run
them from cron as often as you like; each order is reminded once and
cancelled once.

    flask orders remind             ORDER_ID EMAIL     (orders reminded now)
    flask orders cancel-overdue     ORDER_ID EMAIL     (orders cancelled now)
"""

from __future__ import annotations

import click
from flask import Flask, current_app

from billing import clock
from billing.orders.models import Order
from commands.cli import ScriptError, ScriptGroup

orders_cli = ScriptGroup("orders", help="Remind and cancel orders waiting for a transfer or a cheque.")


def can_link() -> None:
    """The mails link to the order: outside a request, only SERVER_NAME says where the site is."""
    if not current_app.config.get("SERVER_NAME"):
        raise ScriptError("SERVER_NAME is not set (e.g. FORFAIT_SERVER_NAME=shop.example.com): "
                          "the mails this sends link to the site")


def _echo(done: list[Order]) -> None:
    for order in done:
        click.echo(f"{order.id}\t{order.placed_by.email if order.placed_by else ''}")


@orders_cli.command("remind")
def remind() -> None:
    """Mail a reminder for each order waiting TRANSFER_REMIND_DAYS days or more, once."""
    from common import payments

    can_link()
    _echo(payments.remind_due(clock.now()))


@orders_cli.command("cancel-overdue")
def cancel_overdue() -> None:
    """Cancel each order still unpaid TRANSFER_CANCEL_DAYS days after it was placed, and tell the client."""
    from common import payments

    can_link()
    _echo(payments.cancel_overdue(clock.now()))


def init_app(app: Flask) -> None:
    app.cli.add_command(orders_cli)
