"""The API's refusals and its docs, on an empty library (nothing here loads a model): a 422 for
a value JSON cannot encode, a 422 that does not echo 10 MB back, and /docs served offline."""

import re

import pytest
from fastapi.testclient import TestClient

from core.settings import load_settings


@pytest.fixture
def client(studio_env, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tmp_path / "models"))
    from core.api import create_app

    return TestClient(create_app(load_settings()), raise_server_exceptions=False)


def test_a_lone_surrogate_gets_a_422_not_a_500(client):
    # JSON may escape a lone surrogate; Python decodes it, UTF-8 cannot encode it.
    for body in (b'{"text": ["\\ud800"]}', b'{"text": "", "adapter": "\\ud800"}',
                 b'{"text": "x", "examples": [{"document": "\\ud800", "label": ""}]}'):
        path = "/predict_fewshot" if b"examples" in body else "/predict"
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["msg"]


def test_blank_text_is_refused_as_the_page_refuses_it(client):
    """It was labelled anyway ("Distributor", 71%) before a model was even needed."""
    examples = [{"document": "a", "label": "x"}, {"document": "b", "label": "y"}]
    for path, body in (("/predict", {"text": " \n\t "}),
                       ("/predict_fewshot", {"text": "   ", "examples": examples}),
                       ("/predict_fewshot", {"text": "ok", "examples": [
                           {"document": "  ", "label": "x"}, examples[1]]})):
        response = client.post(path, json=body)
        assert response.status_code == 422, response.text
        assert "the text is blank" in response.json()["detail"][0]["msg"]


def test_a_422_does_not_echo_a_10_mb_input(client):
    response = client.post("/predict", json={"text": "x" * 10_000_000})
    assert response.status_code == 422
    assert len(response.content) < 2_000
    [error] = response.json()["detail"]
    assert error["msg"] == "String should have at most 200000 characters"
    assert error["input"].endswith("… (10,000,000 characters)")


def test_docs_are_served_from_local_files(client):
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text) + \
        re.findall(r"url: '([^']+)'", page.text)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in page.text and "https://" not in page.text
    for url in urls:
        assert client.get(url).status_code == 200, url
    assert client.get("/redoc").status_code == 404  # it would load from a CDN
