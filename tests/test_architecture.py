"""The floors of the house, read from the imports (README, "Architecture").

Top to bottom: ``app.py`` and ``commands/``; the two web layers ``shop/`` and
``portal/``; ``common/``, the ground both stand on; ``billing/``, the rules and
services, which knows nothing of the web. A module may import from its own
floor and from the floors below, never from above, and the two web layers
never import each other. Inside ``billing/`` the ledger moves units and
records what happened: it never calls up into the orders that follow from it.
Nobody borrows another module's ``_private`` names.

Run alone: ``pytest tests/test_architecture.py``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("billing", "common", "shop", "portal", "commands")

# What each floor may import, besides itself and the standard library and
# third-party packages (which are not checked here, except Flask in billing).
ALLOWED = {
    "billing": {"billing"},
    "common": {"common", "billing"},
    "shop": {"shop", "common", "billing"},
    "portal": {"portal", "common", "billing"},
    "commands": {"commands", "shop", "portal", "common", "billing"},
    "app": {"commands", "shop", "portal", "common", "billing"},
}
# billing/ runs under the command line and any session: no web framework.
WEB_FRAMEWORKS = ("flask", "flask_babel", "flask_login", "flask_wtf", "flask_sqlalchemy", "werkzeug", "wtforms")
# Sub-packages of billing/ that must not call the services of others (their
# tables, ``*.models``, they may read): the ledger moves units; the orders
# that follow from it are started by whoever called it.
BILLING_NEVER = {
    "billing.ledger": ("billing.orders", "billing.desk", "billing.subscriptions"),
    "billing.catalogue": ("billing.orders", "billing.desk", "billing.ledger.services"),
    "billing.notifications": ("billing.orders", "billing.desk", "billing.ledger.services"),
}


@dataclass(frozen=True)
class Breach:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str, list[ast.alias]]]:
    """(line, module imported, names taken from it) for every import, at any depth."""
    found: list[tuple[int, str, list[ast.alias]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base, node.names))
    return found


def breaches(root: Path) -> list[Breach]:
    files = [root / "app.py", *(p for package in PACKAGES for p in sorted((root / package).rglob("*.py")))]
    modules = {module_name(p, root) for p in files if p.exists()}
    found: list[Breach] = []
    for path in files:
        if not path.exists():
            continue
        module = module_name(path, root)
        floor = module.split(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        where = str(path.relative_to(root))
        imported_modules: dict[str, str] = {}
        for line, target, names in imports(tree, module, path.name == "__init__.py"):
            top = target.split(".")[0]
            if top in ALLOWED and top not in ALLOWED[floor]:
                found.append(Breach(where, line, f"{floor} imports {target} (a floor above, or beside)"))
            if floor == "billing" and top in WEB_FRAMEWORKS:
                found.append(Breach(where, line, f"billing imports {target}: billing knows nothing of the web"))
            for inside, never in BILLING_NEVER.items():
                if module.startswith(inside) and target.startswith(never) and not target.endswith(".models"):
                    found.append(Breach(where, line, f"{module} calls up into {target}"))
            for alias in names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(Breach(where, line, f"borrows {target}.{alias.name}, a private name"))
                elif f"{target}.{alias.name}" in modules:
                    imported_modules[alias.asname or alias.name] = target
            if not names and top in ALLOWED:
                imported_modules[target.split(".")[-1]] = target
        # module._private: another module's private name reached through an import.
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported_modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(Breach(where, node.lineno, f"borrows {node.value.id}.{node.attr}, a private name"))
    return found


def test_every_module_stays_on_its_floor():
    found = breaches(ROOT)
    assert not found, "floors breached:\n" + "\n".join(map(str, found))


@pytest.mark.parametrize("planted, expected", [
    ("billing/ledger/planted.py", "from flask import request\n"),
    ("billing/ledger/planted.py", "from billing.orders import services as orders\n"),
    ("common/planted.py", "from portal import views\n"),
    ("shop/planted.py", "from portal.tickets import bp\n"),
    ("portal/planted.py", "from commands import jobs\n"),
    ("portal/planted.py", "from billing.orders.services import _transaction\n"),
    ("portal/planted.py", "from billing.orders import services as orders\norders._cancel\n"),
])
def test_a_planted_breach_is_found(tmp_path, planted, expected):
    """The check reads what is written: a copy of the tree with one bad
    import fails it, and names the file."""
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            copy = tmp_path / path.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(path.read_text())
    (tmp_path / "app.py").write_text((ROOT / "app.py").read_text())
    (tmp_path / planted).write_text(expected)
    found = breaches(tmp_path)
    assert [b.path for b in found] == [planted], found


# One way to do each common thing: where it lives, and what stands for it elsewhere.
ONE_WAY = [
    ("billing/clock.py", re.compile(r"datetime\.now\(|\bdef _now\("), "the clock is billing.clock.now()"),
    ("billing/errors.py", re.compile(r"^def N_\(", re.M), "N_ is billing.errors.N_"),
    ("common/fragments.py", re.compile(r"vary\.add\(|render_block\("), "a page or its fragment is page_or_fragment()"),
    ("billing/transaction.py", re.compile(r"\bcommit: bool\b|\bdef _transaction\("), "a unit of work is atomic()"),
]


@pytest.mark.parametrize("home, pattern, rule", ONE_WAY, ids=[rule for _h, _p, rule in ONE_WAY])
def test_one_way_to_do_each_common_thing(home, pattern, rule):
    found = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}"
             for package in ("app.py", *PACKAGES)
             for path in ([ROOT / package] if package.endswith(".py") else sorted((ROOT / package).rglob("*.py")))
             if str(path.relative_to(ROOT)) != home
             for text in [path.read_text()]
             for match in pattern.finditer(text)]
    assert not found, f"{rule}, not: {', '.join(found)}"


# Each module of billing/, imported first in a fresh interpreter (a benchmark,
# a command, a test file may start anywhere): a child forked per module, after
# the third-party packages are loaded once, keeps it quick.
FIRST_IMPORT = """
import os, sys, sqlalchemy, sqlalchemy.orm
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(name)
        except Exception as error:
            print(f"{name}: {type(error).__name__}: {error}")
            os._exit(1)
        os._exit(0)
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]):
        failed.append(name)
sys.exit(1 if failed else 0)
"""


def test_every_billing_module_imports_first():
    import subprocess
    import sys

    modules = sorted(module_name(path, ROOT) for path in (ROOT / "billing").rglob("*.py"))
    done = subprocess.run([sys.executable, "-c", FIRST_IMPORT, *modules], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
