"""Issue 13: what an outside probe found, each with the class it belongs to."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from common.safety import safe_next
from tests.conftest import login, post_form

# The usual ways to smuggle another site past a "starts with /" check.
OPEN_REDIRECTS = [
    "//evil.example/",
    "/\\evil.example/",
    "/\t/evil.example/",
    "/\n/evil.example/",
    "/\r\n/evil.example/",
    "/%09/evil.example/",
    "/%2F/evil.example/",
    "/%5Cevil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "http:/evil.example",
    " //evil.example/",
    "\t//evil.example/",
]


# ---------------------------------------------------------------- 13.8 open redirect

@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_safe_next_refuses_every_way_to_another_site(target):
    assert safe_next(target, "/fallback") == "/fallback"


@pytest.mark.parametrize("target", ["/portal/\r\nSet-Cookie: session=x", "/portal/\x0b", "/portal/\x00", "/a b/"])
def test_safe_next_refuses_a_path_of_this_site_with_a_break_a_control_or_a_blank(target):
    """A URL parser drops tabs and line breaks (so "/\r\nSet-Cookie: …"
    reads as a path of ours), but the text itself would go into the Location
    header: refused whole."""
    assert safe_next(target, "/fallback") == "/fallback"


@pytest.mark.parametrize("target", ["/portal/", "/packs/x?quantity=3&method=transfer", "/portal/tickets/4#reply"])
def test_safe_next_keeps_paths_of_this_site(target):
    assert safe_next(target, "/fallback") == target


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_language_switch_never_redirects_elsewhere(client, target):
    response = post_form(client, "/language", {"lang": "fr", "next": target})

    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_login_never_redirects_elsewhere(client, people, target):
    response = post_form(client, "/login?" + urlencode({"next": target}),
                         {"email": people["owner"], "password": "correct horse battery staple", "next": target})

    assert response.status_code == 302
    assert response.headers["Location"] == "/portal/"


# ---------------------------------------------------------------- 13.6 bad input, 4xx

CONTROL = "contains a control character"


@pytest.mark.parametrize("path", ["/packs/%00", "/stripe/return?session_id=%00", "/estimate?minutes=4%005",
                                  "/portal/%0D%0A", "/?q=%1B"])
def test_a_control_character_in_a_path_or_query_is_a_400_that_says_so(client, path):
    response = client.get(path)

    assert response.status_code == 400
    assert CONTROL in response.get_data(as_text=True)


def test_a_nul_in_a_form_value_is_a_400_and_a_text_box_keeps_its_line_breaks(client):
    refused = post_form(client, "/signup", {"organisation": "Acme\x00", "name": "Ann", "email": "a@example.com"})
    assert refused.status_code == 400 and CONTROL in refused.get_data(as_text=True)

    typed = post_form(client, "/signup", {"organisation": "Acme\r\nCorp\tSA", "name": "Ann", "email": "a@example.com"})
    assert typed.status_code != 400


@pytest.mark.parametrize("path", ["/portal/tickets/2147483648", "/portal/tickets/99999999999999999999",
                                  "/portal/tickets/%C2%B2", "/portal/tickets/%D9%A1", "/desk/tickets/-1"])
def test_an_id_beyond_the_columns_or_in_other_digits_names_nothing(client, people, path):
    login(client, people["staff"])

    assert client.get(path).status_code == 404


@pytest.mark.parametrize("query", ["account=99999999999999999999", "account=%C2%B2", "account=2147483648"])
def test_a_bad_id_in_a_query_string_is_a_400_that_says_which(client, people, query):
    login(client, people["staff"])

    response = client.get("/desk/?" + query)

    assert response.status_code == 400
    assert "account must be a number" in response.get_data(as_text=True)


def test_an_amount_beyond_what_a_column_holds_is_refused_by_the_amount_rule():
    from billing.orders.services import OrderError, parse_amount

    assert parse_amount("21474836.47", "EUR") == 2**31 - 1
    with pytest.raises(OrderError, match="larger than any Forfait can record"):
        parse_amount("21474836.48", "EUR")


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_500_page_shows_after_a_database_error(app, client, people):
    """A view that saved something, then hit a database error (the probe's
    NUL on PostgreSQL did): the session's transaction is failed and the user
    expired, and the 500 page, which reads the user for its language and
    menu, raised PendingRollbackError instead of showing."""
    from flask_login import current_user

    from billing.accounts.models import User
    from common.extensions import db

    @app.get("/test/saves-then-fails")
    def saves_then_fails():
        db.session.commit()
        db.session.add(User(email=current_user.email, name="Twin", password_hash="x", language="en"))
        db.session.flush()  # the email is taken: IntegrityError

    app.config["PROPAGATE_EXCEPTIONS"] = False
    login(client, people["owner"])

    response = client.get("/test/saves-then-fails")

    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong" in page and "Log out" in page
