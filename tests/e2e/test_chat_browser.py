"""Upload a paper, ask about it, and see the answer beside its scored chunks, whose citations
and sources open in their page; stop an answer while it streams and carry on; a new question and
its answer that start on screen; two tabs on one conversation, with a busy input while an answer
streams and a reload that keeps the collection, the conversation and its sources; the BERT
question answered from the BERT paper, with a citation.
"""

import re
import time
from contextlib import contextmanager

import psutil
import pytest

from core.rag.retrieval import DEFAULT_K
from tests.conftest import OUTPUT, require_model, shared
from tests.e2e.browser import (
    browser_page,
    create_collection,
    pick,
    streamlit_server,
    upload,
    wait_until_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
STOPPED_NOTE = "Stopped before the end."


@contextmanager
def open_chat_with_gan_paper(studio_env, height: int = 1600):
    """The app on a fresh data dir with the light chat model, the GAN paper in `gan-paper`,
    and the browser on the Chat page: yields (url, page, question box)."""
    gan = shared("papers", "1406.2661_GAN.pdf")
    env = {"STUDIO_DATA_DIR": str(studio_env), "STUDIO_CHAT_MODEL": "smollm2-135m-instruct"}
    with streamlit_server(env=env) as url, browser_page(height=height) as page:
        create_collection(page, url, "gan-paper")
        upload(page, [gan])
        page.get_by_role("link", name="Chat").click()
        box = page.get_by_placeholder("Ask about gan-paper")
        box.wait_for(timeout=60_000)
        yield url, page, box


def message(page, n: int):
    return page.locator("[data-testid='stChatMessage']").nth(n)


def answers_of(page, count: int = 4) -> list[str]:
    """The texts of the first `count` answers (messages 1, 3, 5, …)."""
    return [message(page, n).inner_text() for n in range(1, 2 * count, 2)]


def server_cpu_seconds(url: str) -> float:
    """CPU time used so far by the `streamlit run` serving `url` (a child of this process)."""
    port = url.rsplit(":", 1)[1]
    server = next(p for p in psutil.Process().children(recursive=True)
                  if "streamlit" in " ".join(p.cmdline()) and port in p.cmdline())
    times = server.cpu_times()
    return times.user + times.system


def scroll_to_top(page) -> None:
    page.locator("[data-testid='stAppViewContainer']").evaluate("el => el.scrollTo(0, 0)")
    page.wait_for_timeout(500)


def ask_about_the_two_models(page, box) -> None:
    """Ask the GAN question and wait until the answer has finished."""
    box.fill("What are the two models trained in a generative adversarial net?")
    box.press("Enter")
    page.get_by_text("tokens/s").first.wait_for(timeout=300_000)
    wait_until_idle(page, 300_000)


def test_stop_keeps_the_partial_answer_and_the_chat_goes_on(studio_env):
    with open_chat_with_gan_paper(studio_env) as (url, page, box):
        # ~250 tokens, and on-topic enough that the answerability check lets the model write.
        # The 135M answered "Write a long essay about how the generator and the discriminator
        # … are trained." in one sentence once chunks lost their page numbers (chunking v6),
        # which left nothing to stop.
        box.fill("Explain in detail how generative adversarial nets are trained, covering the "
                 "generator, the discriminator and the minimax game.")
        box.press("Enter")
        stop = page.locator(".st-key-stop button")
        stop.wait_for(timeout=120_000)
        streamed = message(page, 1).locator("[data-testid='stMarkdown']").first
        streamed.wait_for(timeout=300_000)
        deadline = time.monotonic() + 120
        while len(streamed.inner_text().split()) < 12 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        page.screenshot(path=str(OUTPUT / "chat-stop-streaming.png"))
        before = streamed.inner_text().split()
        clicked = time.monotonic()
        stop.click()

        # (a) The stream ends at once, and no generation goes on behind the page.
        page.get_by_text(STOPPED_NOTE).wait_for(timeout=10_000)
        took = time.monotonic() - clicked
        wait_until_idle(page, 30_000)
        kept = streamed.inner_text()
        cpu = server_cpu_seconds(url)
        page.wait_for_timeout(3000)
        assert streamed.inner_text() == kept
        assert server_cpu_seconds(url) - cpu < 0.5  # the model is not generating
        assert took < 5, f"the stopped answer appeared {took:.1f} s after the click"

        # (b) The partial answer stays in the conversation, marked as stopped.
        assert stop.count() == 0 and STOPPED_NOTE in message(page, 1).inner_text()
        answer = kept.split()
        assert answer[:10] == before[:10] and len(answer) < len(before) + 60
        scroll_to_top(page)
        page.screenshot(path=str(OUTPUT / "chat-stopped.png"))

        # (c) The chat goes on, even after a Stop before the first token: the next question,
        # asked at once, waits for the model instead of sharing it with the stopped one.
        box.fill("Write a long essay about the discriminator of generative adversarial nets "
                 "and how it is trained.")
        box.press("Enter")
        stop.click(timeout=120_000)
        message(page, 3).get_by_text(STOPPED_NOTE).wait_for(timeout=30_000)
        box.fill("What are the two models trained in a generative adversarial net?")
        box.press("Enter")
        message(page, 5).get_by_text("tokens/s").wait_for(timeout=120_000)
        wait_until_idle(page, 300_000)
        assert page.locator("[data-testid='stChatMessage']").count() == 6  # each turn once
        assert STOPPED_NOTE in message(page, 1).inner_text()
        assert STOPPED_NOTE in message(page, 3).inner_text()
        assert STOPPED_NOTE not in message(page, 5).inner_text()
        assert len(message(page, 5).inner_text().split()) > 5
        scroll_to_top(page)
        page.screenshot(path=str(OUTPUT / "chat-after-stop.png"))
        print(f"stopped answer shown {took:.1f} s after the click; {len(before)} words "
              f"streamed at the click, {len(answer)} kept")


def test_an_answer_beside_its_scored_chunks_whose_citations_and_sources_open_in_their_page(
        studio_env):
    with open_chat_with_gan_paper(studio_env) as (_url, page, box):
        ask_about_the_two_models(page, box)
        answer = message(page, 1).inner_text()
        assert len(answer.split()) > 5
        first = page.locator(".st-key-hit-1")
        assert "1406.2661_GAN.pdf" in first.inner_text() and "match" in first.inner_text()
        assert page.locator("[class*='st-key-hit-']").count() == DEFAULT_K
        scroll_to_top(page)
        page.screenshot(path=str(OUTPUT / "chat.png"))

        dialog = page.locator("[data-testid='stDialog']")
        cites = page.locator("[class*='st-key-cite-0-'] button")
        if cites.count():  # the model may cite nothing
            cites.filter(visible=True).first.click()
            dialog.locator("img[alt*='highlighted']").wait_for(timeout=60_000)
            wait_until_idle(page)
            dialog.screenshot(path=str(OUTPUT / "page-view-citation.png"))
            page.keyboard.press("Escape")
            dialog.wait_for(state="detached", timeout=10_000)
        # A button with a tooltip is in the page twice, once hidden.
        page.locator(".st-key-view-1 button").filter(visible=True).first.click()
        image = dialog.locator("img[alt*='highlighted']")
        image.wait_for(timeout=60_000)
        wait_until_idle(page)
        assert image.evaluate("img => img.naturalWidth") > 1000  # rendered, not a thumbnail
        # the passage with the lines around it, not a page taller than the dialog
        assert image.evaluate("img => img.naturalHeight < img.naturalWidth")
        dialog.screenshot(path=str(OUTPUT / "page-view-source.png"))
        shown = int(image.get_attribute("alt").split("Page ")[1].split()[0])
        dialog.get_by_role("button", name="Next").click()
        dialog.get_by_text(f"Passage [1] is on page {shown}.").wait_for(timeout=60_000)
        dialog.locator(f"img[alt^='Page {shown + 1} of']").wait_for(timeout=60_000)
        wait_until_idle(page)
        dialog.screenshot(path=str(OUTPUT / "page-view-next.png"))


def settled(read, want, seconds: float = 30):
    """read()'s value once it equals `want`, else its last value after `seconds`."""
    deadline = time.monotonic() + seconds
    while (got := read()) != want and time.monotonic() < deadline:
        time.sleep(0.5)
    return got


def comes_on_screen(page, n: int, height: int, what: str) -> None:
    """Message `n`'s start is on screen within 15 s (a busy machine draws and scrolls late)
    and still there a second later."""
    deadline = time.monotonic() + 15
    while True:
        page.wait_for_timeout(1000)
        top = message(page, n).bounding_box()["y"]
        if 0 <= top < height - 100:
            page.wait_for_timeout(1000)
            top = message(page, n).bounding_box()["y"]
            assert 0 <= top < height - 100, f"{what} left the screen: y={top:.0f}"
            return
        assert time.monotonic() < deadline, f"{what} is drawn at y={top:.0f}"


def test_a_new_question_and_its_finished_answer_start_on_screen(studio_env):
    """A page with a chat input sticks to its bottom; on a short screen the sources beside an
    answer reach far below it, and the rerun that shows the finished answer left its start
    above the screen. Once the page stops following the bottom, a question asked after a long
    answer must not be drawn below the screen either."""
    height = 800
    with open_chat_with_gan_paper(studio_env, height=height) as (_url, page, box):
        for n, question in ((1, "Write a long essay about how the generator and the "
                                "discriminator of generative adversarial nets are trained."),
                            (3, "What does the discriminator estimate?")):
            box.fill(question)
            box.press("Enter")
            page.locator(".st-key-stop").wait_for(timeout=120_000)
            comes_on_screen(page, n - 1, height, f"question {n}")
            message(page, n).get_by_text("tokens/s").wait_for(timeout=300_000)
            wait_until_idle(page, 300_000)
            comes_on_screen(page, n, height, f"answer {n}")
            # the sources beside it fit between the top of the screen and the question box:
            # their chunks scroll inside the panel
            panel = page.locator(".st-key-sources-panel").bounding_box()
            box_top = page.locator("[data-testid=stChatInput]").bounding_box()["y"]
            assert 0 <= panel["y"] and panel["y"] + panel["height"] <= box_top, \
                f"the sources panel is drawn from y={panel['y']:.0f}, {panel['height']:.0f} px tall"
            page.screenshot(path=str(OUTPUT / f"chat-answer-{n}-in-view.png"))


def test_two_tabs_on_one_conversation_keep_every_turn_and_a_reload_keeps_the_chat(studio_env):
    with open_chat_with_gan_paper(studio_env) as (_url, a, box_a):
        box_a.fill("What are the two models trained in a generative adversarial net?")
        box_a.press("Enter")
        # Sending now would stop the answer: the input says it is busy instead.
        busy = a.get_by_placeholder("Answering… press Stop to ask something else")
        busy.wait_for(timeout=120_000)
        assert busy.is_disabled()
        a.get_by_text("tokens/s").first.wait_for(timeout=300_000)
        wait_until_idle(a, 300_000)
        assert "conversation=" in a.url and "gan-paper" in a.url
        b = a.context.new_page()
        b.goto(a.url)  # the conversation's link
        message(b, 1).get_by_text("tokens/s").wait_for(timeout=120_000)
        wait_until_idle(b)
        box_b = b.get_by_placeholder("Ask about gan-paper")
        # Two questions in a row in the tab that opened the link: the second was once lost
        # while the page reran for minutes (the conversation picker held its old label).
        for n, question in ((3, "What does the discriminator estimate?"),
                            (5, "What is the input of the generator?")):
            box_b.fill(question)
            box_b.press("Enter")
            message(b, n).get_by_text("tokens/s").wait_for(timeout=120_000)
            wait_until_idle(b, 300_000)
        # Tab A has not seen B's turns; its next question comes after them, not in their place.
        box_a.fill("What does the generator learn?")
        box_a.press("Enter")
        message(a, 7).get_by_text("tokens/s").wait_for(timeout=300_000)
        wait_until_idle(a, 300_000)
        questions = ["What are the two models trained in a generative adversarial net?",
                     "What does the discriminator estimate?",
                     "What is the input of the generator?", "What does the generator learn?"]
        sources = a.locator(".st-key-hit-1").inner_text()
        for tab in (a, b):
            tab.reload()
            message(tab, 7).wait_for(timeout=120_000)
            wait_until_idle(tab)
            assert tab.locator("[data-testid='stChatMessage']").count() == 8
            assert all(q in message(tab, n).inner_text() for q, n in zip(questions, (0, 2, 4, 6)))
        # An answer's page buttons may be drawn a moment after the last message (seen on CI).
        settled(lambda: answers_of(a) == answers_of(b), True)
        assert answers_of(a) == answers_of(b)
        assert all(STOPPED_NOTE not in answer and len(answer.split()) > 5
                   for answer in answers_of(a))
        assert settled(lambda: a.locator(".st-key-hit-1").inner_text(), sources) == sources
        picker = a.locator("[data-testid=stSidebar] [data-testid=stSelectbox]")
        assert "gan-paper" in picker.text_content() + picker.locator("input").input_value()
        b.screenshot(path=str(OUTPUT / "chat-two-tabs.png"))
        scroll_to_top(a)
        a.screenshot(path=str(OUTPUT / "chat-after-reload.png"))


LARGER_CHAT_MODEL = "qwen2.5-coder-1.5b-instruct"


def test_the_bert_question_is_answered_from_the_bert_paper_with_a_citation(studio_env):
    """The question that the first version answered wrongly ("fine-tuning and unsupervised
    tasks"), over the BERT and GAN papers, with what a user picks on the Chat page for better
    answers: the optional 1.5B model and five chunks. The defaults (0.5B, k=3) answer it too,
    since the hit that opens the list of tasks is read on to its later items
    (tests/test_answers.py checks that without a browser)."""
    require_model(LARGER_CHAT_MODEL)
    papers = [shared("papers", "1810.04805_BERT.pdf"), shared("papers", "1406.2661_GAN.pdf")]
    with streamlit_server(env={"STUDIO_DATA_DIR": str(studio_env)}) as url, \
            browser_page(height=1600) as page:
        create_collection(page, url, "papers")
        upload(page, papers)
        page.get_by_role("link", name="Chat").click()
        box = page.get_by_placeholder("Ask about papers")
        box.wait_for(timeout=60_000)

        chat_model = page.locator("[data-testid=stExpander]").filter(has_text="Chat model ·")
        chat_model.get_by_text("Chat model ·").click()
        pick(page, chat_model.get_by_role("combobox"), "1.5b", LARGER_CHAT_MODEL)
        page.get_by_text(f"Chat model · {LARGER_CHAT_MODEL}").wait_for(timeout=60_000)
        wait_until_idle(page)
        page.get_by_text("Retrieval settings").click()
        k = page.locator(".st-key-k input[type=range]")
        k.focus()
        for _ in range(5 - DEFAULT_K):
            k.press("ArrowRight")
        wait_until_idle(page)
        assert k.input_value() == "5"

        box.fill("What are the two pre-training tasks of BERT?")
        box.press("Enter")
        message(page, 1).get_by_text("tokens/s").wait_for(timeout=600_000)
        wait_until_idle(page, 300_000)
        answer = message(page, 1).inner_text()
        page.screenshot(path=str(OUTPUT / "chat-bert-question.png"))
        assert re.search(r"masked (language model|lm)", answer, re.I), answer
        assert re.search(r"next sentence prediction", answer, re.I), answer
        cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
        assert cited, f"no [n] in: {answer}"
        for n in cited:  # written by the model, not inferred, and pointing at the paper
            source = page.locator(f".st-key-hit-{n}").inner_text()
            assert "1810.04805_BERT.pdf" in source and "cited" in source, source
