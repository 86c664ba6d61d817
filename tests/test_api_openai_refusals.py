"""The API's keys, its refusals in OpenAI's error shape, the bounded queue and the refusal to
serve beyond this machine without keys: no model is loaded here."""

import asyncio
import subprocess
import sys

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from core.api.auth import check_exposure, key_hashes
from core.api.gate import Gate
from core.errors import StudioError
from core.settings import PROJECT_ROOT, load_settings

KEY = "sk-studio-test-0123456789"


@pytest.fixture
def client(studio_env, monkeypatch):
    monkeypatch.setenv("STUDIO_API_KEYS", f"other-key, {KEY}")
    from core.api import create_app

    client = TestClient(create_app(load_settings()), raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {KEY}"
    return client


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code"}, body
    return body["error"]


def test_keys_are_needed_and_checked(client):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer "}):
        response = client.get("/v1/models", headers=headers)
        assert response.status_code == 401, headers
        assert error_of(response)["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"] == "Bearer"
        assert client.post("/predict", json={"text": "x"}, headers=headers).status_code == 401
    assert client.get("/v1/models").status_code == 200
    assert client.get("/v1/models", headers={"Authorization": "Bearer other-key"}).status_code \
        == 200
    assert client.get("/health", headers={"Authorization": ""}).status_code == 200
    assert client.get("/docs", headers={"Authorization": ""}).status_code == 200


def test_the_keys_are_kept_as_digests_only():
    assert key_hashes(f" a , ,{KEY}") == key_hashes(f"a,{KEY}")
    assert all(len(h) == 32 for h in key_hashes(KEY)) and KEY.encode() not in key_hashes(KEY)
    assert KEY not in repr(load_settings(env={"STUDIO_API_KEYS": KEY}))


@pytest.mark.parametrize("path,body,status,message", [
    ("/v1/chat/completions", {"model": "rag:nope", "messages": [{"role": "user",
                                                                 "content": "hi"}]},
     404, "no collection named 'nope' (collections: none yet)"),
    ("/v1/chat/completions", {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]},
     404, "no model named 'gpt-9'"),
    ("/v1/chat/completions", {"model": "rag:x", "messages": [{"role": "user",
                                                              "content": "hi"}] * 51},
     400, "messages: List should have at most 50 items"),
    ("/v1/chat/completions", {"model": "rag:x", "messages": []}, 400, "at least 1 item"),
    ("/v1/chat/completions", {"model": "rag:x", "max_tokens": 0,
                              "messages": [{"role": "user", "content": "hi"}]},
     400, "max_tokens: Input should be greater than or equal to 1"),
    ("/v1/chat/completions", {"model": "rag:x", "max_tokens": 100_000,
                              "messages": [{"role": "user", "content": "hi"}]},
     400, "max_tokens: Input should be less than or equal to 2048"),
    ("/v1/chat/completions", {"model": "rag:x", "messages": [{"role": "system",
                                                              "content": "hi"}]},
     400, "at least one user message"),
    ("/v1/chat/completions", {"model": "rag:x", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     400, "only text content"),
    ("/v1/embeddings", {"model": "all-minilm-l6-v2", "input": [[1, 2, 3]]},
     400, "send text, not token ids"),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"},
     404, "no embedding model named 'text-embedding-3-small'"),
    ("/v1/search", {"question": "q", "collection": "nope"}, 404, "no collection named 'nope'"),
    ("/v1/search", {"question": "q", "collection": "x", "method": "magic"}, 400, "method:"),
])
def test_bad_requests_get_an_openai_error_with_a_plain_message(client, path, body, status,
                                                                message):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert message in error_of(response)["message"]


def test_error_codes_say_what_was_not_found_and_a_body_that_is_not_json_says_where(client):
    question = {"model": "rag:nope", "messages": [{"role": "user", "content": "hi"}]}
    assert error_of(client.post("/v1/chat/completions", json=question))["code"] \
        == "model_not_found"  # rag:COLLECTION is the model asked for
    assert error_of(client.post("/v1/search", json={"question": "q", "collection": "nope"})
                    )["code"] == "collection_not_found"
    broken = client.post("/v1/chat/completions", content=b'{"model": "rag:x",',
                         headers={"content-type": "application/json"})
    assert broken.status_code == 400
    assert error_of(broken)["message"] == ("the request body is not valid JSON (Expecting "
                                           "property name enclosed in double quotes at "
                                           "character 18)")


def test_an_oversize_body_is_refused_before_it_is_read(client):
    response = client.post("/v1/chat/completions", content=b"x" * (17 * 1024 * 1024),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert error_of(response)["message"] == "the request body is over the limit of 16 MB"

    def chunked():  # no Content-Length: counted as it arrives
        for _ in range(17):
            yield b"x" * (1024 * 1024)

    response = client.post("/v1/embeddings", content=chunked(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text


def test_a_full_queue_answers_429_and_frees_places():
    async def scenario():
        gate = Gate("chat model", waiting=1)
        first, second = gate.admit(), gate.admit()
        with pytest.raises(HTTPException) as refused:
            gate.admit()
        assert refused.value.status_code == 429 and refused.value.headers["Retry-After"]
        async with first:
            waiting = asyncio.create_task(second.__aenter__())
            await asyncio.sleep(0.01)
            assert not waiting.done()  # one at a time on the model
        await waiting
        await second.__aexit__(None, None, None)
        gate.admit().release()  # a place never used (client gone) is given back
        assert gate.status() == {"inside": 0, "limit": 2}
        alone = Gate("classifier", waiting=0)
        alone.admit()
        with pytest.raises(HTTPException, match=r"busy \(1 request running or waiting\)"):
            alone.admit()

    asyncio.run(scenario())


def test_serving_beyond_this_machine_needs_keys(studio_env):
    for host in ("127.0.0.1", "::1", "localhost"):
        check_exposure(host, ())
    check_exposure("0.0.0.0", key_hashes(KEY))
    with pytest.raises(StudioError, match="refusing to serve the API on 0.0.0.0 without"):
        check_exposure("0.0.0.0", ())
    out = subprocess.run([sys.executable, "-m", "core", "api", "--host", "0.0.0.0"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "error: refusing to serve the API on 0.0.0.0 without API keys: set STUDIO_API_KEYS "
        "(comma-separated) or serve on 127.0.0.1"]


def test_only_the_classifiers_used_last_stay_loaded(studio_env, monkeypatch):
    from core.api import classify

    monkeypatch.setattr(classify.adapters, "load_classifier",
                        lambda models_dir, adapter, base: f"classifier {adapter}")
    models = classify.Models(load_settings(), keep=2)
    for name in ("a", "b", "a", "c"):
        assert models.get(name) == f"classifier {name}"
    assert list(models.loaded) == ["a", "c"]
