"""`flask demo users`: the demo staff member and client that `make run` prints.

With the demo catalogue loaded (`flask catalogue load demo`), the client also
gets a short, real history, written through the same services as the shop
and the desk, so that the portal, the statement and `flask ledger verify`
have something to show: 10 hours ordered by transfer and confirmed by the
staff member (granted by the ledger under the order's key, invoiced), and a
ticket with time logged on it. Every step looks for what an earlier run did
first: running the command again changes nothing.
"""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select

from billing import clock
from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.desk import services as desk
from billing.desk.models import Ticket, TicketMessage
from billing.orders import services as orders
from billing.orders.models import Order, Payment
from common import payments
from common.extensions import db
from common.identity import accounts

demo_cli = AppGroup("demo", help="Demo data for trying Forfait out.")

# Also in the README: change both together.
STAFF = {"name": "Sam Staff", "email": "staff@forfait.example", "password": "staff-demo-password"}
CLIENT = {
    "organisation": "Atelier Démo",
    "name": "Claire Client",
    "email": "client@forfait.example",
    "password": "client-demo-password",
}
# The client's history: a pack of the demo catalogue and one ticket worked on.
PACK = "demo-hours-10"
TICKET = {
    "subject": "L'imprimante du bureau n'est plus trouvée",
    "description": "Depuis ce matin, personne ne peut imprimer\u00a0: l'imprimante n'apparaît plus sur le réseau.",
    "reply": "L'imprimante avait pris une nouvelle adresse après une coupure de courant\u00a0: elle a maintenant "
             "une adresse fixe. Pouvez-vous imprimer une page de test et nous dire\u00a0?",
}
TIME = [(25, True, "Printer given a fixed IP address, drivers checked"), (5, False, "Call to confirm")]


@demo_cli.command("users")
def users() -> None:
    """Create the demo staff user and client account when absent, with the
    client's history when the demo catalogue is loaded; print their credentials."""
    staff = accounts.find_user(db.session(), STAFF["email"])
    if staff is None:
        staff = accounts.create_staff(db.session(), STAFF["name"], STAFF["email"], STAFF["password"])
    client = accounts.find_user(db.session(), CLIENT["email"])
    if client is None:
        client = accounts.register(
            db.session(), CLIENT["organisation"], CLIENT["name"], CLIENT["email"], CLIENT["password"],
            language="fr", country="FR",
        )
        # The demo client should land on a working portal, not on a verification notice.
        accounts.mark_email_verified(db.session(), client)
    click.echo(f"staff:  {STAFF['email']} / {STAFF['password']}")
    click.echo(f"client: {CLIENT['email']} / {CLIENT['password']} (owner of {CLIENT['organisation']})")
    pack = db.session.scalar(select(Pack).where(Pack.slug == PACK))
    if pack is None:
        click.echo("history: none, the demo catalogue is not loaded (flask catalogue load demo, then run this again)")
        return
    now = clock.now()
    order = _paid_order(client, staff, pack, now)
    ticket = _worked_ticket(client, staff, now)
    click.echo(f"history: order #{order.id} paid ({PACK}), ticket #{ticket.id} with "
               f"{ticket.billable_minutes} min charged")


def _paid_order(client: User, staff: User, pack: Pack, now: datetime) -> Order:
    """The client's order of ``pack``, paid by transfer and confirmed by staff:
    orders.confirm_payment grants it through the ledger (key
    ``order:<id>:grant``) and invoices it."""
    order = db.session.scalar(
        select(Order).where(Order.account_id == client.account_id, Order.pack_id == pack.id).order_by(Order.id)
    )
    if order is None:
        order, _ = orders.place_order(db.session(), client.client_account, pack, quantity=1, method="transfer",
                                      methods=("transfer",), by=client, now=now,
                                      iban=current_app.config["PROVIDER_IBAN"])
    if order.status == "pending":
        payment = db.session.scalar(select(Payment).where(
            Payment.order_id == order.id, Payment.status.in_(("created", "pending"))).order_by(Payment.id.desc()))
        assert payment is not None
        if payment.status == "created":
            # The transfer's instructions, as the shop shows them.
            payment = orders.await_payment(db.session(), payment, now=now)
        orders.confirm_payment(db.session(), payment, seller=payments.seller(), now=now, by=staff,
                               note="demo data")
    return order


def _worked_ticket(client: User, staff: User, now: datetime) -> Ticket:
    """A ticket of the client's with a staff reply and time logged, billable or not."""
    ticket = db.session.scalar(
        select(Ticket).where(Ticket.account_id == client.account_id, Ticket.subject == TICKET["subject"])
    )
    if ticket is None:
        ticket = desk.open_ticket(db.session(), client.client_account, client, TICKET["subject"], TICKET["description"],
                                  now=now)
    replied = db.session.scalar(
        select(func.count()).where(TicketMessage.ticket_id == ticket.id, TicketMessage.author_id == staff.id))
    if not replied:
        desk.post_message(db.session(), ticket, staff, TICKET["reply"], now=now)
    for number, (minutes, billable, note) in enumerate(TIME, start=1):
        # The key makes each entry (and its charge) happen once.
        desk.log_time(db.session(), ticket, staff, minutes, billable, note, key=f"demo:ticket:{ticket.id}:{number}",
                      now=now)
    return ticket


def init_app(app) -> None:
    app.cli.add_command(demo_cli)
