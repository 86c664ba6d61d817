"""The adapter library: `<models>/adapters/<name>/` holds a PEFT adapter (adapter_config.json,
adapter_model.safetensors) and the Studio's metadata (studio-adapter.json). Weights load from
safetensors only; a folder holding pickled weights is refused before anything is read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

META = "studio-adapter.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class AdapterError(Exception):
    pass


@dataclass
class AdapterInfo:
    name: str
    folder: Path
    meta: dict

    @property
    def labels(self) -> list[str]:
        return self.meta.get("labels", [])

    @property
    def base(self) -> str:
        return self.meta.get("base", "")

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def summary(self) -> dict:
        config = self.meta.get("config", {})
        test = self.meta.get("evaluation", {}).get("adapter", {})
        return {"name": self.name, "base": self.base, "labels": self.labels,
                "r": config.get("r"), "alpha": config.get("alpha"),
                "test_accuracy": test.get("accuracy"), "created": self.meta.get("created"),
                "size_bytes": self.size_bytes}


def adapters_dir(models_dir: Path) -> Path:
    return Path(models_dir) / "adapters"


def check_folder(folder: Path) -> None:
    """A usable adapter folder: PEFT config, safetensors weights, no pickles."""
    folder = Path(folder)
    pickles = [p.name for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise AdapterError(f"{folder.name}: pickled weights are refused ({', '.join(pickles)}); "
                           "adapters load from safetensors only")
    for required in ("adapter_config.json", "adapter_model.safetensors"):
        if not (folder / required).is_file():
            raise AdapterError(f"{folder.name}: {required} is missing")


def read(folder: Path) -> AdapterInfo:
    folder = Path(folder)
    try:
        meta = json.loads((folder / META).read_text())
    except FileNotFoundError:
        meta = {}
    except json.JSONDecodeError as exc:
        raise AdapterError(f"{folder.name}: {META} is not valid JSON ({exc})") from exc
    return AdapterInfo(folder.name, folder, meta)


def list_adapters(models_dir: Path) -> list[AdapterInfo]:
    root = adapters_dir(models_dir)
    if not root.is_dir():
        return []
    return [read(p) for p in sorted(root.iterdir())
            if p.is_dir() and (p / "adapter_config.json").is_file()]


def get(models_dir: Path, name: str) -> AdapterInfo:
    folder = adapters_dir(models_dir) / name
    if "/" in name or name.startswith(".") or not (folder / "adapter_config.json").is_file():
        raise AdapterError(f"no adapter named {name!r}")
    return read(folder)


def load_classifier(models_dir: Path, adapter: str | None = None, base: str | None = None,
                    labels: list[str] | None = None, max_length: int = 512):
    """A Classifier for an adapter by name (its base, labels and max length from its metadata),
    or for a base model alone with the given labels."""
    from core.classify import Classifier
    from core.training.trainer import load_base

    if adapter:
        info = get(models_dir, adapter)
        check_folder(info.folder)
        if not info.base:
            raise AdapterError(f"{adapter}: {META} does not name its base model")
        model, tokenizer = load_base(info.base, models_dir)
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, info.folder)  # check_folder: safetensors only
        config = info.meta.get("config", {})
        return Classifier(model.eval(), tokenizer, labels or info.labels,
                          config.get("max_length", max_length), adapter, info.meta)
    if not base:
        raise ValueError("name an adapter or a base model")
    model, tokenizer = load_base(base, models_dir)
    return Classifier(model.eval(), tokenizer, labels or [], max_length, f"{base} (no adapter)")
