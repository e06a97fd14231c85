"""What the browser tests share: one headless Chromium per test module (Debian's, or the one
LECTUREKIT_CHROMIUM names). Each module's own fixture (the JupyterLab server, the decks) comes
first in its tests and skips, saying why, where Chromium or Playwright is missing."""
import os
import shutil

import pytest


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    chromium_path = os.environ.get("LECTUREKIT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()
