"""What every route owes: CSRF on each POST, our 404 page, access by role."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from common.extensions import db
from common.identity.access import owner_required, staff_required
from tests.conftest import login

# Endpoints that take POSTs without the session's CSRF token because they
# authenticate otherwise (a payment webhook checks its signature): each
# entry says so, and this test still proves the others refuse.
CSRF_EXEMPT: dict[str, str] = {
    "stripe.webhook": "Stripe signs each delivery; a bad or missing signature gets 400 (tests/test_stripe.py)",
}


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of every table, and the mail folder: 'nothing written' is checked against all of it."""
    with app.app_context():
        rows = {table.name: sorted(map(tuple, db.session.execute(sa.select(table)).all()), key=repr)
                for table in db.metadata.sorted_tables}
    rows["mail"] = sorted(p.name for p in Path(app.config["MAIL_FOLDER"]).glob("*"))
    return rows


def post_routes(app) -> list[str]:
    adapter = app.url_map.bind("localhost")
    return [
        adapter.build(rule.endpoint, {name: "1" for name in rule.arguments}, method="POST")
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and rule.endpoint not in CSRF_EXEMPT
    ]


def test_every_post_route_refuses_a_request_without_csrf_token(app, client, people):
    assert login(client, people["owner"]).status_code == 302
    routes = post_routes(app)
    assert {"/login", "/signup", "/logout", "/password/forgot", "/verify/resend"} <= set(routes)
    before = snapshot(app)

    for route in routes:
        response = client.post(route, data={"email": "x@example.com", "password": "whatever it is", "lang": "fr"})
        assert response.status_code == 400, route
        assert "Bad request" in response.get_data(as_text=True), route

    assert snapshot(app) == before
    assert client.get("/portal/").status_code == 200, "still logged in: logout without a token did nothing"


def test_an_unknown_address_gets_our_404_page(client):
    response = client.get("/no/such/page")

    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Page not found" in page
    assert 'class="site-header"' in page


def test_portal_home_sends_anonymous_visitors_to_login_and_back(client):
    response = client.get("/portal/")

    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Fportal%2F"


@pytest.mark.parametrize(
    "role, shows",
    [("owner", "As the owner, you manage"), ("member", "As a pool user"), ("staff", "Back office")],
)
def test_portal_home_by_role(client, people, role, shows):
    login(client, people[role])

    response = client.get("/portal/", follow_redirects=True)  # staff are sent on to /staff/

    assert response.status_code == 200
    assert shows in response.get_data(as_text=True)


@pytest.mark.parametrize("decorator, allowed", [(staff_required, "staff"), (owner_required, "owner")])
def test_role_decorators(app, people, decorator, allowed):
    app.add_url_rule("/guarded", "guarded", decorator(lambda: "inside"))

    anonymous = app.test_client().get("/guarded")
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login?next=")
    for role, email in people.items():
        client = app.test_client()
        login(client, email)
        response = client.get("/guarded")
        if role == allowed:
            assert response.get_data(as_text=True) == "inside"
        else:
            assert response.status_code == 403, role
            assert "You do not have access to this page." in response.get_data(as_text=True)
