"""Headless Chromium for the tests that drive a page: the distribution's own browser (Debian's `chromium`,
which `scripts/setup-host --for-tests` installs), driven by Playwright through its executable path, so no
browser is ever downloaded."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str:
    """The host's Chromium; a missing one is a broken set-up that fails, naming the package, never a skip."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        "no Chromium on PATH (looked for chromium, chromium-browser): install Debian's chromium package "
        "(./scripts/setup-host --for-tests does)"
    )


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield browser
        finally:
            browser.close()
