"""Upload a paper, ask about it, and see the answer beside its scored chunks."""

import pytest

from tests.conftest import OUTPUT, shared
from tests.e2e.browser import (browser_page, create_collection, streamlit_server, upload,
                               wait_until_idle)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_upload_ask_and_see_answer_with_scored_chunks(studio_env):
    gan = shared("papers", "1406.2661_GAN.pdf")
    env = {"STUDIO_DATA_DIR": str(studio_env), "STUDIO_CHAT_MODEL": "smollm2-135m-instruct"}
    with streamlit_server(env=env) as url, browser_page(height=1600) as page:
        create_collection(page, url, "gan-paper")
        upload(page, [gan])

        page.get_by_role("link", name="Chat").click()
        box = page.get_by_placeholder("Ask about gan-paper")
        box.wait_for(timeout=60_000)
        box.fill("What are the two models trained in a generative adversarial net?")
        box.press("Enter")
        page.get_by_text("tokens/s").first.wait_for(timeout=300_000)
        wait_until_idle(page, 300_000)
        answer = page.locator("[data-testid='stChatMessage']").nth(1).inner_text()
        assert len(answer.split()) > 5
        first = page.locator(".st-key-hit-1")
        assert "1406.2661_GAN.pdf" in first.inner_text() and "score" in first.inner_text()
        assert page.locator("[class*='st-key-hit-']").count() == 5
        page.locator("[data-testid='stAppViewContainer']").evaluate("el => el.scrollTo(0, 0)")
        page.wait_for_timeout(500)
        page.screenshot(path=str(OUTPUT / "chat.png"))
