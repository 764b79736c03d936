"""Mail never holds a request (issue 13.5): with an SMTP server that takes the
connection and never says a word, an order, a ticket and a staff reply still
answer, and what they queued stays in the outbox for the job.

Not a timed test: the server stays silent for as long as the test wants and
the client would wait a minute for it (MAIL_TIMEOUT), so a request that
waited for its mail could only answer once that try had failed. Each answer
must come while every message it queued is still untried; only then does
the server hang up, and each try ends in an error the job will retry."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from checkout_support import EUR_IBAN
from sqlalchemy import select

from billing.notifications.outbox import OutboxMessage
from common.extensions import db
from tests.conftest import csrf_token, form_token, login
from tests.smtp import smtp_server  # noqa: F401 (a fixture)
from tests.test_portal_client import new_ticket, world  # noqa: F401 (a fixture)


@dataclass
class SilentSMTP:
    """A loopback port whose kernel completes every TCP handshake (the
    listening backlog) while nobody ever reads or writes: an SMTP client
    waits for a greeting that never comes, until ``hang_up`` closes the
    listener and the kernel resets every waiting connection."""
    listener: socket.socket

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def hang_up(self) -> None:
        self.listener.close()


@pytest.fixture
def silent_smtp() -> Iterator[SilentSMTP]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield SilentSMTP(listener)


@pytest.fixture
def app_config(silent_smtp) -> dict:
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": silent_smtp.port, "MAIL_USE_TLS": False,
            "PROVIDER_IBAN": EUR_IBAN, "MAIL_DELIVER_IN_BACKGROUND": True, "MAIL_TIMEOUT": 60}


def untried(app, before: set[int]) -> list[tuple[str, str, str]]:
    """The messages queued since ``before`` that a try has already ended for
    (sent or failed): none while the silent server holds every connection."""
    return [(m.kind, m.status, m.last_error) for m in outbox(app)
            if m.id not in before and (m.status != "pending" or m.last_error)]


def outbox(app) -> list[OutboxMessage]:
    with app.app_context():
        return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_an_order_a_ticket_and_a_staff_reply_answer_at_once_whatever_smtp_does(
        app, client, people, world, silent_smtp):  # noqa: F811
    before = {m.id for m in outbox(app)}
    login(client, people["owner"])
    # The forms are fetched first, as a person has them on screen.
    order = {"method": "transfer", "total": "95000", "csrf_token": csrf_token(client),
             "token": form_token(client, "/checkout/toopixel-36")}
    ordered = client.post("/checkout/toopixel-36", data=order)
    page = client.get("/portal/tickets/new").get_data(as_text=True)
    ticket = {"subject": "Printer", "description": "It jams.", "criticality": "normal",
              "balance": re.search(r'<option (?:selected )?value="([^"]+)"', page).group(1),
              "csrf_token": csrf_token(client, "/portal/tickets/new"),
              "token": form_token(client, "/portal/tickets/new")}
    opened = client.post("/portal/tickets/new", data=ticket)
    assert ordered.status_code == opened.status_code == 302, (ordered.status_code, opened.status_code)
    ticket_id = int(opened.headers["Location"].rsplit("/", 1)[1])

    staff = app.test_client()
    login(staff, people["staff"])
    reply = {"body": "Fixed, please check", "internal": "0", "csrf_token": csrf_token(staff)}
    replied = staff.post(f"/desk/tickets/{ticket_id}/messages", data=reply)
    assert replied.status_code == 302

    # All three answered while the server still held every message's try.
    assert untried(app, before) == []
    silent_smtp.hang_up()
    # The sender thread tried each after the answers, and nothing was lost:
    # every message waits in the outbox with its error, for the job to retry.
    tried = settled(app, before)
    assert {"order_received", "ticket_opened", "ticket_opened_staff", "staff_reply"} <= {m.kind for m in tried}
    assert all(m.status == "pending" and m.attempts == 1 and m.last_error for m in tried), [
        (m.kind, m.status, m.attempts, m.last_error) for m in tried]


def test_the_forms_that_mail_a_link_answer_at_once_whatever_smtp_does(app, people, world, silent_smtp):  # noqa: F811
    """Sign-up, a visitor's order (which signs up), a forgotten password and
    a new verification link: their mail goes after the answer, or is waited
    for half a second at most (the link asked for again, to say if it went)."""
    before = {m.id for m in outbox(app)}
    account = {"organisation": "Bistro Nova", "name": "Nora Nova", "password": "a long enough secret",
               "confirm": "a long enough secret", "language": "en", "country": "FR"}

    def sent(path: str, form: dict, client=None) -> int:
        client = client or app.test_client()
        form = {**form, "csrf_token": csrf_token(client, path)}
        if path.startswith("/checkout/"):
            form["token"] = form_token(client, path)
        response = client.post(path, data=form)
        response.close()  # as a server does once the answer is sent: what waits for it starts
        return response.status_code

    answered = {
        "sign-up": sent("/signup", {**account, "email": "nora@example.com"}),
        "visitor's order": sent("/checkout/toopixel-36", {
            "method": "transfer", "total": "95000", "account-email": "olga@example.com",
            **{f"account-{name}": value for name, value in account.items()}}),
        "forgotten password": sent("/password/forgot", {"email": people["member"]}),
    }
    member = app.test_client()
    login(member, people["member"])
    answered["new verification link"] = sent("/verify/resend", {}, member)

    assert all(status == 302 for status in answered.values()), answered
    assert untried(app, before) == []
    silent_smtp.hang_up()
    tried = settled(app, before)
    assert sorted(m.email for m in tried) == sorted(["nora@example.com", "olga@example.com", people["member"],
                                                     people["member"]])
    assert all(m.status == "pending" and m.last_error for m in tried), [
        (m.kind, m.status, m.attempts, m.last_error) for m in tried]


def settled(app, before: set[int], within: float = 60) -> list[OutboxMessage]:
    """The messages queued since ``before`` once the sender thread has tried each."""
    deadline = time.monotonic() + within
    while True:
        messages = [m for m in outbox(app) if m.id not in before]
        if all(m.attempts >= 1 and m.claimed_until is None for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)


def test_the_sender_thread_delivers_what_a_request_queued(app, client, people, world, smtp_server):  # noqa: F811
    app.config.update(smtp_server.config, MAIL_TIMEOUT=10)
    before = {m.id for m in outbox(app)}
    login(client, people["member"])

    opened = new_ticket(client, subject="Printer on fire")

    assert opened.status_code == 302
    assert {m.status for m in settled(app, before)} == {"sent"}
    assert any("Printer on fire" in message["Subject"] for message in smtp_server.to(people["member"]))
