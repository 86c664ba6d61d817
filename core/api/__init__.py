"""The REST API (FastAPI): classification with adapters. See core.api.app."""

from core.api.app import create_app, serve

__all__ = ["create_app", "serve"]
