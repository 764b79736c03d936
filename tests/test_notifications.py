"""Notifications: the outbox written with its event, delivered by real SMTP
once, in the recipient's language; retries when the server is down; two
workers at once; preferences; the staff outbox; the scheduled jobs with a
moved clock."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from checkout_support import EUR_IBAN, SELLER, both, place
from conftest import login, post_form
from ledger_support import pack
from sqlalchemy import func, select

from billing.accounts.models import User
from billing.catalogue.offers import load_preset
from billing.clock import as_utc
from billing.desk import services as desk
from billing.desk.models import Invitation, Ticket
from billing.ledger import services as ledger
from billing.ledger.models import Lot, Operation
from billing.ledger.verify import verify
from billing.notifications import alerts, outbox
from billing.notifications.outbox import OutboxMessage
from billing.orders import services as orders
from billing.orders.models import Order, Payment
from commands.jobs import run_once
from common.extensions import db
from common.identity import accounts
from common.mail import delivery
from portal import notifications as notifications_view
from tests.smtp import HOST, Inbox, free_port, smtp_server  # noqa: F401 (a fixture)


@pytest.fixture
def app_config(smtp_server):  # noqa: F811
    # SERVER_NAME: the jobs deliver outside any request, and the messages carry links.
    return {"PROVIDER_IBAN": EUR_IBAN, "SERVER_NAME": "forfait.example", **smtp_server.config}


def now() -> datetime:
    return datetime.now(UTC)


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def placed_now(email: str, slug: str = "demo-hours-5") -> int:
    """An order by transfer placed now (checkout_support's are dated in January: long overdue)."""
    order, _payment = place(db.session, user(email), slug)
    order.created_at = now()
    db.session.commit()
    return order.id


def subjects(inbox: Inbox, address: str) -> list[str]:
    return [m["Subject"] for m in inbox.to(address)]


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def attachment_names(message: EmailMessage) -> list[str]:
    return [part.get_filename() for part in message.iter_attachments() if part.get_filename()]


@pytest.fixture
def french(app):
    """A French client account (owner Odile, member Marc) with the demo catalogue, and a staff member."""
    with app.app_context():
        load_preset(db.session, "demo")
        load_preset(db.session, "toopixel")
        owner = accounts.register(db.session, "Atelier Lune", "Odile Owner", "odile@example.fr",
                                  "correct horse battery", "fr", "FR")
        owner.email_verified_at = now()
        db.session.add(User(account=owner.account, role="member", email="marc@example.fr", name="Marc Member",
                            language="fr", password_hash=accounts.hasher.hash("correct horse battery")))
        db.session.commit()
        accounts.create_staff(db.session, "Sam Staff", "sam@example.com", "correct horse battery")
        return owner.account_id


# --- The whole chain, in French ---------------------------------------------------

def test_the_chain_of_a_french_client_mails_each_step_once_in_french(app, client, french, smtp_server):  # noqa: F811
    with app.app_context():
        odile = user("odile@example.fr")
        order, payment = place(db.session, odile, "toopixel-36", iban="CH5604835012345678009")
        order_id, payment_id = order.id, payment.id
    [received] = smtp_server.to("odile@example.fr")
    assert received["Subject"] == f"Votre commande {order_id}"
    assert "Merci pour votre commande" in text_of(received)
    assert attachment_names(received) == [f"order-{order_id}-payment.pdf"]

    with app.app_context():
        assert orders.confirm_payment(db.session, db.session.get(Payment, payment_id), seller=SELLER,
                                      now=now()).paid_now
    paid = [m for m in smtp_server.to("odile@example.fr") if m["Subject"].startswith("Paiement reçu")]
    assert len(paid) == 1 and attachment_names(paid[0]) == [f"{datetime.now(UTC).year}-0001.pdf"]

    with app.app_context():
        odile, sam = user("odile@example.fr"), user("sam@example.com")
        ticket = desk.open_ticket(db.session, odile.account, odile, "Le site ne répond plus", "Erreur 500.",
                                  now=now(), policy=pack(db.session, "toopixel-36").policy)
        ticket_id = ticket.id
    assert f"Ticket n°\u00a0{ticket_id} reçu\u00a0: Le site ne répond plus" in subjects(smtp_server, "odile@example.fr")
    [to_staff] = smtp_server.to("sam@example.com")
    assert to_staff["Subject"] == f"New ticket #{ticket_id} from Atelier Lune: Le site ne répond plus"
    assert f"http://forfait.example/desk/tickets/{ticket_id}" in text_of(to_staff)

    with app.app_context():
        row = db.session.get(Ticket, ticket_id)
        desk.post_message(db.session, row, user("sam@example.com"), "<p>Nous regardons <b>tout de suite</b>.</p>",
                          now=now())
        desk.post_message(db.session, row, user("sam@example.com"), "Note interne", now=now(), internal=True)
    replies = [m for m in smtp_server.to("odile@example.fr") if "Nouvelle réponse" in m["Subject"]]
    assert len(replies) == 1 and "Nous regardons tout de suite." in text_of(replies[0])
    assert "Note interne" not in "".join(text_of(m) for m in smtp_server.messages)

    # 36 credits, the threshold 20 % of them = 7: 120 minutes leave 24, 200 more leave 4, below it.
    with app.app_context():
        sam = user("sam@example.com")
        for minutes, entry_key in ((120, "t1"), (200, "t2")):
            desk.log_time(db.session, db.session.get(Ticket, ticket_id), sam, minutes, billable=True, note="",
                          key=entry_key, now=now())
    low = [m for m in smtp_server.messages if "solde" in m["Subject"].lower()]
    assert sorted(m["To"] for m in low) == ["marc@example.fr", "odile@example.fr"]
    assert all("4 crédits" in text_of(m) and "7 crédits" in text_of(m) for m in low)

    with app.app_context():
        desk.resolve(db.session, db.session.get(Ticket, ticket_id), by=user("sam@example.com"),
                     note="Serveur redémarré.", now=now())
    [resolved] = [m for m in smtp_server.to("odile@example.fr") if "résolu" in m["Subject"]]
    body = text_of(resolved)
    assert "32 crédits" in body and "4 crédits" in body and "Serveur redémarré." in body
    assert attachment_names(resolved) == [f"report-{ticket_id}.pdf"]

    # Exactly what a client expects, each once, nothing twice after a job run.
    expected = [f"Votre commande {order_id}", f"Paiement reçu pour la commande {order_id}",
                f"Ticket n°\u00a0{ticket_id} reçu\u00a0: Le site ne répond plus",
                f"Nouvelle réponse sur le ticket n°\u00a0{ticket_id}\u00a0: Le site ne répond plus",
                "Votre solde d'assistance devient faible",
                f"Ticket n°\u00a0{ticket_id} résolu\u00a0: votre rapport d'intervention"]
    assert subjects(smtp_server, "odile@example.fr") == expected
    with app.app_context():
        run_once()
    assert subjects(smtp_server, "odile@example.fr") == expected
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.status != "sent")) == 0


def test_the_payment_instructions_carry_the_qr_code_inline(app, french, smtp_server):  # noqa: F811
    with app.app_context():
        order, _payment = place(db.session, user("odile@example.fr"), "demo-hours-5")
        reference = order.reference
    [mail] = smtp_server.to("odile@example.fr")
    html = mail.get_body(preferencelist=("html",))
    assert 'src="cid:payment-code"' in html.get_content()
    [image] = [part for part in mail.walk() if part.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<payment-code>" and image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    assert reference in text_of(mail).replace(" ", "").replace("\u00a0", "")


# --- Preferences -----------------------------------------------------------------

def test_a_member_switches_off_replies_an_owner_cannot_switch_off_money(app, french, smtp_server):  # noqa: F811
    member = app.test_client()
    login(member, "marc@example.fr", "correct horse battery")
    page = member.get("/portal/notifications")
    assert page.status_code == 200 and 'name="low_balance"' in page.get_data(as_text=True)
    # Unchecked boxes are not sent: this switches off everything.
    assert post_form(member, "/portal/notifications", {}).status_code == 302
    owner = app.test_client()
    login(owner, "odile@example.fr", "correct horse battery")
    post_form(owner, "/portal/notifications", {})
    with app.app_context():
        assert outbox.preferences(db.session, user("odile@example.fr"))["low_balance"] is True
        assert outbox.preferences(db.session, user("odile@example.fr"))["replies"] is False
        assert outbox.preferences(db.session, user("marc@example.fr"))["low_balance"] is False
        locked = owner.get("/portal/notifications").get_data(as_text=True)
        assert re.search(r'name="orders"\s+checked\s+disabled', locked)

        marc, sam = user("marc@example.fr"), user("sam@example.com")
        ledger.grant(db.session, marc.account, pack(db.session, "toopixel-36"), key="g", now=now())
        ticket = desk.open_ticket(db.session, marc.account, marc, "Printer", "Jammed.", now=now(),
                                  policy=pack(db.session, "toopixel-36").policy)
        desk.post_message(db.session, ticket, sam, "On it.", now=now())
        desk.log_time(db.session, db.session.get(Ticket, ticket.id), sam, 300, billable=True, note="", key="big",
                      now=now())
    assert smtp_server.to("marc@example.fr") == []  # ticket opened, reply, low balance: all off
    assert subjects(smtp_server, "odile@example.fr") == ["Votre solde d'assistance devient faible"]


def test_preferences_need_a_login_and_a_csrf_token(app, french):
    anonymous = app.test_client()
    assert anonymous.get("/portal/notifications").status_code == 302
    member = app.test_client()
    login(member, "marc@example.fr", "correct horse battery")
    assert member.post("/portal/notifications", data={"replies": "on"}).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(outbox.Preference)) == 0


# --- Retries, workers, the staff outbox ------------------------------------------

def test_smtp_down_then_up_delivers_once_later(app, french, smtp_server):  # noqa: F811
    dead = free_port()
    app.config.update(MAIL_SERVER=HOST, MAIL_PORT=dead)
    with app.app_context():
        order_id = placed_now("odile@example.fr")
    with app.app_context():  # the try at once happened as the first context ended
        [message] = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "order_received")).all()
        assert message.status == "pending" and message.attempts == 1 and "Connection refused" in message.last_error
        assert message.next_attempt_at > now()
        # Before its back-off the job leaves it alone.
        assert run_once()[-1].count == 0

    inbox = Inbox()
    inbox.port = dead
    controller = Controller(inbox, hostname=HOST, port=dead)
    controller.start()
    try:
        with app.app_context():
            later = now() + timedelta(minutes=2)
            assert run_once(later)[-1].count == 1
            assert run_once(later + timedelta(hours=1))[-1].count == 0
            message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "order_received"))
            assert message.status == "sent" and message.last_error == "" and message.attempts == 2
    finally:
        controller.stop()
    assert [m["Subject"] for m in inbox.messages] == [f"Votre commande {order_id}"]


def test_a_message_that_keeps_failing_waits_for_staff_who_send_it_again(app, french, smtp_server):  # noqa: F811
    app.config.update(MAIL_SERVER=HOST, MAIL_PORT=free_port())
    with app.app_context():
        placed_now("odile@example.fr")
        moment = now()
        for _ in range(outbox.MAX_ATTEMPTS):
            moment += timedelta(hours=7)
            run_once(moment)
        message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "order_received"))
        assert message.status == "failed" and message.attempts == outbox.MAX_ATTEMPTS
        message_id = message.id

    staff = app.test_client()
    login(staff, "sam@example.com", "correct horse battery")
    page = staff.get("/portal/staff/mail?status=failed").get_data(as_text=True)
    assert f'id="message-{message_id}"' in page and "Connection refused" in page

    app.config.update(smtp_server.config)
    answer = post_form(staff, f"/portal/staff/mail/{message_id}/resend")
    assert answer.status_code == 302
    assert len(smtp_server.to("odile@example.fr")) == 1
    with app.app_context():
        message = db.session.get(OutboxMessage, message_id)
        assert message.status == "sent" and message.resent_by_id == user("sam@example.com").id


@pytest.mark.parametrize("who, expected", [(None, 302), ("odile@example.fr", 403), ("marc@example.fr", 403),
                                           ("sam@example.com", 200)])
def test_only_staff_see_the_outbox(app, french, who, expected):
    client = app.test_client()
    if who:
        login(client, who, "correct horse battery")
    assert client.get("/portal/staff/mail").status_code == expected
    resend = post_form(client, "/portal/staff/mail/1/resend")
    assert resend.status_code == (404 if expected == 200 else expected)


def test_the_outbox_page_refuses_an_unknown_status(app, french):
    staff = app.test_client()
    login(staff, "sam@example.com", "correct horse battery")
    assert staff.get("/portal/staff/mail?status=lost").status_code == 400


@both
def test_two_workers_at_once_send_each_message_once(app, french, smtp_server):  # noqa: F811
    app.config["MAIL_DELIVER_AT_ONCE"] = False
    with app.app_context():
        staff = user("sam@example.com")
        odile = user("odile@example.fr")
        ledger.grant(db.session, odile.account, pack(db.session, "toopixel-36"), key="g", now=now())
        for n in range(12):
            desk.open_ticket(db.session, odile.account, odile, f"Question {n}", "?", now=now(),
                             policy=pack(db.session, "toopixel-36").policy)
        queued = db.session.scalar(select(func.count()).select_from(OutboxMessage))
        assert queued == 24 and smtp_server.messages == [] and staff

    start = threading.Barrier(3)
    errors = []

    def work() -> None:
        try:
            with app.app_context():
                start.wait()
                while sum(delivery.deliver_due(limit=3).values()):
                    pass
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    ids = [m["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == 24 and len(set(ids)) == 24
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                 .where(OutboxMessage.status == "sent")) == 24


def test_an_event_queued_twice_is_one_message(app, french):
    with app.app_context():
        odile = user("odile@example.fr")
        first = outbox.enqueue(db.session, "low_balance", "evt", [odile, odile], now=now())
        again = outbox.enqueue(db.session, "low_balance", "evt", [odile], now=now())
        db.session.commit()
        assert len(first) == 1 and again == []
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_an_invitations_link_is_forgotten_once_sent(app, french, smtp_server):  # noqa: F811
    owner = app.test_client()
    login(owner, "odile@example.fr", "correct horse battery")
    post_form(owner, "/portal/people/invitations", {"email": "new@example.fr", "role": "member"})
    [mail] = smtp_server.to("new@example.fr")
    assert mail["Subject"] == "Odile Owner vous invite à partager son crédit d'assistance"
    with app.app_context():
        message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "invitation"))
        assert message.status == "sent" and "token" not in message.payload
        with pytest.raises(outbox.OutboxError):
            outbox.resend(db.session, message, by=user("sam@example.com"), now=now())
        assert db.session.scalar(select(func.count()).select_from(Invitation)) == 1


@pytest.mark.parametrize("attempts, minutes", [(0, 1), (1, 1), (2, 2), (3, 4), (6, 32), (9, 256), (10, 360),
                                                (30, 360)])
def test_backoff_doubles_up_to_six_hours(attempts, minutes):
    assert outbox.backoff(attempts) == timedelta(minutes=minutes)


# --- The scheduled jobs, with the clock moved -------------------------------------

def test_jobs_run_twice_changes_nothing_the_second_time(app, french, smtp_server, runner):  # noqa: F811
    with app.app_context():
        odile = user("odile@example.fr")
        ledger.grant(db.session, odile.account, pack(db.session, "demo-hours-5"), key="g", now=now())
        place(db.session, odile, "demo-hours-5")
    first = runner.invoke(args=["jobs", "run"])
    assert first.exit_code == 0, first.output
    assert [line.split("\t")[0] for line in first.output.splitlines()] == [
        "expire", "warn", "renew", "remind", "cancel", "stripe", "mail"]
    before = len(smtp_server.messages)
    with app.app_context():
        operations = db.session.scalar(select(func.count()).select_from(Operation))
    second = runner.invoke(args=["jobs", "run"])
    assert second.exit_code == 0 and len(smtp_server.messages) == before
    assert all(line.split("\t")[1] == "0" for line in second.output.splitlines() if not line.startswith("expire"))
    with app.app_context():
        # An expiry pass with nothing to expire writes no entry (an empty operation at most).
        assert db.session.scalar(select(func.count()).select_from(Operation)) <= operations + 1
        assert verify(db.session).ok


def test_jobs_refuse_to_mail_without_the_sites_address_and_say_so(app, french, runner):
    app.config["SERVER_NAME"] = None
    result = runner.invoke(args=["jobs", "run"])
    assert result.exit_code == 1 and "mail\t0\tnot delivered: SERVER_NAME is not set" in result.output


def test_expiry_warning_expiry_and_low_balance_on_the_right_days(app, french, smtp_server):  # noqa: F811
    app.config["EXPIRY_WARNING_DAYS"] = 30
    bought = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    with app.app_context():
        odile = user("odile@example.fr")
        lot = ledger.grant(db.session, odile.account, pack(db.session, "demo-hours-5"), key="g", now=bought)
        lot_id = db.session.scalar(select(Lot.id).where(Lot.account_id == odile.account_id))
        expires = db.session.get(Lot, lot_id).expires_at
        assert lot is not None and expires is not None

        run_once(expires - timedelta(days=30, minutes=1))
        assert smtp_server.messages == []
        run_once(expires - timedelta(days=29, hours=23))
        run_once(expires - timedelta(days=10))
        warned = [m for m in smtp_server.messages if "expire" in m["Subject"]]
        assert sorted(m["To"] for m in warned) == ["marc@example.fr", "odile@example.fr"]
        assert all(expires.strftime("%Y") in text_of(m) for m in warned)

        run_once(expires - timedelta(minutes=1))
        assert db.session.get(Lot, lot_id, populate_existing=True).remaining > 0
        run_once(expires + timedelta(minutes=1))
        assert db.session.get(Lot, lot_id, populate_existing=True).remaining == 0
    low = [m for m in smtp_server.messages if "faible" in m["Subject"]]
    assert len(low) == 2  # the expiry took the balance below its threshold: both users told, once


def test_a_transfer_is_reminded_and_cancelled_on_the_right_days(app, french, smtp_server):  # noqa: F811
    with app.app_context():
        order = place(db.session, user("odile@example.fr"), "demo-hours-5")[0]
        order_id, placed = order.id, as_utc(order.created_at)
        remind, cancel = app.config["TRANSFER_REMIND_DAYS"], app.config["TRANSFER_CANCEL_DAYS"]
        run_once(placed + timedelta(days=remind) - timedelta(minutes=1))
        run_once(placed + timedelta(days=remind))
        run_once(placed + timedelta(days=remind, hours=1))
        run_once(placed + timedelta(days=cancel) - timedelta(minutes=1))
        assert db.session.get(Order, order_id, populate_existing=True).status == "pending"
        run_once(placed + timedelta(days=cancel))
        run_once(placed + timedelta(days=cancel, hours=1))
        assert db.session.get(Order, order_id, populate_existing=True).status == "cancelled"
    assert subjects(smtp_server, "odile@example.fr") == [
        f"Votre commande {order_id}",
        f"Rappel\u00a0: la commande {order_id} attend votre paiement",
        f"Votre commande {order_id} est annulée",
    ]


@both
def test_two_job_runs_at_once_remind_and_warn_once(app, french, smtp_server):  # noqa: F811
    app.config["MAIL_DELIVER_AT_ONCE"] = False
    with app.app_context():
        odile = user("odile@example.fr")
        ledger.grant(db.session, odile.account, pack(db.session, "demo-hours-5"), key="g", now=now())
        order, _ = place(db.session, odile, "demo-hours-5")
        lot = db.session.scalar(select(Lot).where(Lot.account_id == odile.account_id))
        moment = max(as_utc(order.created_at) + timedelta(days=8), lot.expires_at - timedelta(days=5))
        if moment >= lot.expires_at:  # pragma: no cover - the demo pack is valid for months
            pytest.skip("the pack expires before the reminder is due")
    start = threading.Barrier(2)
    errors = []

    def job() -> None:
        try:
            with app.app_context():
                start.wait()
                run_once(moment)
        except Exception as error:  # pragma: no cover
            errors.append(error)

    runs = [threading.Thread(target=job) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=60)
    assert errors == []
    with app.app_context():
        kinds = db.session.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all()
        assert kinds.count("order_reminder") == 1  # the buyer, who is the owner: once, not once per run
        assert kinds.count("expiring") == 2  # Odile and Marc, once each
        assert alerts.warn_expiring(db.session, now=moment, days=30) == 0


def test_the_worker_runs_the_duties_again_and_again_then_stops(app, french, smtp_server, runner):  # noqa: F811
    with app.app_context():
        placed_now("odile@example.fr")
    app.config["MAIL_DELIVER_AT_ONCE"] = False  # the first mail was sent at once; from here the worker sends
    with app.app_context():
        odile = user("odile@example.fr")
        ledger.grant(db.session, odile.account, pack(db.session, "toopixel-36"), key="g", now=now())
        desk.open_ticket(db.session, odile.account, odile, "Printer", "Jammed.", now=now(),
                         policy=pack(db.session, "toopixel-36").policy)
    assert len(smtp_server.messages) == 1
    result = runner.invoke(args=["jobs", "worker", "--interval", "0", "--runs", "2"])
    assert result.exit_code == 0, result.output
    assert "mail\t2\tmessage(s) sent, 0 failed (retried later)" in result.output.splitlines()
    assert sorted(m["To"] for m in smtp_server.messages) == ["odile@example.fr", "odile@example.fr", "sam@example.com"]


def test_a_command_without_the_sites_address_leaves_its_mail_to_the_job(app, french, smtp_server):  # noqa: F811
    app.config["SERVER_NAME"] = None
    with app.app_context():  # as a command runs: no request to build the links from
        placed_now("odile@example.fr")
    with app.app_context():
        message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "order_received"))
        assert (message.status, message.attempts, message.last_error) == ("pending", 0, "")
    assert smtp_server.messages == []
    app.config["SERVER_NAME"] = "forfait.example"
    with app.app_context():
        assert run_once()[-1].count == 1
    assert [m["To"] for m in smtp_server.messages] == ["odile@example.fr"]


def test_a_message_about_something_gone_fails_at_once_without_retries(app, french, smtp_server):  # noqa: F811
    app.config["MAIL_DELIVER_AT_ONCE"] = False
    with app.app_context():
        odile = user("odile@example.fr")
        outbox.enqueue(db.session, "payment_confirmed", "order:999", [odile], now=now(), payload={"order_id": 999})
        db.session.commit()
        assert delivery.deliver_due() == {"sent": 0, "failed": 1, "skipped": 0}
        message = db.session.scalar(select(OutboxMessage))
        assert (message.status, message.attempts) == ("failed", 1)
        assert "Order 999 no longer exists" in message.last_error
    assert smtp_server.messages == []


def test_the_outbox_names_every_kind_of_message():
    """A kind of mail without its label showed as a blank line in the staff's outbox."""
    assert set(outbox.KINDS) <= set(notifications_view.KIND_LABELS)
