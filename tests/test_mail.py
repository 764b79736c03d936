"""The mail module: .eml files without MAIL_SERVER, SMTP with it."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from flask_babel import lazy_gettext

from common.mail import transport as mail
from tests.conftest import post_form
from tests.smtp import HOST, Inbox, free_port


def sent_files(app) -> list[Path]:
    return sorted(Path(app.config["MAIL_FOLDER"]).glob("*.eml"))


def send_reset_mail(to: str, language: str = "en") -> None:
    """A real template of the app, with a stand-in for the user it names."""
    mail.send(to, lazy_gettext("Reset your password"), "reset_password", language,
              user=SimpleNamespace(name="Bo", email=to), link="http://localhost/password/reset/t")


def test_without_mail_server_the_message_is_an_eml_file(app, client):
    response = post_form(client, "/signup", {
        "organisation": "Acme", "name": "Ann", "email": "ann@example.com", "password": "long enough secret",
        "confirm": "long enough secret", "language": "es", "country": "ES",
    })

    assert response.status_code == 302
    [path] = sent_files(app)
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["To"] == "ann@example.com"
    assert message["From"].addresses[0].display_name == app.config["PROVIDER_NAME"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "http://localhost/verify/" in text
    assert '<html lang="es">' in html
    # The provider's postal address closes every message.
    assert app.config["PROVIDER_ADDRESS"].splitlines()[0] in text


def test_send_speaks_the_recipients_language_whatever_the_page(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        send_reset_mail("ana@example.com", "fr")

    [path] = sent_files(app)
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert '<html lang="fr">' in message.get_body(preferencelist=("html",)).get_content()


@pytest.fixture
def smtp_with_login():
    """An SMTP server that offers a login (over plain text: loopback only)."""
    inbox = Inbox()
    inbox.port = free_port()
    logins = []

    def authenticator(server, session, envelope, mechanism, credentials):
        logins.append((credentials.login, credentials.password))
        return AuthResult(success=credentials.password == b"s3cret", handled=False)

    controller = Controller(inbox, hostname=HOST, port=inbox.port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        yield inbox, logins
    finally:
        controller.stop()


def test_smtp_logs_in_with_the_configured_credentials(app, smtp_with_login):
    inbox, logins = smtp_with_login
    app.config.update(inbox.config, MAIL_USERNAME="forfait", MAIL_PASSWORD="s3cret")

    with app.test_request_context():
        send_reset_mail("bob@example.com")

    assert logins == [(b"forfait", b"s3cret")]
    assert [m["To"] for m in inbox.messages] == ["bob@example.com"]
    assert sent_files(app) == []


def test_a_refused_login_is_a_mail_error(app, smtp_with_login):
    inbox, _ = smtp_with_login
    app.config.update(inbox.config, MAIL_USERNAME="forfait", MAIL_PASSWORD="wrong")

    with app.test_request_context(), pytest.raises(mail.MailError):
        send_reset_mail("bob@example.com")

    assert inbox.messages == []
