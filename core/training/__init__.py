"""LoRA fine-tuning for document classification: data, prompts, trainer, runs."""
