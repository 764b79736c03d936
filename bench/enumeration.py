"""How long the forms that take an email answer for an address an account
uses and for a new one: the same, or the answer tells who has an account
(issue 13.10). Three forms: "forgot your password", sign-up, and the
checkout's sign-up.

    python -m bench.enumeration [requests per case] [form...]

Serves the real app (SQLite in a temporary folder, one account, passwords
hashed at production cost, mail through an SMTP server on loopback,
delivered in the background as in production) with werkzeug's threaded
server, and sends each form over HTTP, alternating the known address and new
ones. Prints the median answer time of each case, in milliseconds.
"""

from __future__ import annotations

import re
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.cookiejar import CookieJar
from pathlib import Path

from aiosmtpd.controller import Controller
from flask_migrate import upgrade
from werkzeug.serving import make_server

from app import create_app
from billing.catalogue.offers import load_preset
from common.extensions import db
from common.identity import accounts

KNOWN = "owner@example.com"
PASSWORD = "bench password long enough"


class _Accept:
    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.extend(envelope.rcpt_tos)
        return "250 accepted"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _signup(prefix: str, email: str) -> dict[str, str]:
    fields = {"organisation": "Bench shop", "name": "Bench Person", "email": email, "password": PASSWORD,
              "confirm": PASSWORD, "language": "en", "country": "FR"}
    return {prefix + name: value for name, value in fields.items()}


def _checkout(email: str, page: str) -> dict[str, str]:
    token = re.search(r'name="token" type="hidden" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    return {"method": "transfer", "total": "51000", "token": token, **_signup("account-", email)}


# Each form: where it is, and what it sends for an address (given the form's page, for its one-time token).
FORMS: dict[str, tuple[str, Callable[[str, str], dict[str, str]]]] = {
    "forgot password": ("/password/forgot", lambda email, page: {"email": email}),
    "sign-up": ("/signup", lambda email, page: _signup("", email)),
    "checkout sign-up": ("/checkout/demo-hours-5", _checkout),
}


def main(requests: int = 40, *names: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    inbox = _Accept()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    folder = Path(tempfile.mkdtemp())
    app = create_app({
        "TESTING": True, "SECRET_KEY": "bench-secret-key-0123456789",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite'}", "MAIL_FOLDER": str(folder / "mail"),
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port, "MAIL_DELIVER_IN_BACKGROUND": True,
        "RATELIMIT_ENABLED": False, "PROVIDER_IBAN": "FR7630006000011234567890189",
    })
    with app.app_context():
        upgrade()
        load_preset(db.session(), "demo")
        accounts.register(db.session(), "Bench", "Bench Owner", KNOWN, PASSWORD, "en", "FR")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"

    def ask(path: str, data: Callable[[str, str], dict[str, str]], email: str) -> float:
        # A browser of its own each time, as each person has: the form's page first, then its POST timed.
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect())
        page = opener.open(base + path).read().decode()
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        body = urllib.parse.urlencode({**data(email, page), "csrf_token": csrf}).encode()
        start = time.perf_counter()
        try:
            opener.open(base + path, body).read()
        except urllib.error.HTTPError as answer:  # the 302 to the next page
            assert answer.code == 302, (path, answer.code, answer.read().decode()[:2000])
        return (time.perf_counter() - start) * 1000

    def settled(email: str, expected: int) -> None:
        # What the answer started after it (the account, the mail) is done
        # before the next request is timed: it would slow that one, whoever it is for.
        deadline = time.monotonic() + 30
        while inbox.received.count(email) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)

    for name, (path, data) in FORMS.items():
        if names and name not in names:
            continue
        times: dict[str, list[float]] = {"known": [], "new": []}
        for number in range(requests):
            new = f"new{number}.{len(name)}@example.com"
            # Alternated: neither case always comes first.
            for case in (("known", "new") if number % 2 else ("new", "known")):
                email = KNOWN if case == "known" else new
                expected = inbox.received.count(email) + (0 if name == "forgot password" and case == "new" else 1)
                times[case].append(ask(path, data, email))
                settled(email, expected)
        print("\t".join([name, *(f"{case} median {statistics.median(measured[5:]):.1f} ms"
                                  for case, measured in times.items())]))
    server.shutdown()
    smtp.stop()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:2]), *sys.argv[2:])
