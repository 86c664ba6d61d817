"""Sentence embeddings from a registry model, normalised, bf16 on CPUs that run it fast."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from core.health import cpu_flags
from core.registry import Registry
from core.settings import Settings

# Small batches pad less: on 2 cores, 500-char chunks embed ~1.5x faster in batches of 8 than
# of 64 (measured with bench/ingest.py).
BATCH_SIZE = 8


class Embedder:
    def __init__(self, model_name: str, path: str, bf16: bool):
        import torch
        from sentence_transformers import SentenceTransformer

        self.model_name = model_name
        dtype = torch.bfloat16 if bf16 else torch.float32
        self.model = SentenceTransformer(path, device="cpu", model_kwargs={"dtype": dtype})
        self.dtype = str(dtype).removeprefix("torch.")

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                                    convert_to_numpy=True)
        return vectors.astype("float32").tolist()


def bf16_is_fast() -> bool:
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@lru_cache(maxsize=2)
def _load(model_name: str, path: str, bf16: bool) -> Embedder:
    return Embedder(model_name, path, bf16)


def get_embedder(settings: Settings, model_name: str | None = None) -> Embedder:
    registry = Registry.load(settings.registry_path, settings.models_dir)
    spec = registry.get(model_name or settings.embedding_model)
    return _load(spec.name, str(registry.load_path(spec)), bf16_is_fast())


def default_embedder(models_dir: Path) -> Embedder:
    """The registry's default embedding model, for work that has a models folder but no
    Settings (a training process)."""
    registry = Registry.load(Path(models_dir) / "registry.toml", Path(models_dir))
    spec = registry.default("embedding")
    return _load(spec.name, str(registry.load_path(spec)), bf16_is_fast())


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

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]
