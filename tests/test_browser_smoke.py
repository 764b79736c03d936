"""The browser infrastructure itself: Debian's Chromium drives the live app."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.journeys import start

pytestmark = pytest.mark.browser


def test_language_switcher_sets_html_lang(page: Page, live_server):
    url, _app = live_server
    start(page, url)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("button", name="Français").click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
