"""Debian's chromium driven by Playwright: found (or the test skipped), launched, logged in to Label Studio.

Playwright cannot download its own browser here, so it is given Debian's ``chromium``
(``scripts/test`` apt-installs it when missing) through ``executable_path``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from prelabel.labelstudio.server import LocalLabelStudio

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = ["chromium", "chromium_path", "log_in"]


def chromium_path() -> str:
    """Debian's chromium, or skip the calling test with the reason."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (scripts/test apt-installs it)")
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless chromium for one test, closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Page, server: LocalLabelStudio) -> None:
    """Log in through Label Studio's own form as the user the server was started with."""
    page.goto(server.url + "/user/login/")
    page.fill("input[name=email]", server.username)
    page.fill("input[name=password]", server.password.get_secret_value())
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url, timeout=30_000)
