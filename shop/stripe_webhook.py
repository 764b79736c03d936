"""Stripe talking to Forfait: the webhook, and the page the buyer comes back
to after paying. Both are triggers only: common.payments.card fetches the
object from Stripe and acts on that, never on what the request carried.

The webhook answers, so that Stripe knows whether to deliver again:
    400  the signature is missing, wrong or too old: nothing was read or written
    200  done, done already, an event we ignore, or an object that is not ours
         (another system on the same Stripe account: retrying would not help,
         so it is logged and acknowledged)
    503  another writer holds the account's lock, or Stripe could not be asked
         back: Stripe delivers again later (Retry-After)
"""

from __future__ import annotations

import logging

import stripe
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from billing import clock
from common import payments
from common.extensions import csrf
from common.payments import card

log = logging.getLogger(__name__)

bp = Blueprint("stripe", __name__, url_prefix="/stripe")

# Each says "look at this Checkout Session again"; what to do depends on what Stripe says of it now.
SESSION_EVENTS = frozenset({
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
})
REFUND_EVENTS = frozenset({"charge.refunded"})



def _answer(status: int, outcome: str):
    response = jsonify(outcome=outcome)
    response.status_code = status
    if status == 503:
        response.headers["Retry-After"] = "30"
    return response


@bp.post("/webhook")
@csrf.exempt  # Stripe signs its requests instead: construct_event checks the signature
def webhook():
    provider = payments.get("card")
    if provider is None or provider.unavailable_reason():
        return _answer(404, "card payments are not set up")
    try:
        event = stripe.Webhook.construct_event(request.get_data(), request.headers.get("Stripe-Signature", ""),
                                               current_app.config["STRIPE_WEBHOOK_SECRET"])
    except (ValueError, stripe.SignatureVerificationError) as error:
        log.warning("stripe webhook refused: %s", error)
        return _answer(400, "bad signature")
    try:
        if event.type in SESSION_EVENTS:
            payment = card.payment_for(event.data.object.id)
            if payment is None:
                log.info("stripe event %s (%s): session %s is not ours", event.id, event.type, event.data.object.id)
                return _answer(200, "not ours")
            outcome = card.settle(payment, now=clock.now(), wait=False)
        elif event.type in REFUND_EVENTS:
            outcome = card.settle_refunds(event.data.object.id, now=clock.now(), wait=False)
        else:
            return _answer(200, "ignored")
    except (card.Busy, card.StripeFailed) as error:
        log.warning("stripe event %s (%s) to retry: %s", event.id, event.type, error)
        return _answer(503, "retry")
    log.info("stripe event %s (%s): %s", event.id, event.type, outcome)
    return _answer(200, outcome)


# What the buyer reads on the order page after coming back from Stripe.
_MESSAGES = {
    "paid": ("success", _l("Thank you: your payment is confirmed and your pack is credited.")),
    "open": ("info", _l("Your card payment is not complete: you can go back to the payment page below.")),
    "processing": ("info", _l("Your bank is processing the payment: your pack is credited as soon as it "
                            "clears.")),
    "expired": ("error", _l("The payment page expired before the payment was made: the order is cancelled.")),
    "failed": ("error", _l("The payment did not go through: the order is cancelled and nothing was "
                            "credited.")),
    "flagged": ("info", _l("Your payment reached us and we are checking it: we will be in touch shortly.")),
}
_MESSAGES["duplicate"] = _MESSAGES["overpaid"] = _MESSAGES["paid"]


@bp.get("/return")
def back():
    """Stripe's success_url: the session is fetched from Stripe, whatever the
    address says, so that a buyer who closes the tab before the webhook
    arrives is credited all the same, and one who forges it is not."""
    payment = card.payment_for(request.args.get("session_id", ""))
    if payment is None:
        abort(404)
    try:
        outcome = card.settle(payment, now=clock.now())
    except (card.Busy, card.StripeFailed) as error:
        log.warning("stripe: payment %s not settled on return: %s", payment.id, error)
        flash(_("Stripe has not confirmed your payment to us yet: your pack is credited as soon as it does."),
              "info")
    else:
        category, message = _MESSAGES[outcome]
        flash(str(message), category)
    return redirect(url_for("orders.show", order_id=payment.order_id))
