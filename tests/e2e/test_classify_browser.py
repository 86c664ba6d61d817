"""The Classify page in headless Chromium: the tiny trained adapter, one uploaded .txt file, its
label and the bar chart of the label probabilities; then pasted text, classified by one click."""

import pytest

from tests.conftest import OUTPUT
from tests.e2e.browser import browser_page, streamlit_server, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LABELS = {"Distributor", "Endorsement", "Hosting", "License", "Sponsorship"}
TEXT = "The Company appoints the Distributor as its exclusive distributor in the Territory.\n"


def test_upload_a_txt_file_and_see_its_label_and_probabilities(studio_env, tiny_library,
                                                                 tmp_path):
    from playwright.sync_api import expect

    contract = tmp_path / "distribution-agreement.txt"
    contract.write_text(TEXT)
    env = {"STUDIO_DATA_DIR": str(studio_env), "STUDIO_MODELS_DIR": str(tiny_library)}
    with streamlit_server(env=env) as url, browser_page(height=1300) as page:
        page.goto(url + "/classify")
        page.get_by_text("Classify documents").first.wait_for(timeout=90_000)
        wait_until_idle(page)

        # The model select shows the adapter, and its five labels are listed.
        model = page.locator(".st-key-classify-model")
        model.wait_for(timeout=30_000)
        assert "tiny-cuad" in model.inner_text() + model.locator("input").input_value()
        for label in LABELS:
            page.get_by_text(label, exact=True).first.wait_for(timeout=10_000)

        # Documents: upload one .txt file through the Files uploader (not the few-shot one).
        page.locator(".st-key-classify-source").get_by_text("Upload files", exact=True).click()
        wait_until_idle(page)
        uploader = page.locator(".st-key-classify-files")
        uploader.wait_for(timeout=30_000)
        uploader.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
            str(contract))
        # The chip shows the name shortened in the middle; its title holds the whole name.
        uploader.locator(f"[data-testid='stFileChipName'][title='{contract.name}']").wait_for(
            timeout=30_000)
        # The chip shows before the rerun that hands the file to the script; the button turns
        # on only after that rerun.
        button = page.locator(".st-key-classify-run").get_by_role("button", name="Classify")
        expect(button).to_be_enabled(timeout=30_000)
        expect(page.get_by_text("Add a document to classify.")).to_have_count(0)
        wait_until_idle(page)
        button.click()

        # The result: a Label metric with one of the five labels, and the probability bars.
        metric = page.locator("[data-testid='stMetric']").filter(has_text="Label")
        metric.wait_for(timeout=180_000)
        wait_until_idle(page, 180_000)
        value = metric.locator("[data-testid='stMetricValue']").inner_text().strip()
        assert value in LABELS, value
        assert "probability" in metric.locator("[data-testid='stMetricDelta']").inner_text()
        chart = page.locator("[data-testid='stPlotlyChart']")
        chart.first.wait_for(timeout=30_000)
        assert chart.count() == 1
        # Plotly keeps the figure's data on its graph div: one bar per label.
        bars = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
            .map(gd => (gd.data || []).flatMap(t => Array.from(t.y || []).concat(
                Array.from(t.x || []))).map(String))""")
        assert len(bars) == 1 and LABELS <= set(bars[0]), bars
        page.get_by_text(f"{contract.name} · tiny-cuad").wait_for(timeout=10_000)
        assert not page.locator("[data-testid='stException']").count()
        page.screenshot(path=str(OUTPUT / "classify-result.png"), full_page=True)

        # Pasted text reaches the page only as its box loses focus, which is the click on
        # Classify itself: that first click must classify (a disabled button swallowed it).
        page.locator(".st-key-classify-source").get_by_text("Paste text", exact=True).click()
        wait_until_idle(page)
        page.locator(".st-key-classify-text textarea").fill(TEXT)
        button.click()
        page.get_by_text("pasted text · tiny-cuad").wait_for(timeout=180_000)
        wait_until_idle(page, 180_000)
        assert not page.locator("[data-testid='stException']").count()
