"""The adapter library: `<models>/adapters/<name>/` holds a PEFT adapter (adapter_config.json,
adapter_model.safetensors) and the Studio's metadata (studio-adapter.json). Weights load from
safetensors only; a folder holding pickled weights is refused before anything is read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core import files
from core.errors import InputError, StudioError
from core.files import check_name
from core.lora import familiarity
from core.lora.config import ADAPTER_TYPES
from core.lora.familiarity import Embed, Profile
from core.models import load_adapter, load_base

META = "studio-adapter.json"
PROMPT_FORMAT = "studio-classify-v1"  # the prompt of core.lora.prompts
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class AdapterError(StudioError):
    pass


@dataclass
class AdapterMeta:
    """What the Studio knows about an adapter beyond PEFT's own config: its base and labels,
    where its data came from, how it was trained and how it scored. Read and written only by
    `read_meta` and `write`, so every writer (training, federated, import, combine, rename)
    produces the same shape. Keys written by another version are kept in `extra`."""
    name: str = ""
    base: str = ""
    base_sha256: str = ""
    labels: list[str] = field(default_factory=list)
    prompt_format: str = PROMPT_FORMAT
    adapter_type: str = "generative"  # or "classifier": a head over `labels` (core.lora.config)
    created: float = 0.0
    config: dict = field(default_factory=dict)  # the TrainConfig it was trained with
    dataset: str | None = None
    dataset_sha256: str | None = None
    split: dict | None = None
    training_seconds: float | None = None
    steps: int | None = None
    best_step: int | None = None  # with early stopping: the step whose checkpoint this is
    evaluation: dict | None = None  # test-split results (core.lora.evaluate.compare)
    federated: dict | None = None  # the federation's per-round report
    combined: dict | None = None  # how it was made from other adapters
    copied_from: str | None = None
    imported: float | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: object, where: str = META) -> AdapterMeta:
        """Checked field by field: an adapter imported from elsewhere may carry anything, and
        one wrong type must be a clear refusal, not a crash in a page later."""
        if not isinstance(raw, dict):
            raise AdapterError(f"{where}: expected a JSON object")
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                extra[key] = value
            elif value is not None:
                values[key] = _checked(where, key, value, _TYPES[key])
        if not all(isinstance(label, str) for label in values.get("labels", [])):
            raise AdapterError(f"{where}: labels must be strings")
        if values.get("adapter_type", "generative") not in ADAPTER_TYPES:
            raise AdapterError(f"{where}: adapter_type must be one of "
                               f"{', '.join(ADAPTER_TYPES)}, got {values['adapter_type']!r}")
        return cls(**values, extra=extra)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **{k: v for k, v in out.items() if v is not None}}

    def write(self, folder: Path) -> None:
        files.write_json(Path(folder) / META, self.to_dict(), indent=2)

    @property
    def run(self) -> str:
        """The training run it came from (its run folder keeps the curve): named in the
        config it was trained with, which a rename or a copy keeps. A combination keeps its
        first parent's config and an import another machine's, so theirs is their own name."""
        if self.combined or self.imported:
            return self.name
        return str(self.config.get("name") or self.name)

    @property
    def test_accuracy(self) -> float | None:
        result = (self.evaluation or {}).get("adapter")
        accuracy = result.get("accuracy") if isinstance(result, dict) else None
        return accuracy if isinstance(accuracy, (int, float)) else None


_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str, "base": str, "base_sha256": str, "labels": list, "prompt_format": str,
    "adapter_type": str,
    "created": (int, float), "config": dict, "dataset": str, "dataset_sha256": str,
    "split": dict, "training_seconds": (int, float), "steps": int, "best_step": int, "evaluation": dict,
    "federated": dict, "combined": dict, "copied_from": str, "imported": (int, float)}


def _checked(where: str, key: str, value: object, kind: type | tuple[type, ...]) -> object:
    if isinstance(value, bool) or not isinstance(value, kind):
        raise AdapterError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


@dataclass
class AdapterInfo:
    name: str
    folder: Path
    meta: AdapterMeta
    problem: str | None = None  # why it cannot be used, for one listed despite that

    @property
    def labels(self) -> list[str]:
        return self.meta.labels

    @property
    def base(self) -> str:
        return self.meta.base

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

    def summary(self) -> dict:
        return {"name": self.name, "base": self.base, "labels": self.labels,
                "r": self.meta.config.get("r"), "alpha": self.meta.config.get("alpha"),
                "test_accuracy": self.meta.test_accuracy, "created": self.meta.created,
                "size_bytes": self.size_bytes, "problem": self.problem}


def adapters_dir(models_dir: Path) -> Path:
    return Path(models_dir) / "adapters"


def refuse_classifier(info: AdapterInfo, what: str) -> None:
    """Operations that need the language head (GGUF export, merging) refuse a classifier
    adapter in words."""
    if info.meta.adapter_type == "classifier":
        raise AdapterError(f"{info.name} is a classifier adapter (a classification head, not "
                           f"the language model's): it cannot be {what}; train a generative "
                           "adapter for that")


def check_folder(folder: Path) -> None:
    """A usable adapter folder: PEFT config, safetensors weights, no pickles, a readable
    profile of training documents where it keeps one."""
    folder = Path(folder)
    pickles = [p.name for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise AdapterError(f"{folder.name}: pickled weights are refused ({', '.join(pickles)}); "
                           "adapters load from safetensors only")
    for required in ("adapter_config.json", "adapter_model.safetensors"):
        if not (folder / required).is_file():
            raise AdapterError(f"{folder.name}: {required} is missing")
    check_weights(folder)
    try:
        familiarity.load(folder, vectors=False)
    except familiarity.ProfileError as exc:
        raise AdapterError(f"{folder.name}: {exc}") from exc


def check_weights(folder: Path) -> None:
    """The weights open as safetensors and hold LoRA A/B pairs that fit adapter_config.json:
    a damaged file is refused when it arrives, not when someone first classifies with it. Only
    the header is read."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    where = f"{folder.name}/adapter_model.safetensors"
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{folder.name}/adapter_config.json is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise AdapterError(f"{folder.name}/adapter_config.json: expected a JSON object")
    try:
        with safe_open(folder / "adapter_model.safetensors", "pt") as weights:
            shapes = {k: weights.get_slice(k).get_shape() for k in weights.keys()}
    except (SafetensorError, OSError) as exc:
        raise AdapterError(f"{where}: not a readable safetensors file ({exc})") from exc
    a = {k: v for k, v in shapes.items() if ".lora_A." in k}
    b = {k: v for k, v in shapes.items() if ".lora_B." in k}
    if not a or {k.replace(".lora_A.", ".lora_B.") for k in a} != set(b):
        raise AdapterError(f"{where}: holds no matching lora_A/lora_B tensor pairs")
    r, targets = config.get("r"), config.get("target_modules")
    ranks = {shape[0] for shape in a.values()} | {shape[-1] for shape in b.values()}
    if isinstance(r, int) and not config.get("rank_pattern") and ranks != {r}:
        raise AdapterError(f"{where}: its tensors have rank {', '.join(map(str, sorted(ranks)))}, "
                           f"adapter_config.json says r={r}")
    if isinstance(targets, list):
        modules = {k.split(".lora_A.")[0] for k in a}
        stray = sorted(m for m in modules if not any(m == t or m.endswith(f".{t}")
                                                     for t in targets))
        if stray:
            raise AdapterError(f"{where}: LoRA tensors for {', '.join(stray[:3])}, which "
                               "adapter_config.json's target_modules does not name")


def read_meta(folder: Path) -> AdapterMeta:
    """The folder's metadata; an adapter made elsewhere may have none (then it is empty)."""
    folder = Path(folder)
    try:
        raw = json.loads((folder / META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AdapterMeta(name=folder.name)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{folder.name}: {META} is not valid JSON ({exc})") from exc
    return AdapterMeta.from_dict(raw, f"{folder.name}/{META}")


def read(folder: Path) -> AdapterInfo:
    folder = Path(folder)
    return AdapterInfo(folder.name, folder, read_meta(folder))


def list_adapters(models_dir: Path) -> list[AdapterInfo]:
    """Every adapter folder. One that cannot be used (metadata of the wrong shape, damaged
    weights: copied in by hand, or from an older version) is listed with its `problem`, so it
    can be seen and deleted, instead of breaking the list for all the others."""
    root = adapters_dir(models_dir)
    if not root.is_dir():
        return []
    infos = []
    for folder in sorted(p for p in root.iterdir()
                         if p.is_dir() and (p / "adapter_config.json").is_file()):
        try:
            check_name(folder.name, "adapter")
            check_folder(folder)
            infos.append(read(folder))
        except (AdapterError, InputError) as exc:
            infos.append(AdapterInfo(folder.name, folder, AdapterMeta(name=folder.name),
                                     str(exc)))
    return infos


def usable(infos: list[AdapterInfo]) -> list[AdapterInfo]:
    return [info for info in infos if not info.problem]


def get(models_dir: Path, name: str) -> AdapterInfo:
    try:
        folder = adapters_dir(models_dir) / check_name(name, "adapter")
    except InputError:  # a name that could not be an adapter's is simply not one
        folder = None
    if folder is None or not (folder / "adapter_config.json").is_file():
        shown = name if len(name) <= 80 else f"{name[:80]}…"
        raise AdapterError(f"no adapter named {shown!r}")
    return read(folder)


def of_run(models_dir: Path, run: str) -> AdapterInfo | None:
    """The adapter a training run published: under the run's name, or renamed since."""
    try:
        return get(models_dir, run)
    except AdapterError:
        return next((i for i in usable(list_adapters(models_dir))
                     if i.meta.run == run and not i.meta.copied_from), None)


def publish(folder: Path, models_dir: Path, name: str) -> Path:
    """Copy an adapter folder into the library, replacing an older one of the same name whole."""
    import shutil

    target = adapters_dir(models_dir) / check_name(name, "adapter")
    with files.replacing_folder(target) as staging:
        shutil.copytree(folder, staging, dirs_exist_ok=True)
    return target


def load_classifier(models_dir: Path, adapter: str | None = None, base: str | None = None,
                    labels: list[str] | None = None, max_length: int = 512):
    """A Classifier for an adapter by name (its base, labels and max length from its metadata),
    or for a base model alone with the given labels."""
    from core.lora.classify import Classifier, HeadClassifier

    if adapter:
        info = get(models_dir, adapter)
        check_folder(info.folder)
        if not info.base:
            raise AdapterError(f"{adapter}: {META} does not name its base model")
        head = info.meta.adapter_type == "classifier"
        model, tokenizer = load_adapter(info.base, info.folder, models_dir,
                                        head_labels=info.labels if head else None)
        kind = HeadClassifier if head else Classifier
        profile, embed = training_profile(info, models_dir)
        return kind(model.eval(), tokenizer, labels or info.labels,
                    info.meta.config.get("max_length", max_length), adapter, info.meta.to_dict(),
                    profile, embed)
    if not base:
        raise InputError("name an adapter or a base model")
    model, tokenizer = load_base(base, models_dir)
    return Classifier(model.eval(), tokenizer, labels or [], max_length, f"{base} (no adapter)")


def training_profile(info: AdapterInfo, models_dir: Path) -> tuple[Profile | None, Embed | None]:
    """The adapter's training documents (core.lora.familiarity) and the embedding model that
    made them; (None, None) when it keeps none or that model is not installed."""
    from core.rag.embeddings import default_embedder
    from core.registry import RegistryError

    profile = familiarity.load(info.folder)  # its header was checked with the folder's
    if profile is None:
        return None, None
    try:
        return profile, default_embedder(models_dir, profile.embedder).embed
    except (RegistryError, OSError):
        return None, None
