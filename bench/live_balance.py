"""What the live balance costs, against a bare Flask route on the same server.

    python -m bench.live_balance [seconds per case] [client threads]

Serves the real app (SQLite in a temporary folder, one account with a few
lots, tickets and a hundred ledger operations) with werkzeug's threaded
server on a loopback port, adds a bare route returning ``ok`` to the same
app, and hammers each of three URLs over HTTP from client threads for the
same time, in one run:

- bare:  ``GET /bench/bare`` (no session, no database, no template);
- 304:   ``GET /portal/balance`` with the tag the page shows (what every open
         dashboard asks every 3 s while nothing moves);
- 200:   ``GET /portal/balance`` without a tag (the fragment rendered).

Prints requests per second for each and their ratio to the bare route. The
figures are the dev server's (one thread per request, a new connection per
request): compare the ratios, not the absolute numbers, across machines.
"""

from __future__ import annotations

import http.client
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from werkzeug.serving import make_server

from app import create_app
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.ledger import services as ledger
from common.extensions import db
from common.identity import accounts

PASSWORD = "bench password long enough"


def build(folder: Path):
    app = create_app({
        "TESTING": False, "SECRET_KEY": "bench-secret-key-0123456789", "SERVER_NAME": "localhost",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'bench.sqlite'}", "MAIL_FOLDER": str(folder / "mail"),
        "ATTACHMENT_FOLDER": str(folder / "attachments"), "RATELIMIT_STORAGE_URI": "memory://",
        "WTF_CSRF_ENABLED": False,
    })
    app.add_url_rule("/bench/bare", "bench_bare", lambda: "ok")
    now = datetime.now(UTC)
    with app.app_context():
        from flask_migrate import upgrade
        upgrade()
        load_preset(db.session, "toopixel")
        owner = accounts.register(db.session, "Bench", "Bench Owner", "bench@example.com", PASSWORD, "en", "CH")
        staff = accounts.create_staff(db.session, "Staff", "staff@example.com", PASSWORD)
        for slug in ("toopixel-36", "toopixel-72", "toopixel-150"):
            ledger.grant(db.session, owner.account, db.session.scalar(select(Pack).where(Pack.slug == slug)),
                         key=f"grant-{slug}", now=now - timedelta(days=30))
        policy = db.session.scalar(select(Pack).where(Pack.slug == "toopixel-36")).policy
        for n in range(30):
            ticket = desk.open_ticket(db.session, owner.account, owner, f"Ticket {n}", "help", now=now,
                                      policy=policy)
            for m in range(3):
                desk.log_time(db.session, ticket, staff, 5, True, "", f"t-{n}-{m}", now)
    return app


def session_cookie(app) -> str:
    client = app.test_client()
    client.post("/login", data={"email": "bench@example.com", "password": PASSWORD})
    cookie = client.get_cookie("session")
    assert cookie is not None, "login failed"
    return f"session={cookie.value}"


def hammer(port: int, path: str, headers: dict[str, str], seconds: float, threads: int,
           expect: int) -> float:
    """Requests per second on ``path`` from ``threads`` clients for ``seconds``."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        while time.perf_counter() < stop:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            assert response.status == expect, (path, response.status)
            counts[i] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    with tempfile.TemporaryDirectory() as tmp:
        app = build(Path(tmp))
        cookie = session_cookie(app)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_port
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/portal/balance", headers={"Cookie": cookie, "HX-Request": "true"})
            first = conn.getresponse()
            first.read()
            tag = first.getheader("ETag")
            assert first.status == 200 and tag, first.status
            cases = [
                ("bare Flask route", "/bench/bare", {}, 200),
                ("live balance, 304", "/portal/balance", {"Cookie": cookie, "If-None-Match": tag}, 304),
                ("live balance, 200", "/portal/balance", {"Cookie": cookie}, 200),
            ]
            hammer(port, "/bench/bare", {}, 0.5, threads, 200)  # warm up
            results = [(name, hammer(port, path, headers, seconds, threads, expect))
                       for name, path, headers, expect in cases]
        finally:
            server.shutdown()
            with app.app_context():
                db.engine.dispose()
    bare = results[0][1]
    print(f"werkzeug threaded server, SQLite, {threads} client threads, {seconds:g} s per case")
    for name, rate in results:
        print(f"{name:<20} {rate:8.0f} req/s   {rate / bare:5.2f} × bare")


if __name__ == "__main__":
    main()
