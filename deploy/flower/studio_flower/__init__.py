"""The Studio's federated LoRA (core/federated.py) as a Flower App."""
