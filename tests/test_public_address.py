"""Links are built from the configured public address, never from the Host a
request names; requests for another host are refused (issue 13, point 1)."""

from __future__ import annotations

import pytest
from flask import request

from tests.conftest import CSRF_META, csrf_token, post_form
from tests.smtp import smtp_server  # noqa: F401 (a fixture)
from tests.test_config import flask

PUBLIC = "support.example.com"


@pytest.fixture
def app_config(smtp_server, request):  # noqa: F811 (the fixture imported above)
    return {**smtp_server.config, "SERVER_NAME": PUBLIC, "PREFERRED_URL_SCHEME": "https",
            **getattr(request, "param", {})}


@pytest.fixture
def client(app):
    """A browser on the https site sends its Referer, which Flask-WTF checks over https."""
    client = app.test_client()
    client.environ_base["HTTP_REFERER"] = f"https://{PUBLIC}/"
    return client


def all_links(smtp_server) -> list[str]:  # noqa: F811
    import re

    links = []
    for message in smtp_server.messages:
        for part in message.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                links += re.findall(r"https?://[^\s\"'<>]+", part.get_content())
    return links


@pytest.mark.parametrize("app_config", [{"PREFERRED_URL_SCHEME": "http"}], indirect=True)
def test_a_reset_asked_with_a_foreign_host_is_refused_and_mails_nothing(app, client, people, smtp_server):  # noqa: F811
    token = csrf_token(client, "/password/forgot")

    response = client.post("/password/forgot", data={"email": people["staff"], "csrf_token": token},
                           headers={"Host": "evil.example"})

    assert response.status_code == 400
    assert "not served at that address" in response.get_data(as_text=True)
    assert smtp_server.messages == []
    assert not [link for link in all_links(smtp_server) if "evil.example" in link]


def test_an_absolute_link_has_the_public_scheme_even_if_the_request_came_in_plain_http(app):
    """Behind a proxy that ends TLS, the request the app sees is http."""
    from flask import url_for

    with app.test_request_context("/", base_url=f"http://{PUBLIC}"):
        assert url_for("auth.login", _external=True) == f"https://{PUBLIC}/login"


@pytest.mark.parametrize("app_config", [{"TRUSTED_HOSTS": [PUBLIC, "www.support.example.com"]}], indirect=True)
def test_links_come_from_the_public_address_even_from_another_trusted_host(app, people, smtp_server):  # noqa: F811
    """An operator may accept a second name; the links still use the public one."""
    client = app.test_client()
    www = {"Host": "www.support.example.com", "Referer": "https://www.support.example.com/"}
    page = client.get("/password/forgot", headers=www).get_data(as_text=True)
    token = CSRF_META.search(page).group(1)

    response = client.post("/password/forgot", data={"email": people["staff"], "csrf_token": token}, headers=www)

    assert response.status_code == 302
    links = all_links(smtp_server)
    assert links and all(link.startswith(f"https://{PUBLIC}/") for link in links), links
    assert any("/password/reset/" in link for link in links)


def test_the_public_address_builds_every_link_of_a_mail_sent_in_a_request(app, client, people, smtp_server):  # noqa: F811
    post_form(client, "/password/forgot", {"email": people["owner"]})

    link = smtp_server.last_link(people["owner"], "/password/reset/")

    assert link.startswith(f"https://{PUBLIC}/password/reset/")


@pytest.fixture
def remote_addr_route(app):
    app.add_url_rule("/_test/remote", "test_remote", lambda: request.remote_addr)


def test_forwarded_headers_are_ignored_without_a_proxy_count(app, client, remote_addr_route):
    response = client.get("/_test/remote", headers={"X-Forwarded-For": "203.0.113.9"})

    assert response.get_data(as_text=True) == "127.0.0.1"


@pytest.mark.parametrize("app_config", [{"PROXY_COUNT": 1}], indirect=True)
def test_one_proxy_is_trusted_for_the_client_address_but_not_for_another_host(app, client, remote_addr_route):
    response = client.get("/_test/remote", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
    assert response.get_data(as_text=True) == "203.0.113.9"

    forged = client.get("/_test/remote", headers={"X-Forwarded-Host": "evil.example"})
    assert forged.status_code == 400


def test_cookies_are_secure_when_the_public_address_is_https(app, client, people):
    from tests.conftest import login

    response = login(client, people["owner"], remember="y")

    cookies = response.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in cookie and "HttpOnly" in cookie for cookie in cookies), cookies


def test_outside_development_the_public_address_is_required(tmp_path):
    result = flask(tmp_path, "routes", FORFAIT_SERVER_NAME="")

    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("forfait: configuration error: FORFAIT_SERVER_NAME must be set")


@pytest.mark.parametrize("value", ["https://support.example.com", "support.example.com/forfait"])
def test_a_public_address_with_a_scheme_or_a_path_is_refused(tmp_path, value):
    result = flask(tmp_path, "routes", FORFAIT_SERVER_NAME=value)

    assert result.returncode != 0
    assert "is a host name and optional port" in result.stderr
