"""The embedding engines: ONNX for questions, the engine the settings pin for documents, and
how they agree with sentence-transformers on the packaged model."""

import pytest

from core.errors import InputError
from core.settings import load_settings

pytestmark = pytest.mark.slow


def test_questions_embed_without_torch_and_agree_with_sentence_transformers():
    from core.rag.embeddings import Embedder, query_embedder
    from core.registry import Registry

    settings = load_settings()
    onnx = query_embedder(settings)
    assert onnx.engine.startswith("onnxruntime")
    registry = Registry.load(settings.registry_path, settings.models_dir)
    spec = registry.get(settings.embedding_model)
    reference = Embedder(spec.name, str(registry.load_path(spec)), bf16=False)
    texts = ["What are the two pre-training tasks of BERT?",
             "Masked language modelling and next sentence prediction. " * 40]  # truncated alike
    for a, b in zip(onnx.embed(texts), reference.embed(texts)):
        assert sum(x * y for x, y in zip(a, b)) > 0.999


def test_documents_embed_with_the_engine_the_settings_pin(monkeypatch):
    from core.rag.embeddings import get_embedder

    expected = {"onnx": "onnxruntime float32", "torch-fp32": "sentence-transformers float32",
                "torch-bf16": "sentence-transformers bfloat16", "onnx-int8": "onnxruntime int8"}
    vectors = {}
    for engine, name in expected.items():
        monkeypatch.setenv("STUDIO_EMBEDDING_ENGINE", engine)
        embedder = get_embedder(load_settings())
        assert embedder.engine == name
        vectors[engine] = embedder.embed(["Masked language modelling and next sentence "
                                          "prediction are BERT's pre-training tasks."])[0]
    assert sum(a * b for a, b in zip(vectors["onnx"], vectors["torch-bf16"])) > 0.99
    assert sum(a * b for a, b in zip(vectors["onnx"], vectors["onnx-int8"])) > 0.97
    monkeypatch.setenv("STUDIO_EMBEDDING_ENGINE", "tpu")
    with pytest.raises(InputError, match="STUDIO_EMBEDDING_ENGINE must be one of auto"):
        load_settings()


def test_auto_embeds_documents_in_int8_and_questions_in_float32(monkeypatch):
    from core.rag import embeddings

    settings = load_settings()
    assert embeddings.get_embedder(settings).engine == "onnxruntime int8"
    assert embeddings.query_embedder(settings).engine == "onnxruntime float32"
    monkeypatch.setenv("STUDIO_EMBEDDING_ENGINE", "torch-bf16")
    monkeypatch.setattr(embeddings, "bf16_is_fast", lambda: True)
    assert embeddings.get_embedder(load_settings()).engine == "sentence-transformers bfloat16"
