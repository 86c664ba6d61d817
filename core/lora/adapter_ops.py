"""What can be done with adapters besides classifying: rename, delete, export and import as ZIP,
weighted averaging (FedAvg's rule, also used by federated training), PEFT's other combinations,
and merging into a standalone model."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
import zipfile
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from core import files
from core.archives import ArchiveError, SafeZip
from core.files import check_name
from core.lora import familiarity
from core.lora.adapters import (
    PICKLE_SUFFIXES,
    AdapterError,
    AdapterInfo,
    adapters_dir,
    check_folder,
    get,
    read,
    refuse_classifier,
)

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
MAX_IMPORT_BYTES = 512 * 2**20  # unpacked; a LoRA adapter of a small model is a few MB
PEFT_COMBINATIONS = ("cat", "svd", "ties", "dare_linear")  # kinds that keep a usable adapter


def _target(models_dir: Path, name: str) -> Path:
    check_name(name, "adapter")
    target = adapters_dir(models_dir) / name
    if target.exists():
        raise AdapterError(f"an adapter named {name!r} exists: choose another name")
    return target


def rename(models_dir: Path, name: str, new_name: str) -> Path:
    source = get(models_dir, name)
    target = _target(models_dir, new_name)
    source.folder.rename(target)
    replace(source.meta, name=new_name).write(target)
    return target


def copy(models_dir: Path, name: str, new_name: str) -> Path:
    """A copy under a new name, its metadata saying so."""
    source = get(models_dir, name)
    target = _target(models_dir, new_name)
    shutil.copytree(source.folder, target)
    replace(source.meta, name=new_name, copied_from=name).write(target)
    return target


def delete(models_dir: Path, name: str) -> None:
    shutil.rmtree(get(models_dir, name).folder)


def export_zip(models_dir: Path, name: str) -> bytes:
    info = get(models_dir, name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in info.folder.rglob("*") if p.is_file()):
            archive.write(path, f"{name}/{path.relative_to(info.folder).as_posix()}")
    return buffer.getvalue()


def import_zip(models_dir: Path, data: bytes, name: str | None = None,
               base_available=None) -> AdapterInfo:
    """Validate, then unpack into models/adapters/<name>. Refused: not a ZIP, paths that leave
    the folder, pickled files, no PEFT config or safetensors weights, over the size limit, a
    base model this machine does not have (`base_available(base) -> bool`), a name clash."""
    try:
        archive = SafeZip(data, MAX_IMPORT_BYTES, MAX_IMPORT_BYTES)
    except ArchiveError as exc:
        raise AdapterError(str(exc)) from exc
    with archive:
        members = archive.members
        unsafe = [m.filename for m in members if PurePosixPath(m.filename).is_absolute()
                  or ".." in PurePosixPath(m.filename).parts]
        if unsafe:
            raise AdapterError(f"the ZIP holds paths outside its folder: {', '.join(unsafe[:3])}")
        pickles = [m.filename for m in members
                   if PurePosixPath(m.filename).suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise AdapterError(f"pickled files are refused ({', '.join(pickles[:3])}); adapters "
                               "load from safetensors only")
        configs = [m for m in members if PurePosixPath(m.filename).name == CONFIG]
        if len(configs) != 1:
            raise AdapterError(f"the ZIP must hold exactly one {CONFIG} (found {len(configs)})")
        root = PurePosixPath(configs[0].filename).parent
        with tempfile.TemporaryDirectory(dir=adapters_dir(models_dir).parent) as tmp:
            staging = Path(tmp) / "adapter"
            for m in members:
                path = PurePosixPath(m.filename)
                if not path.is_relative_to(root):
                    continue  # beside the adapter's folder (a README, another folder): not ours
                try:
                    archive.extract(m, staging.joinpath(*path.relative_to(root).parts))
                except ArchiveError as exc:
                    raise AdapterError(str(exc)) from exc
            check_folder(staging)
            info = read(staging)
            if base_available and info.base and not base_available(info.base):
                raise AdapterError(f"its base model {info.base!r} is not available here; prepare "
                                   "it first (python -m core models prepare)")
            target = _target(models_dir, name or info.meta.name or root.name or "imported")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging), target)
    replace(info.meta, name=target.name, imported=time.time()).write(target)
    return read(target)


def _same_shape(infos: list[AdapterInfo]) -> None:
    configs = [json.loads((i.folder / CONFIG).read_text()) for i in infos]
    keys = ("r", "lora_alpha", "target_modules", "task_type")
    first = configs[0]
    for info, config in zip(infos[1:], configs[1:]):
        if info.base != infos[0].base:
            raise AdapterError(f"{info.name} has base {info.base!r}, {infos[0].name} has "
                               f"{infos[0].base!r}: only adapters of one base combine")
        if info.meta.adapter_type == "classifier" and info.labels != infos[0].labels:
            raise AdapterError(f"{info.name} and {infos[0].name} are classifier adapters with "
                               "different labels: their heads cannot be averaged")
        differs = [k for k in keys if _norm(config.get(k)) != _norm(first.get(k))]
        if differs:
            raise AdapterError(f"{info.name} and {infos[0].name} differ in {', '.join(differs)}; "
                               "a weighted average needs the same LoRA shape")


def _norm(value):
    return sorted(value) if isinstance(value, list) else value


def weighted_average(tensors: list[dict], weights: list[float]) -> dict:
    """Σ wᵢ·Tᵢ / Σ wᵢ for every tensor name: FedAvg's rule, on the LoRA A and B matrices."""
    total = float(sum(weights))
    if total <= 0 or any(w < 0 for w in weights):
        raise AdapterError("weights must be non-negative and not all zero")
    names = set(tensors[0])
    if any(set(t) != names for t in tensors[1:]):
        raise AdapterError("the adapters hold different tensors")
    return {k: sum(t[k].float() * (w / total) for t, w in zip(tensors, weights)).to(tensors[0][k].dtype)
            for k in tensors[0]}


def average(models_dir: Path, names: list[str], weights: list[float], new_name: str) -> Path:
    from safetensors.torch import load_file, save_file

    if len(names) < 2 or len(names) != len(weights):
        raise AdapterError("name two or more adapters and one weight for each")
    infos = [get(models_dir, n) for n in names]
    for info in infos:
        check_folder(info.folder)
    _same_shape(infos)
    averaged = weighted_average([load_file(i.folder / WEIGHTS) for i in infos], weights)
    target = _target(models_dir, new_name)
    shutil.copytree(infos[0].folder, target)
    save_file(averaged, target / WEIGHTS, metadata={"format": "pt"})
    _write_combined_meta(target, infos, "weighted_average", weights)
    return target


def _write_combined_meta(target: Path, parents: list[AdapterInfo], kind: str,
                         weights: list[float]) -> None:
    # The parents' test results say nothing about the combination.
    replace(parents[0].meta, name=target.name, created=time.time(), evaluation=None,
            combined={"type": kind, "parents": [p.name for p in parents],
                      "weights": weights}).write(target)
    # It has learnt from all of the parents' documents, so a document like any of them is
    # familiar to it; the first parent's alone (copied with its folder) would say otherwise.
    (target / familiarity.FILE).unlink(missing_ok=True)
    profile = familiarity.merged([familiarity.load(p.folder) for p in parents])
    if profile is not None:
        familiarity.save(profile, target)


def combine(models_dir: Path, names: list[str], weights: list[float], new_name: str,
            combination_type: str) -> Path:
    """PEFT's `add_weighted_adapter` (cat, svd, ties, dare_linear) over adapters of one base."""
    from peft import PeftModel

    from core.models import load_base

    if combination_type not in PEFT_COMBINATIONS:
        raise AdapterError(f"combination must be one of {', '.join(PEFT_COMBINATIONS)}")
    infos = [get(models_dir, n) for n in names]
    for info in infos:
        check_folder(info.folder)
    _same_shape(infos)
    model, _ = load_base(infos[0].base, models_dir)
    model = PeftModel.from_pretrained(model, infos[0].folder, adapter_name=infos[0].name)
    for info in infos[1:]:
        model.load_adapter(info.folder, adapter_name=info.name)
    extra = {"density": 0.5} if combination_type in ("ties", "dare_linear") else {}
    model.add_weighted_adapter(names, weights, "combined", combination_type=combination_type,
                               **extra)
    target = _target(models_dir, new_name)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, selected_adapters=["combined"])
        shutil.copytree(Path(tmp) / "combined", target)
    _write_combined_meta(target, infos, combination_type, weights)
    return target


def merge(models_dir: Path, name: str, sample_texts: list[str] | None = None,
          tolerance: float = 1e-3) -> dict:
    """The adapter merged into its base (PEFT merge_and_unload), saved as a standalone model
    under models/merged/<name>, checked: the merged model's logits match the adapter's. The
    check and the merge run in float32; the model is saved in the dtype the base is stored in."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from core.models import base_folder

    info = get(models_dir, name)
    check_folder(info.folder)
    refuse_classifier(info, "merged into its base")
    folder = base_folder(info.base, models_dir)
    dtype = AutoConfig.from_pretrained(folder).dtype or torch.float32
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    adapted: Any = PeftModel.from_pretrained(model, info.folder).eval()
    texts = sample_texts or ["Classify the document into one of the valid categories.",
                             "This agreement is made between the licensor and the licensee."]
    batch = [tokenizer(t, return_tensors="pt")["input_ids"] for t in texts]
    with torch.no_grad():
        before = [adapted(input_ids=ids).logits.float() for ids in batch]
        merged = adapted.merge_and_unload()
        after = [merged(input_ids=ids).logits.float() for ids in batch]
    difference = max((a - b).abs().max().item() for a, b in zip(before, after))
    if difference > tolerance:
        raise AdapterError(f"the merged model differs from the adapter by {difference:.3g} "
                           f"(tolerance {tolerance}); nothing was saved")
    target = Path(models_dir) / "merged" / name
    report = {"adapter": name, "base": info.base, "folder": str(target), "dtype": str(dtype),
              "max_logit_difference": difference, "checked_inputs": len(texts),
              "created": time.time()}
    with files.replacing_folder(target) as staging:
        merged.to(dtype).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        files.write_json(staging / "studio-merged.json", report, indent=2)
    return report



def trained_on_one_dataset(info: AdapterInfo) -> bool:
    """Whether the adapter was trained here on one dataset, whose split `profile` can read
    again (not combined, federated or imported)."""
    meta = info.meta
    return bool(meta.config.get("data")) and not (meta.combined or meta.federated)


def profile(models_dir: Path, name: str) -> familiarity.Profile:
    """The adapter's profile of its training documents made again from the dataset it was
    trained on, as training makes it now: one trained before profiles kept documents of other
    kinds gains them (core.lora.familiarity). The same split, so the same documents."""
    from core.lora.config import TrainConfig
    from core.lora.trainer import prepare_data
    from core.rag.embeddings import default_embedder

    info = get(models_dir, name)
    check_folder(info.folder)
    meta = info.meta
    if not trained_on_one_dataset(info):
        raise AdapterError(f"{name} was not trained on one dataset here (combined, federated "
                           "or imported), so its training documents cannot be read again")
    data = Path(meta.config["data"])
    if not data.is_file():
        raise AdapterError(f"{name}: the dataset it was trained on ({data.name}) is no longer "
                           "there")
    parts, _ = prepare_data(TrainConfig(**meta.config))
    if meta.dataset_sha256 and parts.fingerprint != meta.dataset_sha256:
        raise AdapterError(f"{name}: the dataset it was trained on ({data.name}) has changed "
                           "since, so its training documents cannot be told from the others")
    embedder = default_embedder(models_dir)
    made = familiarity.of_split(parts.train.texts, parts.validation.texts + parts.test.texts,
                                embedder.embed, embedder.model_name)
    familiarity.save(made, info.folder)
    return made
