"""Every view decides who may see it: each URL rule of the app, for each of
its methods, is a row of some access matrix (a test that runs it for every
audience and checks a refused POST writes nothing). A new view without a row
fails here, by endpoint and method, until somebody decides who may use it."""

from __future__ import annotations

import importlib
import string
from urllib.parse import urlsplit

import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map

from tests.conftest import make_app

# The modules whose COVERS (tests/access.py) are access matrices.
MATRICES = (
    "tests.test_bank_views",
    "tests.test_catalogue_editor_access",
    "tests.test_portal_client",
    "tests.test_quotes_access",
    "tests.test_reports_views",
    "tests.test_staff_access",
    "tests.test_team_access",
    "tests.test_visitor_access",
)
# Rules no matrix needs, each with the reason.
EXEMPT = {
    ("GET", "static"): "the stylesheets, scripts and images every page loads, served to anybody as files",
}
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # answered by Flask itself from the GET and the rule


@pytest.fixture(scope="module")
def url_map(tmp_path_factory) -> Map:
    """The app's URL rules: no database is opened to read them."""
    return make_app("sqlite://", tmp_path_factory.mktemp("rules")).url_map


def rules(url_map: Map) -> dict[tuple[str, str], str]:
    """Each URL rule with each of its methods, (method, rule): its endpoint."""
    return {(method, rule.rule): rule.endpoint for rule in url_map.iter_rules()
            for method in rule.methods - IGNORED_METHODS}


def declared() -> list[tuple[str, str, str]]:
    """(module, method, URL) of every row of every matrix."""
    return [(name, method, url) for name in MATRICES
            for method, url in importlib.import_module(name).COVERS]


def rule_of(url_map: Map, method: str, url: str) -> str:
    """The rule a row's URL reaches, its placeholders filled with 1 (which
    every converter of ours accepts); NotFound or MethodNotAllowed if none."""
    names = [field for _, field, _, _ in string.Formatter().parse(url) if field]
    path = urlsplit(url.format(**dict.fromkeys(names, "1"))).path
    rule, _ = url_map.bind("localhost").match(path, method=method, return_rule=True)
    return rule.rule


def test_every_url_rule_is_in_an_access_matrix(url_map):
    covered, stale = set(), []
    for module, method, url in declared():
        try:
            covered.add((method, rule_of(url_map, method, url)))
        except (NotFound, MethodNotAllowed) as error:
            stale.append(f"{module}: {method} {url} ({error.code})")
    assert not stale, "rows that name no URL of the app: " + "; ".join(stale)
    every = rules(url_map)
    exempt = {pair for pair, name in every.items() if (pair[0], name) in EXEMPT}
    missing = sorted(set(every) - covered - exempt)
    assert not missing, "no access matrix says who may use: " + ", ".join(
        f"{every[pair]} ({method} {rule})" for pair in missing for method, rule in [pair])


def test_each_exemption_names_an_endpoint_of_the_app(url_map):
    assert set(EXEMPT) <= {(method, name) for (method, _), name in rules(url_map).items()}, \
        "an exemption names an endpoint that is gone: remove it"
