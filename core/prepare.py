"""Assemble, verify and convert the packaged models, once.

Everything is written beside its final place with a `.partial` suffix and renamed into place only
after it checks out, so an interrupted or failed run leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import files
from core.registry import STAMP_NAME, ModelSpec, Registry, RegistryError, part_path, read_stamp

CHUNK = 4 << 20


@dataclass(frozen=True)
class PrepareEvent:
    model: str
    stage: str  # "skip" | "verify" | "assemble" | "convert" | "export" | "done"
    fraction: float
    message: str = ""


ProgressFn = Callable[[PrepareEvent], None]


def _quiet(_: PrepareEvent) -> None:
    pass


def prepare(registry: Registry, names: list[str] | None = None,
            progress: ProgressFn = _quiet) -> list[str]:
    """Prepare the named models (all when None); return the names that needed work."""
    specs = [registry.get(n) for n in names] if names else list(registry.specs.values())
    worked = []
    for spec in specs:
        if spec.source != "pypi":
            continue  # hf / local models are used where they are
        if registry.state(spec).status == "ready":
            progress(PrepareEvent(spec.name, "skip", 1.0, "already prepared"))
        else:
            _prepare_one(registry, spec, progress)
            worked.append(spec.name)
        if "embedding" in spec.roles and not read_stamp(registry.onnx_dir(spec) / STAMP_NAME):
            export_onnx(registry.load_path(spec), registry.onnx_dir(spec), spec.name, progress)
            worked.append(spec.name)
    return list(dict.fromkeys(worked))


def _prepare_one(registry: Registry, spec: ModelSpec, progress: ProgressFn) -> None:
    sources = [part_path(p) for p in spec.parts]  # raises a one-line install hint
    weights = registry.gguf_path(spec)
    if len(sources) > 1:
        _assemble(spec, sources, weights, progress)
    else:
        _verify(spec, sources[0], progress)
    if spec.needs_conversion:
        _convert(registry, spec, weights, progress)
    else:
        stamp = registry.stamp_path(spec)
        files.write_json(stamp, {"sha256": spec.sha256, "source_size": weights.stat().st_size,
                                   "prepared_at": time.time()})
    progress(PrepareEvent(spec.name, "done", 1.0, "ready"))


def _check_hash(spec: ModelSpec, digest: str) -> None:
    pinned = spec.sha256 or ""
    if digest != pinned:
        raise RegistryError(
            f"{spec.name}: sha256 mismatch (got {digest[:12]}…, registry pins {pinned[:12]}…): "
            f"reinstall with `pip install --force-reinstall --no-deps -r models/requirements.txt`")


def _verify(spec: ModelSpec, path: Path, progress: ProgressFn) -> None:
    total, done, h = path.stat().st_size, 0, hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
            done += len(block)
            progress(PrepareEvent(spec.name, "verify", done / total, path.name))
    _check_hash(spec, h.hexdigest())


def _assemble(spec: ModelSpec, sources: list[Path], target: Path, progress: ProgressFn) -> None:
    if target.is_file():
        try:
            _verify(spec, target, progress)
            return
        except RegistryError:
            target.unlink()  # a stale or damaged earlier assembly: build it again
    total = sum(p.stat().st_size for p in sources)
    done, h = 0, hashlib.sha256()
    with files.replacing_file(target) as out:
        for src in sources:
            with src.open("rb") as fh:
                while block := fh.read(CHUNK):
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    progress(PrepareEvent(spec.name, "assemble", done / total, src.name))
        _check_hash(spec, h.hexdigest())  # raising here leaves no file behind


def _convert(registry: Registry, spec: ModelSpec, gguf: Path, progress: ProgressFn) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(PrepareEvent(spec.name, "convert", 0.0, "dequantizing GGUF to bf16"))
    target = registry.base_dir(spec)
    with files.replacing_folder(target) as partial:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     dtype=torch.bfloat16)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        progress(PrepareEvent(spec.name, "convert", 0.6, "saving HF folder"))
        # Saved weights are plain bf16 now; keeping the GGUF quantizer would make
        # from_pretrained look for a GGUF file again.
        del model.config.quantization_config
        model.hf_quantizer = None  # type: ignore[assignment]
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        saved = {str(f.relative_to(partial)): f.stat().st_size
                 for f in sorted(partial.rglob("*")) if f.is_file()}
        files.write_json(partial / STAMP_NAME, {
            "sha256": spec.sha256, "source": str(gguf), "dtype": "bfloat16",
            "files": saved, "prepared_at": time.time()}, indent=2)
    progress(PrepareEvent(spec.name, "convert", 1.0, str(target)))



def export_onnx(source: Path, target: Path, name: str, progress: ProgressFn = _quiet) -> None:
    """A sentence-transformers model (BERT-like, mean pooling) as one ONNX graph that returns
    normalised sentence embeddings, with its tokenizer beside it. Exported in float32 by the
    TorchScript exporter: the vectors equal sentence-transformers' to 1e-6."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    progress(PrepareEvent(name, "export", 0.0, "exporting the embedding model to ONNX"))
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source, dtype=torch.float32).eval()

    class Pooled(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    sample = tokenizer(["an example", "a slightly longer example sentence"], padding=True,
                       return_tensors="pt")
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    axes = {k: {0: "batch", 1: "tokens"} for k in inputs} | {"embedding": {0: "batch"}}
    config = files.read_json(Path(source) / "sentence_bert_config.json", {})
    with files.replacing_folder(target) as staging:
        torch.onnx.export(Pooled(model), tuple(sample[k] for k in inputs),
                          str(staging / "model.onnx"), input_names=list(inputs),
                          output_names=["embedding"], dynamic_axes=axes, opset_version=17,
                          dynamo=False)
        tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        files.write_json(staging / STAMP_NAME, {
            "source": str(source), "max_length": int(config.get("max_seq_length", 256)),
            "prepared_at": time.time()}, indent=2)
    progress(PrepareEvent(name, "export", 1.0, str(target)))
