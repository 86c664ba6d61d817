"""The Studio's federated LoRA (core/lora/federated.py) as a Flower App."""
