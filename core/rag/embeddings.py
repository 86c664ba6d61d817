"""Sentence embeddings from a registry model, normalised.

Two engines give (nearly) the same vectors: sentence-transformers on torch (bf16 where the CPU
has AVX512-bf16 or AMX), and the model exported to ONNX by `models prepare`, attention fused, run
by onnxruntime in float32 or, with int8 weights, at a cosine of 0.99 to float32's. Documents
embed with ONNX in int8 unless the settings pin torch; a question always embeds with ONNX when
the export exists, because a fresh process (`python -m core search`) then never pays the
seconds of importing torch. `Embedder.engine` says which ran."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from core import files
from core.errors import InputError
from core.health import bf16_is_fast
from core.registry import STAMP_NAME, ModelSpec, Registry, read_stamp
from core.settings import Settings

# Small batches pad less: on 2 cores, 500-char chunks embed ~1.5x faster in batches of 8 than
# of 64 (measured with bench/ingest.py, sentence-transformers).
BATCH_SIZE = 8


class Embedder:
    def __init__(self, model_name: str, path: str, bf16: bool):
        import torch
        from sentence_transformers import SentenceTransformer

        self.model_name = model_name
        dtype = torch.bfloat16 if bf16 else torch.float32
        self.model = SentenceTransformer(path, device="cpu", model_kwargs={"dtype": dtype})
        self.dtype = str(dtype).removeprefix("torch.")
        self.engine = f"sentence-transformers {self.dtype}"

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                    convert_to_numpy=True)
        return vectors.astype("float32").tolist()


class OnnxEmbedder:
    """The exported model (core.prepare.export_onnx) on onnxruntime, with the fast tokenizer:
    no torch, no transformers."""

    def __init__(self, model_name: str, folder: Path, int8: bool = False):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        stamp = files.read_json(folder / STAMP_NAME, {})
        if int8 and "int8" not in stamp:  # exported before the int8 copy was made
            raise InputError(f"{model_name} has no int8 ONNX copy; run `python -m core models "
                             "prepare`")
        self.model_name, self.dtype = model_name, "int8" if int8 else "float32"
        self.engine = f"onnxruntime {self.dtype}"
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(stamp.get("max_length", 256)))
        # One text per call, each call on one thread, as many calls side by side as there are
        # cores. Batches gain nothing on a few cores and pay for their padding (on an AMD EPYC,
        # 2 cores, int8: 126 chunks/s one at a time, 92 in eights); and one-thread calls side
        # by side embed x1.27-1.37 faster than one call at a time on both cores (Xeon with
        # AMX, 363 chunks of two papers, the same vectors). A session may run from many threads.
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / (stamp["int8"] if int8 else "model.onnx")),
                                            options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]  # MPNet takes no type ids
        self._pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="onnx-embed")

    def _one(self, text: str) -> np.ndarray:
        encoded = self.tokenizer.encode(text)
        feed = {"input_ids": [encoded.ids], "attention_mask": [encoded.attention_mask],
                "token_type_ids": [encoded.type_ids]}
        return self.session.run(None, {k: np.array(feed[k], dtype=np.int64)
                                       for k in self.inputs})[0][0]

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [vector.tolist() for vector in self._pool.map(self._one, texts)]


AnyEmbedder = Embedder | OnnxEmbedder


@lru_cache(maxsize=4)
def _load(model_name: str, path: str, engine: str) -> AnyEmbedder:
    if engine in ("onnx", "onnx-int8"):
        return OnnxEmbedder(model_name, Path(path), int8=engine == "onnx-int8")
    return Embedder(model_name, path, bf16=engine == "bf16")


def _pick(registry: Registry, spec: ModelSpec, for_queries: bool,
          engine: str = "auto") -> AnyEmbedder:
    onnx = registry.onnx_dir(spec)
    exported = read_stamp(onnx / STAMP_NAME) or {}
    if engine.startswith("onnx") and not exported:
        raise InputError(f"{spec.name} has no ONNX export; run `python -m core models prepare`")
    if engine == "auto" and exported and for_queries:
        engine = "onnx"
    elif engine == "auto" and exported:
        # The fused int8 graph, one chunk at a time, embeds documents fastest on both kinds of
        # CPU measured, with the same hits: an AMD EPYC with AVX512-bf16, and an Intel Xeon
        # with AMX, where ingestion ran x2.62-2.75 the reference pipeline against torch bf16's
        # x1.91-2.42 (bench/README.md); and it never imports torch. An export older than its
        # int8 copy has float32 only.
        engine = "onnx-int8" if "int8" in exported else "onnx"
    if engine.startswith("onnx"):
        return _load(spec.name, str(onnx), engine)
    bf16 = engine == "torch-bf16" or (engine == "auto" and bf16_is_fast())
    return _load(spec.name, str(registry.load_path(spec)), "bf16" if bf16 else "fp32")


def get_embedder(settings: Settings, model_name: str | None = None) -> AnyEmbedder:
    """The engine for embedding documents: the fastest this machine has, unless the settings
    pin one."""
    registry = Registry.load(settings.registry_path, settings.models_dir)
    return _pick(registry, registry.get(model_name or settings.embedding_model), False,
                 settings.embedding_engine)


def query_embedder(settings: Settings, model_name: str | None = None) -> AnyEmbedder:
    """The engine for embedding a question: quickest to start."""
    registry = Registry.load(settings.registry_path, settings.models_dir)
    return _pick(registry, registry.get(model_name or settings.embedding_model), True)


def default_embedder(models_dir: Path, model_name: str | None = None) -> AnyEmbedder:
    """The registry's default embedding model (or the one named), for work that has a models
    folder but no Settings (a training process, an adapter's profile)."""
    registry = Registry.load(Path(models_dir) / "registry.toml", Path(models_dir))
    spec = registry.get(model_name) if model_name else registry.default("embedding")
    return _pick(registry, spec, False)


@register_embedding_function
class StudioEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma's handle on a registry embedding model. Chroma stores its name in the collection's
    configuration, so a collection always knows (and rebuilds) the model it was made with; the
    model itself loads only when Chroma has text to embed."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    def __call__(self, input: Documents) -> Embeddings:
        from core.settings import load_settings

        return [np.asarray(v, dtype=np.float32)
                for v in get_embedder(load_settings(), self.model_name).embed(list(input))]

    @staticmethod
    def name() -> str:
        return "rag-lora-studio"

    def get_config(self) -> dict:
        return {"model": self.model_name}

    @staticmethod
    def build_from_config(config: dict) -> StudioEmbeddingFunction:
        return StudioEmbeddingFunction(config["model"])

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine"]
