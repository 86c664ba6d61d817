"""Load the SQuAD sample from the Evaluate page, run an evaluation and see its chart."""

import pytest

from core.rag.evaluate import list_runs
from core.settings import load_settings
from tests.conftest import OUTPUT
from tests.e2e.browser import browser_page, streamlit_server, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_evaluate_the_squad_sample_and_see_the_chart(studio_env):
    with streamlit_server(env={"STUDIO_DATA_DIR": str(studio_env)}) as url, \
            browser_page(height=1800) as page:
        page.goto(url + "/evaluate")
        page.get_by_role("button", name="Load the SQuAD sample").click(timeout=90_000)
        page.get_by_role("button", name="Run evaluation").wait_for(timeout=180_000)
        wait_until_idle(page, 180_000)
        picker = page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]")
        assert "squad-sample" in picker.text_content() + picker.locator("input").input_value()
        page.get_by_role("button", name="Run evaluation").click()
        chart = page.locator("[data-testid='stPlotlyChart'] .main-svg").first
        try:
            chart.wait_for(timeout=180_000)
        finally:
            page.screenshot(path=str(OUTPUT / "evaluate.png"), full_page=True)
        wait_until_idle(page)
        page.get_by_text("Per question").scroll_into_view_if_needed()
        page.screenshot(path=str(OUTPUT / "evaluate.png"), full_page=True)
        # A bar per method and measure: three methods, three retrieval measures.
        assert page.locator("[data-testid='stPlotlyChart'] g.trace.bars").count() == 3
        assert page.get_by_role("button", name="Download CSV").is_visible()
    [run] = list_runs(load_settings(), "squad-sample")
    assert run["status"] == "done" and set(run["summary"]) == {"dense", "bm25", "hybrid"}
