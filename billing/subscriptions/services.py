"""Subscriptions: periods paid by orders, tickets that draw nothing while a
period runs, cancellation to the end of the month, subscribing again after
the pack's waiting time (seed 004).

A period is ``billing_period_months`` long and begins when its order is
paid, or where the previous one ends when it is paid ahead. Cancelling
stops the renewals; tickets stay covered to the end of the calendar month
(UTC) of the cancellation, or to the end of the period paid if that is
later: the client never loses time paid for. A renewal left unpaid until
its order is cancelled lets the subscription lapse at the end of its last
period; a period refunded in full stops it at once. Only a cancellation by
the client starts the waiting time.

No Flask and no commit here: billing.orders calls these in its own
transactions (place, pay, cancel, renew).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from billing.accounts.models import Account
from billing.catalogue.models import Pack
from billing.clock import add_months, utc
from billing.errors import N_
from billing.orders.models import Order
from billing.subscriptions.models import Subscription, SubscriptionPeriod


def end_of_month(moment: datetime) -> datetime:
    """The first instant of the next calendar month (UTC)."""
    moment = utc(moment)
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return add_months(first, 1)


def current(session: Session, account_id: int, *, now: datetime, catalogue_id: int | None = None
            ) -> Subscription | None:
    """The account's subscription still running or renewing at ``now``: not
    ended, or ended later than ``now``. Newest first."""
    query = (
        select(Subscription)
        .where(Subscription.account_id == account_id,
               or_(Subscription.ends_at.is_(None), Subscription.ends_at > utc(now)))
        .order_by(Subscription.started_at.desc(), Subscription.id.desc())
        .limit(1)
    )
    if catalogue_id is not None:
        query = query.join(Pack, Pack.id == Subscription.pack_id).where(Pack.catalogue_id == catalogue_id)
    return session.scalar(query)


def covering(session: Session, account_id: int, *, now: datetime) -> Subscription | None:
    """The subscription a ticket opened at ``now`` would be covered by."""
    found = current(session, account_id, now=now)
    return found if found is not None and found.covers(utc(now)) else None


def last_cancelled(session: Session, account_id: int, catalogue_id: int) -> Subscription | None:
    return session.scalar(
        select(Subscription)
        .join(Pack, Pack.id == Subscription.pack_id)
        .where(Subscription.account_id == account_id, Pack.catalogue_id == catalogue_id,
               Subscription.cancelled_at.is_not(None))
        .order_by(Subscription.cancelled_at.desc())
        .limit(1)
    )


def may_subscribe_from(session: Session, account_id: int, pack: Pack) -> datetime | None:
    """When the account may subscribe to ``pack`` again after cancelling:
    the cancellation plus the pack's waiting time; None without a wait."""
    if not pack.resubscribe_after_months:
        return None
    cancelled = last_cancelled(session, account_id, pack.catalogue_id)
    if cancelled is None or cancelled.cancelled_at is None:
        return None
    return add_months(cancelled.cancelled_at, pack.resubscribe_after_months)


def refusal(session: Session, account: Account, pack: Pack, *, now: datetime) -> tuple[str, dict[str, object]] | None:
    """Why ``account`` may not order ``pack`` (a subscription) now, as a
    message id and its params; None when it may."""
    now = utc(now)
    running = current(session, account.id, now=now, catalogue_id=pack.catalogue_id)
    if running is not None:
        if running.ends_at is None:
            return N_("You are already subscribed: your subscription renews on %(date)s."), {
                "date": running.paid_until.date()}
        # Cancelled: ordering again waits for the end of the period and for
        # the pack's waiting time after the cancellation, whichever is later.
        again = max(running.ends_at, may_subscribe_from(session, account.id, pack) or running.ends_at)
        return N_("Your subscription runs until %(end)s; you may subscribe again from %(date)s."), {
            "end": running.ends_at.date(), "date": again.date()}
    waiting = session.scalar(
        select(Order.id)
        .join(Pack, Pack.id == Order.pack_id)
        .where(Order.account_id == account.id, Order.status == "pending", Pack.unlimited,
               Pack.catalogue_id == pack.catalogue_id)
        .limit(1)
    )
    if waiting is not None:
        return N_("Subscription order %(number)d is already awaiting payment."), {"number": waiting}
    allowed = may_subscribe_from(session, account.id, pack)
    if allowed is not None and now < allowed:
        return N_("You cancelled your subscription: you may subscribe again from %(date)s."), {
            "date": allowed.date()}
    return None


def extend(session: Session, order: Order, now: datetime) -> SubscriptionPeriod:
    """The period ``order`` paid for: a new subscription, or the next period
    of the one it renews. In the caller's transaction, once per order."""
    now = utc(now)
    months = order.ordered_pack.billing_period_months or 1
    renewed = session.scalar(select(Subscription).where(Subscription.renewal_order_id == order.id))
    if renewed is None:
        subscription = Subscription(account_id=order.account_id, pack_id=order.pack_id, started_at=now,
                                    paid_until=add_months(now, months))
        session.add(subscription)
        starts = now
    else:
        subscription = renewed
        subscription.renewal_order_id = None
        starts = max(subscription.paid_until, now)
        subscription.paid_until = add_months(starts, months)
    period = SubscriptionPeriod(subscription=subscription, order_id=order.id, starts_at=starts,
                                ends_at=subscription.paid_until)
    session.add(period)
    return period


def end_if_cancelled(subscription: Subscription, now: datetime) -> datetime:
    """Until when a cancellation at ``now`` leaves tickets covered: the end
    of this month, or of the period paid if that is later."""
    return max(end_of_month(now), subscription.paid_until)


def cancel(subscription: Subscription, *, by_id: int | None, now: datetime) -> None:
    """Stop renewing (end_if_cancelled says until when tickets stay covered)."""
    now = utc(now)
    subscription.cancelled_at = now
    subscription.cancelled_by_id = by_id
    subscription.ends_at = end_if_cancelled(subscription, now)
    subscription.end_reason = "cancelled"
    subscription.renewal_order_id = None


def renewal_dropped(session: Session, order: Order) -> None:
    """The renewal order was cancelled unpaid: the subscription lapses at
    the end of its last period. In the caller's transaction."""
    subscription = session.scalar(select(Subscription).where(Subscription.renewal_order_id == order.id))
    if subscription is None:
        return
    subscription.renewal_order_id = None
    subscription.ends_at = subscription.paid_until
    subscription.end_reason = "lapsed"


def refunded(session: Session, order: Order, now: datetime) -> Order | None:
    """``order``, a period, was refunded in full: a period not begun yet is
    taken off, one running ends the subscription now (with no waiting time:
    the client did not cancel). Returns the renewal order awaiting payment,
    which the caller cancels. In the caller's transaction."""
    now = utc(now)
    period = session.scalar(select(SubscriptionPeriod).where(SubscriptionPeriod.order_id == order.id))
    if period is None or period.ends_at <= now:
        return None  # a period over: money back, nothing to stop
    subscription = period.subscription
    if period.starts_at > now:
        subscription.paid_until = period.starts_at
        return None
    renewal = subscription.renewal_order
    subscription.ends_at = now
    subscription.end_reason = "refunded"
    subscription.renewal_order_id = None
    return renewal if renewal is not None and renewal.status == "pending" else None


def due_for_renewal(session: Session, *, now: datetime, days: int) -> list[Subscription]:
    """Running subscriptions whose period ends within ``days`` days and
    whose next period has no order yet."""
    now = utc(now)
    return list(session.scalars(
        select(Subscription)
        .where(Subscription.ends_at.is_(None), Subscription.renewal_order_id.is_(None),
               Subscription.paid_until <= now + timedelta(days=days))
        .order_by(Subscription.id)
    ))
