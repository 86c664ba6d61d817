"""Upload two PDFs through the real browser and see both stored; delete one, add another file,
and the deleted one stays deleted."""

import pytest

from core.rag import store
from core.samples import SAMPLE_PAPER
from core.settings import load_settings
from tests.conftest import OUTPUT, shared
from tests.e2e.browser import (
    browser_page,
    create_collection,
    streamlit_server,
    upload,
    wait_until_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def stored_files() -> set[str]:
    return {d["file"] for d in store.documents(
        store.get_collection(store.client(load_settings()), "papers"))}


def test_upload_two_see_both_delete_one_add_another_and_the_deleted_stays_deleted(studio_env):
    gan = shared("papers", "1406.2661_GAN.pdf")
    notes = shared("papers", "2505.23724v1.txt")
    with streamlit_server(env={"STUDIO_DATA_DIR": str(studio_env)}) as url, \
            browser_page(height=1300) as page:
        create_collection(page, url, "papers")
        # the form closes with its collection made: open, it covered the upload box
        page.get_by_label("Name").wait_for(state="hidden", timeout=10_000)
        picker = page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]")
        assert "papers" in picker.text_content() + picker.locator("input").input_value()
        upload(page, [SAMPLE_PAPER, gan])
        page.get_by_text("Documents (2)").wait_for(timeout=30_000)
        wait_until_idle(page)
        page.screenshot(path=str(OUTPUT / "documents.png"), full_page=True)
        assert stored_files() == {SAMPLE_PAPER.name, gan.name}
        # the uploader is empty again: the next "Add" must not bring these two back
        assert page.locator("[data-testid='stFileUploaderFile']").count() == 0

        page.locator(".st-key-doc").click()
        page.get_by_role("option", name=gan.name).click()
        wait_until_idle(page)
        page.get_by_role("button", name="Delete", exact=True).click()
        page.get_by_text("and its upload is removed").wait_for(timeout=10_000)
        page.locator(".st-key-delete-doc button").click()
        page.get_by_text("Documents (1)").wait_for(timeout=30_000)
        wait_until_idle(page)
        page.screenshot(path=str(OUTPUT / "documents-deleted.png"), full_page=True)

        upload(page, [notes])
        page.get_by_text("Documents (2)").wait_for(timeout=30_000)
        wait_until_idle(page)
        page.screenshot(path=str(OUTPUT / "documents-after-delete.png"), full_page=True)
    assert stored_files() == {SAMPLE_PAPER.name, notes.name}
