"""Which Chromium the browser tests drive: Debian's when installed, else the
one `playwright install chromium` downloaded (`make browser` without root);
under CI=true, none at all is a failure, never a skip."""

from __future__ import annotations

import pytest

from tests import conftest


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine with neither Chromium until a test puts one there."""
    debian = tmp_path / "usr-bin-chromium"
    downloaded = tmp_path / "ms-playwright" / "chrome"
    monkeypatch.setattr(conftest, "DEBIAN_CHROMIUM", (str(debian),))
    monkeypatch.setattr(conftest, "IN_CI", True)
    return debian, downloaded


def install(path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return str(path)


def test_debian_chromium_is_preferred_when_both_are_there(machine):
    debian, downloaded = machine
    install(debian), install(downloaded)
    args = conftest.chromium_launch_args({}, str(downloaded))
    assert args["executable_path"] == str(debian)
    assert "--no-sandbox" in args["args"]


def test_playwright_chromium_is_used_in_ci_where_debian_has_none(machine):
    _, downloaded = machine
    install(downloaded)
    args = conftest.chromium_launch_args({"headless": True}, str(downloaded))
    assert args["executable_path"] == str(downloaded)
    assert args["headless"] is True


def test_ci_fails_only_when_there_is_no_chromium_at_all(machine):
    _, downloaded = machine
    with pytest.raises(pytest.fail.Exception, match="no Chromium"):
        conftest.chromium_launch_args({}, str(downloaded))


def test_outside_ci_no_chromium_leaves_the_choice_to_playwright(machine, monkeypatch):
    _, downloaded = machine
    monkeypatch.setattr(conftest, "IN_CI", False)
    args = conftest.chromium_launch_args({}, str(downloaded))
    assert "executable_path" not in args
