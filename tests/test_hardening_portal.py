"""Issue 13 in the client portal: one-line subjects and names (13.7), uploads (13.12)."""

from __future__ import annotations

from sqlalchemy import select

from billing.accounts.models import User
from billing.desk.models import Ticket
from billing.notifications.outbox import OutboxMessage
from common.extensions import db
from tests.conftest import login, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)
from tests.test_portal_client import app_config, new_ticket, world  # noqa: F401 (fixtures)

BROKEN_LINES = "Printer\r\nBcc: victim@example.com\n\tjams\u2028again"


def test_a_subject_with_line_breaks_is_one_line_and_every_mail_about_it_goes(app, client, people, world,  # noqa: F811
                                                                              smtp_server):  # noqa: F811
    login(client, people["member"])

    response = new_ticket(client, subject=BROKEN_LINES)

    assert response.status_code == 302
    ticket_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        assert db.session.get(Ticket, ticket_id).subject == "Printer Bcc: victim@example.com jams again"
        queued = db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.payload["ticket_id"].as_integer() == ticket_id)).all()
        assert queued and {message.status for message in queued} == {"sent"}
    subjects = [message["Subject"] for message in smtp_server.messages]
    assert f"Ticket #{ticket_id} received: Printer Bcc: victim@example.com jams again" in subjects
    assert all(message["Bcc"] is None for message in smtp_server.messages)


def test_names_are_one_line_at_sign_up(app, client):
    response = post_form(client, "/signup", {
        "organisation": "Acme\r\nCorp", "name": "Ann\nBcc: x@example.com", "email": "ann@example.com",
        "password": "correct horse battery staple", "confirm": "correct horse battery staple",
        "language": "en", "country": "FR"})

    assert response.status_code == 302
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "ann@example.com"))
        assert (user.name, user.account.name) == ("Ann Bcc: x@example.com", "Acme Corp")


def test_a_mail_header_is_built_on_one_line_whatever_it_is_given(app, smtp_server):  # noqa: F811  # noqa: F811
    from common.mail import transport as mail

    with app.app_context(), app.test_request_context():
        mail.send("someone@example.com", "Ticket 4:\r\nBcc: victim@example.com", "verify_email", "en",
                  user=None, link="http://localhost/verify/x")

    [message] = smtp_server.messages
    assert message["Subject"] == "Ticket 4: Bcc: victim@example.com" and message["Bcc"] is None


# ---------------------------------------------------------------- 13.12 uploads

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def _attachment_of(app, ticket_id: int):
    from billing.desk.models import Attachment

    with app.app_context():
        return db.session.scalar(select(Attachment).where(Attachment.ticket_id == ticket_id))


def test_a_file_name_loses_its_bidirectional_controls_and_the_file_is_private(app, client, people, world):  # noqa: F811
    import io
    import stat
    from pathlib import Path

    login(client, people["member"])
    name = "invoice\u202e\u2066gnp\u2069\u202a\u202b\u202c\u202d\u2067\u2068.png"

    response = new_ticket(client, files=[(io.BytesIO(PNG), name)])

    assert response.status_code == 302
    attachment = _attachment_of(app, int(response.headers["Location"].rsplit("/", 1)[1]))
    assert attachment.original_name == "invoicegnp.png"
    stored = Path(app.config["ATTACHMENT_FOLDER"]) / attachment.stored_name
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_an_account_cannot_store_more_than_its_quota(app, client, people, world):  # noqa: F811
    import io

    app.config["ATTACHMENT_QUOTA_BYTES"] = 100
    login(client, people["member"])
    assert new_ticket(client, files=[(io.BytesIO(PNG), "one.png")]).status_code == 302

    response = new_ticket(client, subject="Second", files=[(io.BytesIO(PNG), "two.png")])

    assert response.status_code == 422
    assert "beyond its storage" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Ticket).where(Ticket.subject == "Second")) is None


def test_a_development_mail_file_is_private(app, tmp_path):
    import stat
    from pathlib import Path

    from common.mail import transport as mail

    app.config["MAIL_SERVER"] = None
    with app.app_context(), app.test_request_context():
        mail.send("someone@example.com", "Reset", "verify_email", "en", user=None, link="http://localhost/x")

    [written] = Path(app.config["MAIL_FOLDER"]).glob("*.eml")
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
