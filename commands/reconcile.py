"""The `stripe` command group, under the contract of common/cli.py: English,
one record a line, tab-separated fields.

    flask stripe reconcile          PAYMENT_ID ORDER_ID OUTCOME

Reconcile asks Stripe about every card payment still open and acts on the
answer as the webhook would (common.payments.card.settle): a payment whose
webhook was lost is credited, an abandoned one cancelled. Idempotent: run it
from cron as often as you like. A payment Stripe could not be asked about
prints ``error`` and the reason, and the command exits 1 after the others.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from flask import Flask

from billing import clock
from commands.cli import ScriptError, ScriptGroup
from commands.orders import can_link

stripe_cli = ScriptGroup("stripe", help="Card payments with Stripe.")


@stripe_cli.command("reconcile")
@click.pass_context
def reconcile(ctx: click.Context) -> None:
    """Re-check every open card payment with Stripe: PAYMENT_ID ORDER_ID OUTCOME."""
    from common import payments

    provider = payments.get("card")
    if provider is None:
        raise ScriptError("card is not in PAYMENT_METHODS")
    reason = provider.unavailable_reason()
    if reason:
        raise ScriptError(reason)
    can_link()
    failed = False
    for payment, outcome, ok in reconcile_all(clock.now()):
        failed = failed or not ok
        said = outcome if ok else f"error\t{outcome}"
        click.echo(f"{payment.id}\t{payment.order_id}\t{said}")
    if failed:
        ctx.exit(1)


def reconcile_all(now: datetime) -> list[tuple[Any, str, bool]]:
    """Settle every open card payment with what Stripe says: (payment,
    outcome or the reason Stripe could not be asked, whether it was asked)."""
    from common.payments import card

    done = []
    for payment in card.open_payments():
        try:
            done.append((payment, card.settle(payment, now=now), True))
        except (card.Busy, card.StripeFailed) as error:
            done.append((payment, str(error), False))
    return done


def init_app(app: Flask) -> None:
    app.cli.add_command(stripe_cli)
