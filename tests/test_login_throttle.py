"""Login throttling counts failures and cannot lock a user out (issue 13,
point 4): a correct password is never refused for failures someone else
made elsewhere; the guesser waits longer and longer; Redis shares the
counts between processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import login

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app_config(request):
    """Settings a test gives by indirect parametrisation."""
    return getattr(request, "param", {})


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_a_correct_password_is_never_refused_for_failures_made_elsewhere(app, people):
    guesser = from_address(app, "192.0.2.66")
    answers = [login(guesser, people["owner"], f"guess number {n}").status_code for n in range(50)]
    assert answers[:5] == [422] * 5 and set(answers[5:]) == {429}

    refused = [address for address in (f"198.51.100.{n}" for n in range(1, 11))
               if login(from_address(app, address), people["owner"]).status_code != 302]

    assert refused == []
    # The guesser's own address still waits, even with the right password: the brake holds for them.
    held = login(guesser, people["owner"])
    assert held.status_code == 429
    assert "Too many failed attempts: try again in" in held.get_data(as_text=True)


@pytest.mark.parametrize("app_config", [{"LOGIN_ADDRESS_RATE_LIMIT": "10 per minute"}], indirect=True)
def test_a_known_device_is_not_held_by_its_addresss_failures(app, people):
    """Behind one proxy: someone guessing many accounts from the office's
    address does not keep a colleague out of their own account."""
    colleague = from_address(app, "203.0.113.1")
    assert login(colleague, people["member"]).status_code == 302
    assert colleague.get_cookie("forfait_device") is not None
    colleague.post("/logout", data={"csrf_token": ""})  # whatever happens, the device cookie stays
    guesser = from_address(app, "203.0.113.1")
    for n in range(12):
        login(guesser, f"someone{n}@example.com", "a wrong guess")

    newcomer = login(from_address(app, "203.0.113.1"), people["owner"])
    assert newcomer.status_code == 429
    assert login(from_address(app, "203.0.113.1"), people["member"]).status_code == 429
    # The colleague's browser is known for their account.
    colleague_again = app.test_client()
    colleague_again.environ_base["REMOTE_ADDR"] = "203.0.113.1"
    colleague_again.set_cookie("forfait_device", colleague.get_cookie("forfait_device").value)
    assert login(colleague_again, people["member"]).status_code == 302


@pytest.mark.parametrize("app_config", [{"LOGIN_ACCOUNT_RATE_LIMIT": "3 per hour"}], indirect=True)
def test_guesses_spread_over_addresses_are_counted_per_account_for_those_addresses(app, people):
    for n in range(3):
        assert login(from_address(app, f"192.0.2.{n}"), people["owner"], "wrong one").status_code == 422

    assert login(from_address(app, "192.0.2.0"), people["owner"], "wrong again").status_code == 429
    assert login(from_address(app, "192.0.2.1"), people["owner"]).status_code == 429
    # An address that never failed on the account, with the right password: in.
    assert login(from_address(app, "198.51.100.20"), people["owner"]).status_code == 302


def test_a_correct_login_forgives_the_mistakes_made_before_it(app, people):
    client = from_address(app, "192.0.2.9")
    for _ in range(4):
        login(client, people["owner"], "typo in it")
    assert login(client, people["owner"]).status_code == 302
    client.post("/logout")
    again = from_address(app, "192.0.2.9")
    for _ in range(4):
        assert login(again, people["owner"], "another typo").status_code == 422


SCRIPT = """
import json, sys
from pathlib import Path
from tests.conftest import base_settings, login
from app import create_app
settings = json.loads(sys.argv[1])
app = create_app({**base_settings(settings.pop("database_url"), Path(settings.pop("folder"))), **settings})
client = app.test_client()
client.environ_base["REMOTE_ADDR"] = "192.0.2.77"
print(" ".join(str(login(client, "owner@example.com", "wrong guess").status_code) for _ in range(int(sys.argv[2]))))
"""


def in_another_process(settings: dict, tries: int) -> list[int]:
    import json

    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(settings), str(tries)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [int(code) for code in done.stdout.split()]


@pytest.mark.parametrize("storage, expected", [("redis://127.0.0.1:6379", [422, 429, 429]),
                                               ("memory://", [422, 422, 422])])
def test_two_processes_share_one_count_in_redis(app, people, tmp_path, storage, expected):
    """With Redis (as the README says to run several processes) the second
    process knows the first one's failures; each memory store counts alone."""
    settings = {"database_url": app.config["SQLALCHEMY_DATABASE_URI"], "folder": str(tmp_path),
                "RATELIMIT_STORAGE_URI": storage, "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
                "LOGIN_RATE_LIMIT": "3 per minute"}

    assert in_another_process(settings, 2) == [422, 422]
    assert in_another_process(settings, 3) == expected


def test_several_processes_with_the_memory_store_are_warned_about(monkeypatch, caplog, tmp_path):
    from tests.conftest import make_app

    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    with caplog.at_level(logging.WARNING):
        make_app(f"sqlite:///{tmp_path / 'a.sqlite'}", tmp_path)
    assert "each keeps its own count of failed logins" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        make_app(f"sqlite:///{tmp_path / 'a.sqlite'}", tmp_path, RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379")
    assert "each keeps its own count" not in caplog.text
