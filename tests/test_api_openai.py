"""The Studio as a service: a real `python -m core api` on 127.0.0.1, used through the official
`openai` client and LangChain's ChatOpenAI and OpenAIEmbeddings over a real collection. The chat
model is a tiny random one (tests/tiny.py) so answers take milliseconds; retrieval, sources and
the embedding model are the real ones."""

import json
import os
import sys
import threading
import time

import httpx
import openai
import pytest

from core.rag.ingest import ingest_files
from core.rag.restatement import restates
from core.settings import PROJECT_ROOT, load_settings
from tests.conftest import OUTPUT, shared
from tests.servers import OUTSIDE, free_port, running
from tests.tiny import tiny_causal_lm

pytestmark = pytest.mark.slow
KEY = "sk-studio-test-0123456789"
DOC = "2106.09685v2_pages1-2_groundtruth.txt"  # the LoRA paper's first two pages
QUESTION = "Which weights does LoRA freeze?"
OTHER_DOC = "square-one_offer-letter.html"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-api")
    tiny = str(tiny_causal_lm(root / "tiny-chat"))
    env = {**{name: "" for name in OUTSIDE}, "STUDIO_DATA_DIR": str(root / "data"),
           "STUDIO_CHAT_BACKEND": "local", "STUDIO_CHAT_MODEL": tiny,
           "STUDIO_API_KEYS": KEY, "STUDIO_API_QUEUE": "1"}
    settings = load_settings(env={**os.environ, **env})
    ingest_files(settings, [shared("documents", DOC)], "lora")
    ingest_files(settings, [shared("documents", DOC), shared("documents", OTHER_DOC)], "pair")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "core", "api", "--port", str(port)], url + "/health",
                 OUTPUT / f"api-openai-{port}.log", 180, env=env, cwd=PROJECT_ROOT):
        yield {"url": url, "chat_model": tiny}


@pytest.fixture
def client(studio):
    return openai.OpenAI(base_url=studio["url"] + "/v1", api_key=KEY, max_retries=0)


def ask(**kw) -> dict:
    return {"model": "rag:lora", "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 12, **kw}


def test_the_openai_client_lists_models_and_gets_answers_with_sources(client, studio):
    ids = [m.id for m in client.models.list()]
    assert {"rag:lora", studio["chat_model"], "all-minilm-l6-v2"} <= set(ids)

    done = client.chat.completions.create(**ask())
    assert done.choices[0].message.content and done.usage.completion_tokens > 0
    sources = done.model_extra["sources"]
    assert sources and all(s["document"] == DOC for s in sources)
    assert {"rank", "document", "page", "start", "end", "score", "cited", "text"} <= set(sources[0])
    assert all(0 <= s["start"] < s["end"] and 0 < s["score"] <= 1 for s in sources)
    assert any("freeze" in s["text"].lower() for s in sources)
    content = done.choices[0].message.content
    assert done.model_extra["restates_question"] is restates(QUESTION, content)
    # the tiny random model writes digits now and then: any it names are ones it wrote
    assert all(n in content for n in done.model_extra["unread_numbers"])
    assert all(n in content for n in done.model_extra["reference_numbers"])
    assert done.model_extra["other_counts"] == []  # the question asks for no amount
    assert done.model_extra["only_weak_matches"] is False  # "freeze" is in the LoRA passage
    # each check said as a sentence: those the page would show, and no others
    flagged = [*done.model_extra["unread_numbers"], *done.model_extra["reference_numbers"]]
    assert len(done.model_extra["caveats"]) >= min(1, len(flagged)) + done.model_extra[
        "restates_question"]
    assert all(n in " ".join(done.model_extra["caveats"]) for n in flagged)

    chunks = list(client.chat.completions.create(**ask(), stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(chunks) > 3 and text.strip() == done.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].model_extra["sources"] == sources  # same question, same greedy answer
    assert chunks[-1].model_extra["restates_question"] is done.model_extra["restates_question"]
    assert chunks[-1].usage.completion_tokens == done.usage.completion_tokens

    # A question that stands alone is answered without the earlier turns (a follow-up reads
    # them: tests/test_rag.py); a plain model answers without retrieval.
    alone = client.chat.completions.create(**ask(messages=[
        {"role": "user", "content": "What is LoRA?"}, {"role": "assistant", "content": "A method."},
        {"role": "user", "content": QUESTION}]))
    assert alone.usage.prompt_tokens == done.usage.prompt_tokens
    plain = client.chat.completions.create(model=studio["chat_model"], max_tokens=5,
                                           messages=[{"role": "user", "content": "Hello"}])
    assert plain.choices[0].message.content and "sources" not in plain.model_extra
    assert "restates_question" not in plain.model_extra
    assert "unread_numbers" not in plain.model_extra


def test_a_follow_up_sent_with_the_answers_sources_is_searched_in_the_documents_cited(client,
                                                                                     studio):
    """As on the Chat page, once the client sends an answer back with its `sources`; OpenAI's
    clients send only its text, and the follow-up is searched in every document alike."""
    first = client.chat.completions.create(model="rag:pair", max_tokens=12,
                                           messages=[{"role": "user", "content": QUESTION}])
    sources = first.model_extra["sources"]
    # the tiny random model's answer cites nothing; a real one's cites the LoRA paper
    for source in sources:
        source["cited"] = source["document"] == DOC
    assert any(s["cited"] for s in sources)
    said = first.choices[0].message.content
    follow_up = {"role": "user", "content": "What does it train instead?"}

    def searched(answer: dict) -> tuple[str, list[str], str]:
        again = client.chat.completions.create(model="rag:pair", max_tokens=12, messages=[
            {"role": "user", "content": QUESTION}, answer, follow_up])
        return tuple(again.model_extra[f] for f in ("searched_for", "searched_in",
                                                    "searched_in_because"))

    # the documents cited say what "it" is: the question is searched as asked, there first
    assert searched({"role": "assistant", "content": said, "sources": sources}) == (
        follow_up["content"], [DOC], "discussed")
    # with the text alone, "it" is read from the question before, which names LoRA
    asked_with_the_one_before, where, because = searched({"role": "assistant", "content": said})
    assert QUESTION in asked_with_the_one_before and (where, because) == ([DOC], "named")
    # asked for the answer worded another way, the answer's own passages are kept (here all
    # but the first, which searching again would find)
    kept = sources[1:]
    reworded = client.chat.completions.create(model="rag:pair", max_tokens=12, messages=[
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": said, "sources": kept},
        {"role": "user", "content": "Can you say that in a full sentence?"}])
    assert [s["chunk_id"] for s in reworded.model_extra["sources"]] == [
        s["chunk_id"] for s in kept]
    assert reworded.model_extra["rewording"] in ("reworded", "unchanged")
    # what is sent back is checked as any input is
    bad = httpx.post(studio["url"] + "/v1/chat/completions",
                     headers={"Authorization": f"Bearer {KEY}"},
                     json={"model": "rag:pair", "messages": [
                         {"role": "user", "content": QUESTION},
                         {"role": "assistant", "content": said, "sources": [{"rank": "first"}]},
                         follow_up]})
    assert bad.status_code == 400 and "rank" in bad.text, bad.text


def test_a_wrong_key_and_an_unknown_collection(studio):
    wrong = openai.OpenAI(base_url=studio["url"] + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="a valid API key is needed"):
        wrong.models.list()
    right = openai.OpenAI(base_url=studio["url"] + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="no collection named 'nope'"):
        right.chat.completions.create(**ask(model="rag:nope"))


def test_langchain_embeddings_and_search(client, studio):
    from langchain_openai import OpenAIEmbeddings

    # Without check_embedding_ctx_length=False LangChain sends token ids from tiktoken,
    # which fetches its vocabulary from the internet.
    embeddings = OpenAIEmbeddings(model="rag:lora", base_url=studio["url"] + "/v1",
                                  api_key=KEY, check_embedding_ctx_length=False)
    vectors = embeddings.embed_documents(["low-rank adaptation", "a recipe for soup"])
    query = embeddings.embed_query("LoRA adapts weights with low-rank matrices")
    assert len(vectors) == 2 and len(query) == 384
    near, far = (sum(a * b for a, b in zip(query, v)) for v in vectors)
    assert near > far + 0.2
    same = client.embeddings.create(model="all-minilm-l6-v2", input="low-rank adaptation",
                                    encoding_format="float").data[0].embedding
    assert max(abs(a - b) for a, b in zip(same, vectors[0])) < 1e-5

    found = httpx.post(studio["url"] + "/v1/search", headers={"Authorization": f"Bearer {KEY}"},
                       json={"question": QUESTION, "collection": "lora", "k": 3,
                             "method": "bm25", "rerank": False}).json()
    assert found["method"] == "bm25" and len(found["data"]) == 3
    assert found["ordered_by"] == "score"
    # In BM25's own order (rerank off) the first hit is its best, and scores are relative to it
    assert found["data"][0]["document"] == DOC and found["data"][0]["score"] == 1


def test_langchain_chat_gets_the_rag_answer_streamed_and_not(client, studio):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="rag:lora", base_url=studio["url"] + "/v1", api_key=KEY,
                     max_tokens=12, max_retries=0, stream_usage=True)
    whole = llm.invoke(QUESTION)
    streamed = list(llm.stream(QUESTION))
    # LangChain keeps no extra fields, so the sources are seen through the official client:
    # the same greedy answer to the same question proves LangChain's came from the collection.
    reference = client.chat.completions.create(**ask())
    assert reference.model_extra["sources"]
    assert whole.content == reference.choices[0].message.content
    assert whole.usage_metadata["input_tokens"] == reference.usage.prompt_tokens
    assert whole.response_metadata["finish_reason"] in ("stop", "length")
    assert len(streamed) > 3
    assert "".join(c.content for c in streamed).strip() == whole.content
    assert sum(c.usage_metadata["output_tokens"] for c in streamed if c.usage_metadata) \
        == whole.usage_metadata["output_tokens"]


def test_a_full_queue_answers_429_and_a_client_that_leaves_frees_the_model(studio):
    """Queue of 1: one request on the model, one waiting, the third refused. The first asks for
    1,900 tokens (half a minute on the tiny model); its client leaves after a few, and the
    waiting one is answered in seconds, not after the whole half minute."""
    headers = {"Authorization": f"Bearer {KEY}"}
    long = {"model": studio["chat_model"], "max_tokens": 1900, "stream": True,
            "messages": [{"role": "user", "content": "Tell me a long story."}]}
    short = {**long, "max_tokens": 5, "stream": False}
    with httpx.Client(base_url=studio["url"], headers=headers, timeout=120) as http:
        waited: dict = {}

        def wait_in_queue() -> None:
            response = http.post("/v1/chat/completions", json=short)
            waited.update(status=response.status_code, at=time.monotonic())

        with http.stream("POST", "/v1/chat/completions", json=long) as first:
            assert first.status_code == 200
            # Read by hand: leaving a for loop over iter_lines() closes the connection.
            lines, content = first.iter_lines(), 0
            while content < 3:
                line = next(lines)
                content += line.startswith("data: ") and bool(
                    json.loads(line[6:])["choices"][0]["delta"].get("content"))
            second = threading.Thread(target=wait_in_queue)
            second.start()
            deadline = time.monotonic() + 30
            while http.get("/health").json()["queues"]["chat"]["inside"] < 2:
                assert time.monotonic() < deadline, "the second request never queued"
                time.sleep(0.1)
            refused = http.post("/v1/chat/completions", json=short)
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["Retry-After"]) > 0
            assert refused.json()["error"]["type"] == "rate_limit_error"
            left = time.monotonic()
        second.join(timeout=60)
        assert waited["status"] == 200
        assert waited["at"] - left < 15  # the first stopped generating when its client left
        deadline = time.monotonic() + 10
        while http.get("/health").json()["queues"]["chat"]["inside"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_the_api_docs_render_in_a_browser(studio):
    """Swagger UI 4.15 (swagger-ui-bundle) answered FastAPI's OpenAPI 3.1 with "Unable to render
    this definition": the page loaded, with status 200, and showed nothing of the API."""
    from tests.e2e.browser import browser_page

    with browser_page() as page:
        page.goto(studio["url"] + "/docs")
        page.get_by_text("/v1/chat/completions").first.wait_for(timeout=60_000)
        text = page.inner_text("body")
        assert "Unable to render" not in text and "/predict" in text
        page.screenshot(path=str(OUTPUT / "api-docs.png"))
