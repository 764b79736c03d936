"""The one way Forfait sends mail.

``send()`` renders ``templates/mail/<template>.html`` and ``.txt`` in the
recipient's language and hands the message to the SMTP server of
MAIL_SERVER. Without MAIL_SERVER (development, demos) each message is written
as an .eml file under MAIL_FOLDER instead, and its path is logged, so that a
link in it can be followed without any mail setup."""

from __future__ import annotations

import hashlib
import smtplib
import uuid
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from flask import current_app, render_template
from flask_babel import force_locale

from billing import clock
from billing.text import single_line, write_private


class MailError(RuntimeError):
    """The message could not be handed over; the cause is logged and chained."""


def _html_part(message: EmailMessage) -> EmailMessage:
    """The text/html alternative of a message add_alternative made
    multipart/alternative; add_related turns it into multipart/related."""
    parts = message.get_payload()
    if not isinstance(parts, list) or not isinstance(parts[1], EmailMessage):
        raise TypeError("the message has no text/html alternative")
    return parts[1]


def send(to: str, subject: Any, template: str, language: str, *,
         attachments: Sequence[tuple[str, bytes, str]] = (), inline: Sequence[tuple[str, bytes, str]] = (),
         message_id: str | None = None, **context: Any) -> None:
    """Send one message to ``to``.

    ``subject`` should be a lazy string (``lazy_gettext``) so that it is
    translated, like the body, in ``language`` rather than in the language of
    whoever triggered the mail. ``attachments`` are (file name, content,
    MIME type), such as an invoice's PDF; ``inline`` are (content id, content,
    MIME type) images the HTML shows as ``cid:<content id>``. A ``message_id``
    (the outbox key) makes the Message-ID the same each time one message is
    sent, so that a copy sent again is recognisable. Raises MailError when the message
    cannot be delivered to the server or written to the folder."""
    config = current_app.config
    with force_locale(language):
        # A header is one line: CR/LF in a subject would fail every try.
        subject = single_line(str(subject))
        context.update(subject=subject)
        text = render_template(f"mail/{template}.txt", **context)
        html = render_template(f"mail/{template}.html", **context)

    message = EmailMessage()
    sender = parseaddr(config["MAIL_DEFAULT_SENDER"])[1]
    # The provider's name on the envelope: clients know the provider, not the software.
    message["From"] = Address(display_name=single_line(config["PROVIDER_NAME"]), addr_spec=sender)
    message["To"] = to
    if config.get("PROVIDER_EMAIL"):
        message["Reply-To"] = Address(display_name=single_line(config["PROVIDER_NAME"]),
                                      addr_spec=config["PROVIDER_EMAIL"])
    message["Subject"] = subject
    message["Date"] = format_datetime(clock.now())
    domain = sender.rpartition("@")[2] or "forfait.invalid"
    message["Message-ID"] = (f"<{hashlib.sha256(message_id.encode()).hexdigest()[:32]}@{domain}>" if message_id
                             else make_msgid(domain=domain))
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    for content_id, content, mimetype in inline:
        maintype, _slash, subtype = mimetype.partition("/")
        _html_part(message).add_related(content, maintype=maintype, subtype=subtype, cid=f"<{content_id}>")
    for filename, content, mimetype in attachments:
        maintype, _slash, subtype = mimetype.partition("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)

    try:
        if config["MAIL_SERVER"]:
            _deliver(message, config)
            current_app.logger.info("mail %r sent to %s", subject, to)
        else:
            path = _write(message, Path(config["MAIL_FOLDER"]))
            # A warning, so that it shows with the default log level: a
            # deployment that forgot MAIL_SERVER sends nobody anything.
            current_app.logger.warning("MAIL_SERVER is not set: mail %r to %s written to %s", subject, to, path)
    except (OSError, smtplib.SMTPException) as error:
        current_app.logger.exception("mail %r to %s could not be sent", subject, to)
        raise MailError(str(error)) from error


def _deliver(message: EmailMessage, config: dict[str, Any]) -> None:
    with smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=config["MAIL_TIMEOUT"]) as smtp:
        if config["MAIL_USE_TLS"]:
            smtp.starttls()
        if config["MAIL_USERNAME"]:
            smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        smtp.send_message(message)


def _write(message: EmailMessage, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # Time first so that a directory listing reads in the order mail was sent.
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    path = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
    write_private(path, message.as_bytes())
    return path
