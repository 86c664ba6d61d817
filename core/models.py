"""Loading models: the one place that turns a model name (a registry entry, a folder, or a
Hugging Face id) into a folder, a tokenizer, a model in the right dtype, or a base model with a
saved adapter on it. The trainer, the classifier, the adapter library and operations, the
estimate and federated learning all load through here, so none of them imports another just to
find a model."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from core.registry import Registry


def _registry(models_dir: Path) -> Registry:
    return Registry.load(Path(models_dir) / "registry.toml", Path(models_dir))


def base_folder(base: str, models_dir: Path) -> Path:
    """A registry model's prepared folder, or `base` itself when it is a folder."""
    folder = Path(base).expanduser()
    if folder.is_dir():
        return folder
    registry = _registry(models_dir)
    return registry.load_path(registry.get(base))


def compute_device() -> Any:
    """Where models train and classify: this process's GPU when there is one (under accelerate
    or torchrun, its own rank's), else the CPU."""
    import os

    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def compute_dtype() -> Any:
    """bf16 where this machine runs it fast (a GPU that has it, or a CPU with AVX512-bf16/AMX),
    else fp32."""
    import torch

    from core.health import bf16_is_fast

    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if bf16_is_fast() else torch.float32


def load_tokenizer(base: str, models_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_folder(base, models_dir))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(base: str, models_dir: Path, dtype: Any = None,
              head_labels: list[str] | None = None) -> tuple[Any, Any]:
    """A base model by registry name or folder, as (model, tokenizer), in `dtype` or else the
    fastest exact-enough dtype for this machine. With `head_labels`, the same model with a
    classification head over those labels (new, to be trained) instead of its language head."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    tokenizer = load_tokenizer(base, models_dir)
    folder, dtype = base_folder(base, models_dir), dtype or compute_dtype()
    if head_labels is None:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        return model.to(compute_device()), tokenizer
    from transformers.utils import logging as hf_logging

    said = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized: score.weight" is the point here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, dtype=dtype, num_labels=len(head_labels),
            id2label=dict(enumerate(head_labels)),
            label2id={label: i for i, label in enumerate(head_labels)})
    finally:
        hf_logging.set_verbosity(said)
    # the head reads the last position that is not padding
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(compute_device()), tokenizer


def load_adapter(base: str, adapter_folder: Path, models_dir: Path, dtype: Any = None,
                 head_labels: list[str] | None = None) -> tuple[Any, Any]:
    """(PEFT model, tokenizer): the base with a saved adapter on it (a classifier adapter:
    with its head over `head_labels`). The caller checks the folder first (safetensors only,
    see core.lora.adapters.check_folder)."""
    from peft import PeftModel

    model, tokenizer = load_base(base, models_dir, dtype, head_labels)
    return PeftModel.from_pretrained(model, adapter_folder), tokenizer


def base_fingerprint(base: str, models_dir: Path) -> str:
    """sha256 identifying the base weights: the registry's pinned hash for a registry model,
    else the hash of the folder's safetensors files."""
    if not Path(base).expanduser().is_dir():
        spec = _registry(models_dir).get(base)
        if spec.sha256:
            return spec.sha256
    digest = hashlib.sha256()
    for weights in sorted(base_folder(base, models_dir).glob("*.safetensors")):
        with weights.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
