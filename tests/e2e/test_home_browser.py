"""The home page in headless Chromium, served by a real `streamlit run`."""

import pytest

from core.registry import Registry
from core.settings import PROJECT_ROOT
from tests.conftest import OUTPUT
from tests.e2e.browser import browser_page, streamlit_server, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REGISTRY = Registry.load(PROJECT_ROOT / "models" / "registry.toml")


def test_home_status_panel_shows_every_default_model_ready(studio_env):
    with streamlit_server(env={"STUDIO_DATA_DIR": str(studio_env)}) as url, browser_page() as page:
        page.goto(url)
        panel = page.locator(".st-key-status-panel")
        panel.wait_for(timeout=90_000)
        wait_until_idle(page)
        text = panel.inner_text()
        for role in ("embedding", "chat", "lora-base"):
            name = REGISTRY.default(role).name
            line = next(line for line in text.splitlines() if f"{name} (" in line)
            assert line.rstrip().endswith("— ready"), line
        for spec in REGISTRY.specs.values():
            assert spec.name in text
        assert "Chroma" in text and "Tika" in text
        page.screenshot(path=str(OUTPUT / "home.png"))

        page.get_by_role("link", name="Settings").first.click()
        page.get_by_text("Current configuration").wait_for(timeout=60_000)
        wait_until_idle(page)
        # the tables are drawn after the page settles: the screenshot showed two grey skeletons
        page.locator("[data-testid=stDataFrame]").first.wait_for(timeout=30_000)
        # the configuration's explanations wrap in their cells, not cut at the page's edge
        table = page.locator("[data-testid=stTable]")
        assert table.evaluate("el => el.scrollWidth - el.clientWidth") <= 1
        page.screenshot(path=str(OUTPUT / "settings.png"))
