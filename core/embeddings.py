"""Sentence embeddings from a registry model, normalised, bf16 on CPUs that run it fast."""

from __future__ import annotations

from functools import lru_cache

from core.config import Settings
from core.health import cpu_flags
from core.registry import Registry

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
