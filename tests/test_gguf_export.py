"""GGUF export through llama.cpp's own converters: a tiny adapter and an adapter of the light
packaged model, each loaded back by llama-cpp-python and held to the PEFT adapter's labels."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.errors import StudioError
from core.lora import gguf_export
from core.lora.config import TrainConfig
from core.lora.trainer import train
from core.registry import linked_models_dir
from core.samples import SAMPLE_DATASET
from tests.conftest import ROOT

LIGHT_BASE = "smollm2-135m-instruct"


def _train(models, name: str, base: str, steps: int) -> None:
    config = TrainConfig(name=name, data=str(SAMPLE_DATASET), base=base, max_steps=steps,
                         batch_size=4, learning_rate=5e-3, max_length=256, eval_steps=0,
                         save_steps=steps)
    train(config, models.parent / f"run-{name}", models)


def _tiny_llama(folder):
    """A 2-layer Llama with the light model's tokenizer: the converter must know the
    architecture and the tokenizer, which rules out tests.tiny's BERT-tokenizer model."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from core.models import base_folder

    tokenizer = AutoTokenizer.from_pretrained(base_folder(LIGHT_BASE, ROOT / "models"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _assert_agrees(report: dict, documents: int = gguf_export.CHECK_DOCUMENTS) -> None:
    for kind, result in report["checks"].items():
        print(kind, json.dumps(result))  # the agreement numbers, in the test log
        assert result["documents"] == documents
        assert result["same_top_label"] >= \
            documents * gguf_export.MIN_AGREEING / gguf_export.CHECK_DOCUMENTS, result
        assert result["agrees"]
    assert report["agrees"]


def test_missing_converters_say_to_run_make_setup(monkeypatch, tmp_path):
    monkeypatch.setattr(gguf_export, "PROJECT_ROOT", tmp_path)
    with pytest.raises(StudioError, match="make setup"):
        gguf_export.tools_dir()


def test_modelfile_names_the_base_and_the_adapter(tmp_path):
    assert gguf_export.modelfile(tmp_path / "base.gguf", tmp_path / "lora.gguf") == \
        f"FROM {tmp_path / 'base.gguf'}\nADAPTER {tmp_path / 'lora.gguf'}\n"
    assert gguf_export.modelfile(tmp_path / "merged.gguf", None) == f"FROM {tmp_path / 'merged.gguf'}\n"


def test_tiny_adapter_exports_loads_and_agrees(tmp_path):
    models = linked_models_dir(tmp_path / "models", ROOT / "models")
    _train(models, "tiny-gguf", str(_tiny_llama(tmp_path / "tiny-base")), 6)
    done = subprocess.run([sys.executable, "-m", "core", "adapters", "export-gguf", "tiny-gguf",
                           "--merged", "--json"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "STUDIO_MODELS_DIR": str(models)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    _assert_agrees(report)
    folder = models / "gguf-export" / "tiny-gguf"
    assert (folder / "tiny-gguf-lora-f16.gguf").stat().st_size > 0
    assert (folder / "Modelfile").read_text() == f"FROM {folder / 'tiny-gguf-merged-f16.gguf'}\n"
    assert json.loads((folder / "studio-gguf.json").read_text())["agrees"]


@pytest.mark.slow
def test_light_model_adapter_exports_loads_and_agrees(tmp_path):
    models = linked_models_dir(tmp_path / "models", ROOT / "models")
    _train(models, "smol-gguf", LIGHT_BASE, 4)
    # 8 documents, not the export's 20: the real model scores each in a second or more
    report = gguf_export.export(models, "smol-gguf", outtype="f16",
                                texts=gguf_export.sample_texts(8))
    _assert_agrees(report, 8)
    modelfile = (models / "gguf-export" / "smol-gguf" / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM {report['base_gguf']}\nADAPTER {report['lora_gguf']}")
