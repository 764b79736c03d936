"""Bad input gets a 4xx, never a 500 (issue 13.6): every route of the app,
as an anonymous visitor, a client and staff, with the values the probe sent
(NUL and control characters, integers beyond 2^31-1, Unicode digits such as
"²", newlines) in the path, the query string and the form."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import pytest
from checkout_support import EUR_IBAN, place
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.accounts.models import User
from billing.catalogue.models import Pack
from billing.catalogue.offers import load_preset
from billing.desk import services as desk
from billing.ledger import services as ledger
from common.extensions import db
from tests.conftest import PASSWORD

NOW = datetime.now(UTC)

# What the probe sent, and what a person might type by mistake.
NASTY = ["", "1", "0", "-1", "2147483647", "2147483648", "99999999999999999999", "21474836.48", "1e99", "²",
         "١٢", "𝟙", "\x00", "a\x00b", "%00", "line\nbreak", "\r\n", "\t", "\x1b[31m", "/\t/evil.example/",
         "//evil.example/", "\u202eevil", "x" * 3000, "<script>alert(1)</script>", "9" * 30 + ".99", " ", "None",
         "true", "2026-02-30", "fr", "transfer", "demo-hours-5"]
VALUES = st.sampled_from(NASTY)
# The classes the probe found, each sent in every place of every route.
PROBE = ["\x00", "2147483648", "99999999999999999999", "²", "line\nbreak", "-1"]
# Every field name a form or a query string of the app reads.
FIELDS = ["account", "user", "q", "status", "format", "from", "to", "session_id", "quantity", "method", "total",
          "token", "minutes", "kind", "pack", "shown", "next", "lang", "subject", "description", "body", "balance",
          "criticality", "rating", "comment", "staff_note", "internal", "billable", "note", "key", "amount",
          "reason", "received_at", "address", "vat_id", "name", "organisation", "email", "password", "confirm",
          "language", "country", "role", "remember", "invoice-address", "invoice-vat_id", "account-name",
          "account-organisation", "account-email", "account-password", "account-confirm", "account-language",
          "account-country", "current", "code", "topics", "orders", "replies", "status_filter", "assigned",
          "criticality_filter", "page"]
ARGUMENT = re.compile(r"<(?:(\w+):)?(\w+)>")


def routes(app) -> list[tuple[str, str]]:
    """(method, rule) of every route but the static files."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods & {"GET", "POST"}):
            found.append((method, rule.rule))
    return sorted(found)


@pytest.fixture
def app_config() -> dict:
    # The fuzz goes past CSRF (its own test is tests/test_security.py) into the views.
    # Server errors are answered (and counted) rather than raised into the test.
    return {"WTF_CSRF_ENABLED": False, "PROVIDER_IBAN": EUR_IBAN, "RATELIMIT_ENABLED": False,
            "PROPAGATE_EXCEPTIONS": False}


@pytest.fixture
def world(app, people) -> None:
    """Something behind id 1 of each kind: a ticket with a message, an order
    awaiting its transfer, a pack on sale."""
    with app.app_context():
        load_preset(db.session, "demo")
        owner = db.session.scalar(db.select(User).where(User.email == people["owner"]))
        pack = db.session.scalar(db.select(Pack).where(Pack.slug == "demo-hours-5"))
        ledger.grant(db.session, owner.account, pack, key="fuzz-grant", now=NOW)
        desk.open_ticket(db.session, owner.account, owner, "Site down", "It shows an error.", now=NOW,
                         policy=pack.policy)
        place(db.session, owner, "demo-hours-5")


def fill(rule: str, values: list[str]) -> str:
    """The rule's path with each argument replaced by one of ``values``."""
    given_values = iter(values)
    return ARGUMENT.sub(lambda match: quote(next(given_values, "1"), safe=""), rule)


# NUL in a string and integers beyond 32 bits fail only on PostgreSQL, the production engine.
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("role", [None, "owner", "staff"])
def test_no_route_answers_5xx_to_bad_input(app, people, world, role):
    client = app.test_client()
    server_errors: list[str] = []
    for method, rule in routes(app):
        if role:
            # Again before each route: a route may have logged the fuzz out.
            client.post("/login", data={"email": people[role], "password": PASSWORD})
        fuzz_route(client, method, rule, server_errors)

    assert server_errors == [], f"{len(server_errors)} server errors:\n" + "\n".join(server_errors[:20])


def fuzz_route(client, method: str, rule: str, server_errors: list[str]) -> None:
    """The probe's values in every place of the route, then a few of
    hypothesis's mixes of them."""

    def send(path_values: list[str], query: dict, form: dict) -> None:
        url = fill(rule, path_values) + ("?" + urlencode(query) if query else "")
        response = client.get(url) if method == "GET" else client.post(url, data=form)
        if response.status_code >= 500:
            server_errors.append(f"{method} {url} {form!r} -> {response.status_code}")

    for value in PROBE:
        everywhere = dict.fromkeys(FIELDS, value)
        send([value, value], everywhere, everywhere)

    @settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(path_values=st.lists(VALUES, min_size=2, max_size=2),
           query=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4),
           form=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8))
    def mixes(path_values, query, form):
        send(path_values, query, form)

    mixes()
