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
