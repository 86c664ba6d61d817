"""Debian Chromium driven by Playwright, and a Streamlit server on a free loopback port."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port, running

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic"]


@contextmanager
def streamlit_server(env: dict[str, str] | None = None, timeout: float = 60):
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address",
               "127.0.0.1", "--server.port", str(port), "--server.headless", "true"]
    url = f"http://127.0.0.1:{port}"
    with running(command, url + "/_stcore/health", ROOT / "test-output" / f"streamlit-{port}.log",
                 timeout, env=env, cwd=ROOT):
        yield url


@contextmanager
def browser_page(width: int = 1440, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            # A context of its own, so that page.context.new_page() opens a second tab
            context = browser.new_context(viewport={"width": width, "height": height})
            yield context.new_page()
        finally:
            browser.close()


def wait_until_idle(page, timeout_ms: int = 60_000) -> None:
    """Streamlit shows its running indicator while a script runs; wait for it to go, and for
    any spinner: just after a click the indicator can be yet to show while the script already
    runs under "Embedding its training documents…" (a check of the Adapters page saw it)."""
    page.wait_for_timeout(300)
    for shown in ("stStatusWidget", "stSpinner"):
        page.wait_for_selector(f"[data-testid='{shown}']", state="detached", timeout=timeout_ms)


def pick(page, combobox, typed: str, option: str, tries: int = 3) -> None:
    """Choose `option` in a Streamlit selectbox by typing `typed` into it (typing opens the list;
    a click does not). A rerun that lands while the list is open closes it and drops the typing
    (seen once on a loaded CI machine), so the list is opened again a few times."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(tries):
        wait_until_idle(page)
        combobox.click()
        combobox.press("Control+a")
        combobox.press_sequentially(typed, delay=100)
        choice = page.get_by_role("option", name=option)
        try:
            choice.wait_for(timeout=10_000)
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
            combobox.press("Escape")
            continue
        choice.click()
        return


def create_collection(page, url: str, name: str) -> None:
    """On a fresh data dir: open Documents, create a collection and wait until it is chosen."""
    page.goto(url + "/documents")
    page.get_by_text("No collections yet. Create").wait_for(timeout=90_000)
    page.get_by_role("button", name="New collection").click()
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create").click()
    page.get_by_text("0 chunks").wait_for(timeout=60_000)
    wait_until_idle(page)


def upload(page, files: list[Path]) -> None:
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
        [str(f) for f in files])
    # each file's chip, not its name: the uploader cuts a long name short ("deep-r...script.html")
    page.locator("[data-testid='stFileChip']").nth(len(files) - 1).wait_for(timeout=30_000)
    page.get_by_role("button", name="Add to collection").click()
    page.get_by_text(f"{len(files)} of {len(files)}").wait_for(timeout=180_000)
    wait_until_idle(page)
