"""The classification REST API: FastAPI's TestClient, and a real uvicorn server."""

import json
import os
import sys
import urllib.request

import pytest
from fastapi.testclient import TestClient

from core.settings import PROJECT_ROOT, load_settings
from tests.servers import free_port, running

LABELS = {"Distributor", "Endorsement", "Hosting", "License", "Sponsorship"}
TEXT = "The Company appoints the Distributor as its exclusive distributor in the Territory."


@pytest.fixture
def client(studio_env, tiny_library, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tiny_library))
    # The base model alone (few-shot without an adapter): the adapter's tiny base.
    base = json.loads((tiny_library / "adapters" / "tiny-cuad" / "studio-adapter.json")
                      .read_text())["base"]
    monkeypatch.setenv("STUDIO_LORA_BASE_MODEL", base)
    from core.api import create_app

    return TestClient(create_app(load_settings()))


def test_predict_returns_a_label_with_probabilities(client):
    response = client.post("/predict", json={"text": TEXT, "adapter": "tiny-cuad"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["scores"]) == LABELS
    assert sum(body["scores"].values()) == pytest.approx(1, abs=1e-4)
    assert body["label"] == max(body["scores"], key=body["scores"].get)
    assert body["adapter"] == "tiny-cuad" and body["latency_ms"] > 0
    likeness = body["likeness"]
    assert set(likeness) == {"closest", "floor", "other", "other_kind", "lead_floor", "familiar"}
    # trained on contracts, it tells them from the other kinds the Studio ships
    assert likeness["other_kind"] in ("research papers", "Wikipedia articles")
    # No adapter named: the newest one answers.
    assert client.post("/predict", json={"text": TEXT}).json()["adapter"] == "tiny-cuad"


def test_fewshot_with_new_labels_on_the_adapter_and_on_the_base(client):
    examples = [{"document": "Pay within 30 days.", "label": "Finance"},
                {"document": "Our servers run in Frankfurt.", "label": "IT"}]
    for adapter in ("tiny-cuad", None):
        response = client.post("/predict_fewshot",
                               json={"text": TEXT, "examples": examples, "adapter": adapter})
        assert response.status_code == 200, response.text
        assert set(response.json()["scores"]) == {"Finance", "IT"}


def test_adapters_health_and_docs(client):
    listed = client.get("/adapters").json()
    assert [a["name"] for a in listed] == ["tiny-cuad"]
    # not among the OpenAI models: no /v1 endpoint takes an adapter
    assert not [m for m in client.get("/v1/models").json()["data"] if "tiny-cuad" in m["id"]]
    assert set(listed[0]["labels"]) == LABELS and listed[0]["r"] == 8
    assert client.get("/health").json()["status"] == "ok"
    assert "/predict_fewshot" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("path,body,status,message", [
    ("/predict", {"text": TEXT, "adapter": "nope"}, 404, "no adapter named 'nope'"),
    ("/predict", {"text": TEXT, "adapter": "../adapters/tiny-cuad"}, 404, "no adapter named"),
    ("/predict", {"text": ""}, 422, "at least 1 character"),
    ("/predict", {"text": "x" * 200_001}, 422, "at most 200000 characters"),
    ("/predict", {}, 422, "Field required"),
    ("/predict_fewshot", {"text": TEXT, "examples": [{"document": "a", "label": "A"}] * 21},
     422, "at most 20 items"),
    ("/predict_fewshot", {"text": TEXT, "examples": [{"document": "a", "label": "A"},
                                                     {"document": "b", "label": "A"}]},
     422, "at least two different labels"),
    ("/predict_fewshot", {"text": TEXT, "examples": [{"document": f"d{i}", "label": f"L{i}"}
                                                     for i in range(20)], "adapter": "tiny-cuad"},
     200, ""),
])
def test_bad_requests_get_a_4xx_with_a_message(client, path, body, status, message):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert message in response.text


def test_real_uvicorn_server(studio_env, tiny_library):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "STUDIO_MODELS_DIR": str(tiny_library)}
    with running([sys.executable, "-m", "core", "api", "--port", str(port)], url + "/health",
                 PROJECT_ROOT / "test-output" / f"api-{port}.log", 120, env=env, cwd=PROJECT_ROOT):
        request = urllib.request.Request(url + "/predict", json.dumps({"text": TEXT}).encode(),
                                         {"Content-Type": "application/json"})
        body = json.loads(urllib.request.urlopen(request, timeout=120).read())
        assert body["label"] in LABELS
        try:
            urllib.request.urlopen(urllib.request.Request(
                url + "/predict", json.dumps({"text": TEXT, "adapter": "nope"}).encode(),
                {"Content-Type": "application/json"}), timeout=60)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404 and "nope" in exc.read().decode()
        else:
            pytest.fail("an unknown adapter must answer 404")
