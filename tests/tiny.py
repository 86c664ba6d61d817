"""Tiny random language models built from a config, for fast tests of the real code paths."""

from __future__ import annotations

from pathlib import Path

from core.settings import PROJECT_ROOT

CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def tiny_causal_lm(folder: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with the MiniLM tokenizer and a minimal chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from core.registry import Registry

    registry = Registry.load(PROJECT_ROOT / "models" / "registry.toml")
    tokenizer = AutoTokenizer.from_pretrained(registry.load_path(registry.default("embedding")))
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_adapter_library(root: Path) -> Path:
    """A models folder (root/models) holding `tiny-cuad`: a LoRA adapter on a tiny random model,
    trained a few steps on the sample dataset by the real trainer (its labels: the five contract
    types); the other models are links to the project's."""
    from core.lora.config import TrainConfig
    from core.lora.trainer import train
    from core.registry import linked_models_dir
    from core.samples import SAMPLE_DATASET

    models = linked_models_dir(root / "models", PROJECT_ROOT / "models")
    base = tiny_causal_lm(root / "tiny-base")
    config = TrainConfig(name="tiny-cuad", data=str(SAMPLE_DATASET), base=str(base), max_steps=6,
                         batch_size=4, learning_rate=5e-3, max_length=256, eval_steps=6,
                         save_steps=6)
    train(config, root / "run", models)  # publishes models/adapters/tiny-cuad
    return models
