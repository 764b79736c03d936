"""Browser journeys reach pages as a person does (issue 12.10): by clicking
from where they are. Only tests/journeys.py types an address: the site's
own (``start``), a link read in a mail (``follow_mail_link``) and another
site's (``other_site``).
A ``goto`` anywhere else is how pages nested in pages escaped the suite."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ALLOWED = {("journeys.py", "start"), ("journeys.py", "follow_mail_link"), ("journeys.py", "other_site")}


def addresses_typed(source: str) -> list[tuple[str, int]]:
    """(innermost function, line) of each ``.goto(...)`` call in ``source``."""
    found = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "goto":
            found.append((function, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(source), "<module>")
    return found


def test_only_the_journeys_helpers_type_an_address():
    typed = [f"{path.name}:{line} in {function}()"
             for path in sorted(TESTS.glob("*.py"))
             for function, line in addresses_typed(path.read_text())
             if (path.name, function) not in ALLOWED]
    assert typed == [], "click there from where the person is (tests/journeys.py), do not type the address"


def test_a_planted_goto_is_found():
    planted = "def test_x(page, url):\n    def inner():\n        page.goto(url + '/desk/')\n    page.goto(url)\n"
    assert addresses_typed(planted) == [("inner", 3), ("test_x", 4)]
