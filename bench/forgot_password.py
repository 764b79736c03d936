"""How long "forgot your password" takes to answer for a known address and an
unknown one: the same, or the page tells who has an account (issue 13.10).

    python -m bench.forgot_password [requests per case]

Serves the real app (SQLite in a temporary folder, one account, mail through
an SMTP server on loopback, delivered in the background as in production)
with werkzeug's threaded server, and asks for a reset over HTTP, alternating
a known address and unknown ones. Prints the median answer time of each.
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
from http.cookiejar import CookieJar
from pathlib import Path

from aiosmtpd.controller import Controller
from flask_migrate import upgrade
from werkzeug.serving import make_server

from app import create_app
from common.extensions import db
from common.identity import accounts


class _Accept:
    async def handle_DATA(self, server, session, envelope) -> str:
        return "250 accepted"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main(requests: int = 40) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(_Accept(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    folder = Path(tempfile.mkdtemp())
    app = create_app({
        "TESTING": True, "SECRET_KEY": "bench-secret-key-0123456789",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite'}", "MAIL_FOLDER": str(folder / "mail"),
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp_port, "MAIL_DELIVER_IN_BACKGROUND": True,
        "RATELIMIT_ENABLED": False,
    })
    with app.app_context():
        upgrade()
        accounts.register(db.session(), "Bench", "Bench Owner", "owner@example.com", "bench password long enough",
                          "en", "FR")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect())
    page = opener.open(base + "/password/forgot").read().decode()
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    def ask(email: str) -> float:
        data = urllib.parse.urlencode({"email": email, "csrf_token": token}).encode()
        start = time.perf_counter()
        try:
            opener.open(base + "/password/forgot", data).read()
        except urllib.error.HTTPError as answer:  # the 302 to the login page
            assert answer.code == 302, answer.code
        return (time.perf_counter() - start) * 1000

    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for number in range(requests):
        times["known"].append(ask("owner@example.com"))
        times["unknown"].append(ask(f"nobody{number}@example.com"))
        time.sleep(0.02)  # let the mail thread send before the next pair
    for case, measured in times.items():
        print(f"{case}\tmedian {statistics.median(measured[5:]):.1f} ms")
    server.shutdown()
    smtp.stop()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:2]))
