"""The `jobs` command group: every periodic duty of Forfait, under the
contract of common/cli.py (English, one record a line, tab-separated).

    flask jobs run                  DUTY COUNT WHAT     (one pass, then exit)
    flask jobs worker [--interval SECONDS] [--runs N]

The duties, in order: expire, warn (lots expiring), renew (order the next
period of subscriptions), remind, cancel (overdue transfers), stripe, mail.

Run ``jobs run`` every minute from cron or a systemd timer. Each duty is
idempotent and safe beside a second run at the same moment: expiry entries
re-read their lots under the account's lock, warnings and reminders are
keyed once per lot or order, the outbox claims each message before sending
it. A duty that fails does not stop the others; the command then exits 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import click
from flask import Flask, current_app

from billing import clock
from commands.cli import ScriptGroup
from common.extensions import db

jobs_cli = ScriptGroup("jobs", help="Run the periodic duties: expiry, warnings, reminders, mail, Stripe.")


@dataclass(frozen=True)
class Done:
    duty: str
    count: int
    what: str
    ok: bool = True

    def line(self) -> str:
        return f"{self.duty}\t{self.count}\t{self.what}"


def _expire(now: datetime) -> Done:
    from billing.ledger import services as ledger

    op = ledger.expire(db.session(), key=f"expire:{now.isoformat()}", now=now)
    return Done("expire", len(op.entries), "lot(s) expired")


def _warn(now: datetime) -> Done:
    from billing.notifications import alerts

    days = current_app.config["EXPIRY_WARNING_DAYS"]
    return Done("warn", alerts.warn_expiring(db.session(), now=now, days=days), f"lot(s) expiring within {days} days")


def _remind(now: datetime) -> Done:
    from common import payments

    return Done("remind", len(payments.remind_due(now)), "order(s) reminded")


def _cancel(now: datetime) -> Done:
    from common import payments

    return Done("cancel", len(payments.cancel_overdue(now)), "order(s) cancelled")


def _renew(now: datetime) -> Done:
    from common import payments

    return Done("renew", len(payments.renew_subscriptions(now)), "subscription renewal(s) ordered")


def _reconcile(now: datetime) -> Done:
    from commands.reconcile import reconcile_all
    from common import payments

    provider = payments.get("card")
    if provider is None or provider.unavailable_reason():
        return Done("stripe", 0, "not configured")
    done = reconcile_all(now)
    errors = [f"payment {payment.id}: {reason}" for payment, reason, ok in done if not ok]
    checked = len(done) - len(errors)
    if errors:
        return Done("stripe", checked, "payment(s) checked; " + "; ".join(errors), ok=False)
    return Done("stripe", checked, "payment(s) checked")


def _deliver(now: datetime) -> Done:
    from common.mail import delivery

    if not current_app.config.get("SERVER_NAME"):
        return Done("mail", 0, "not delivered: SERVER_NAME is not set (e.g. FORFAIT_SERVER_NAME=shop.example.com), "
                               "and the messages link to the site", ok=False)
    sent = failed = 0
    while True:
        done = delivery.deliver_due(now=now)
        sent, failed = sent + done["sent"], failed + done["failed"]
        if not any(done.values()):
            break
    return Done("mail", sent, f"message(s) sent, {failed} failed (retried later)")


DUTIES: tuple[Callable[[datetime], Done], ...] = (_expire, _warn, _renew, _remind, _cancel, _reconcile, _deliver)


def run_once(now: datetime | None = None) -> list[Done]:
    """Every duty once, in order (the mail last, so that what the others
    queued goes out in the same run). ``now`` is for tests that move the clock."""
    results = []
    for duty in DUTIES:
        moment = now or clock.now()
        try:
            results.append(duty(moment))
        except Exception as error:  # noqa: BLE001 - one duty failing must not stop the others
            db.session.rollback()
            current_app.logger.exception("job %s failed", duty.__name__)
            results.append(Done(duty.__name__.lstrip("_"), 0, f"failed: {error}", ok=False))
    return results


@jobs_cli.command("run")
@click.pass_context
def run(ctx: click.Context) -> None:
    """Do every periodic duty once and exit: DUTY COUNT WHAT a line."""
    results = run_once()
    for done in results:
        click.echo(done.line())
    if not all(done.ok for done in results):
        ctx.exit(1)


@jobs_cli.command("worker")
@click.option("--interval", type=click.FloatRange(min=0), default=60, show_default=True,
              help="Seconds between two runs.")
@click.option("--runs", type=click.IntRange(min=1), default=None, help="Stop after this many runs (default: never).")
def worker(interval: float, runs: int | None) -> None:
    """Run the duties again and again, for development (cron runs `jobs run` in production)."""
    count = 0
    try:
        while runs is None or count < runs:
            for done in run_once():
                if done.count or not done.ok:
                    click.echo(done.line())
            db.session.remove()  # a fresh session each run: nothing stale is carried over
            count += 1
            if runs is None or count < runs:
                time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("stopped")


def init_app(app: Flask) -> None:
    app.cli.add_command(jobs_cli)
