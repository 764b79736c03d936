"""Issue 13: what an outside probe found, each with the class it belongs to."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from common.safety import safe_next
from tests.conftest import post_form

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
