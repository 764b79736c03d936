"""A real SMTP server on loopback that keeps what it receives.

Use it by importing the fixture into a test module and pointing the app at it
through ``app_config``::

    from tests.smtp import smtp_server  # noqa: F401 (a fixture)

    @pytest.fixture
    def app_config(smtp_server):
        return smtp_server.config
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


class Inbox:
    """The aiosmtpd handler: every message accepted, parsed and kept in order."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        return "250 Message accepted for delivery"

    @property
    def config(self) -> dict[str, object]:
        """The app settings that send mail here."""
        return {"MAIL_SERVER": HOST, "MAIL_PORT": self.port, "MAIL_USE_TLS": False}

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if address in message["To"]]

    def last_link(self, address: str, path: str) -> str:
        """The last URL containing ``path`` in the plain-text part of the mail to ``address``."""
        messages = self.to(address)
        assert messages, f"no mail to {address}"
        text = messages[-1].get_body(preferencelist=("plain",)).get_content()
        links = re.findall(r"https?://\S*" + re.escape(path) + r"\S*", text)
        assert links, f"no link to {path} in the last mail to {address}:\n{text}"
        return links[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[Inbox]:
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname=HOST, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
