"""An adapter as GGUF, for llama.cpp and Ollama: the LoRA as a GGUF adapter that llama.cpp
applies to the base model's GGUF, optionally the merged model as one GGUF, and an Ollama
Modelfile beside them. The files come from llama.cpp's own converters, taken at set-up from the
llama-cpp-python source of the installed version, so what they write is what that version
reads. Every export is checked: llama-cpp-python loads the result, and its label probabilities
on sample documents are compared with the PEFT adapter's."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import files
from core.errors import StudioError
from core.lora.adapters import AdapterError, check_folder, get, refuse_classifier
from core.settings import PROJECT_ROOT

OUTTYPES = ("f16", "q8_0")
CHECK_DOCUMENTS = 20
MIN_AGREEING = 19  # of CHECK_DOCUMENTS: f16 rounding may flip a near tie, no more

Progress = Callable[[str], None]


def tools_dir() -> Path:
    """llama.cpp's converters for the installed llama-cpp-python, as `make setup` leaves them."""
    import llama_cpp

    folder = PROJECT_ROOT / "models" / ".tools" / f"llama.cpp-{llama_cpp.__version__}"
    if not (folder / ".extracted").is_file():
        raise StudioError(f"llama.cpp's GGUF converters are not in {folder}; run `make setup` "
                          "to fetch them (from the llama-cpp-python source of the same version)")
    return folder


def _convert(script: str, args: list[str]) -> None:
    tools = tools_dir()
    # The vendored gguf-py goes first: the PyPI `gguf` in the venv is another version, and the
    # converter must write with the gguf code of the llama.cpp that reads the file.
    path = [tools / "gguf-py", tools, tools / "site"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    result = subprocess.run([sys.executable, str(tools / script), *args], env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise AdapterError(f"llama.cpp's {script} failed:\n{tail}")


def _check_outtype(outtype: str) -> None:
    if outtype not in OUTTYPES:
        raise AdapterError(f"outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}")


def base_gguf(base: str, models_dir: Path, on_progress: Progress | None = None) -> Path:
    """The base model as an f16 GGUF converted from its HF folder, cached under
    models/gguf-export/. The registry's quantised GGUF is not used: a LoRA trained on the HF
    weights belongs on a GGUF made from them."""
    from core.models import base_fingerprint, base_folder

    folder = base_folder(base, models_dir)
    name = f"{folder.name}-{base_fingerprint(base, models_dir)[:12]}-f16.gguf"
    target = Path(models_dir) / "gguf-export" / "base" / name
    if not target.is_file():
        if on_progress:
            on_progress(f"converting the base model {base} to GGUF (once)")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}{files.PARTIAL}")
        _convert("convert_hf_to_gguf.py", [str(folder), "--outtype", "f16", "--outfile",
                                           str(partial)])
        partial.replace(target)
    return target


def modelfile(model: Path, adapter: Path | None) -> str:
    lines = [f"FROM {model}"] + ([f"ADAPTER {adapter}"] if adapter else [])
    return "\n".join(lines) + "\n"


def export(models_dir: Path, name: str, merged: bool = False, outtype: str = "f16",
           texts: list[str] | None = None, on_progress: Progress | None = None) -> dict:
    """Write models/gguf-export/<name>/: the LoRA GGUF, with --merged the merged model's GGUF,
    a Modelfile and studio-gguf.json (what was made, and the check against the PEFT adapter).
    The check does not undo the export; its `agrees` says whether it passed."""
    from core.lora import adapter_ops
    from core.models import base_folder

    _check_outtype(outtype)
    info = get(models_dir, name)
    check_folder(info.folder)
    refuse_classifier(info, "exported to GGUF")
    base = base_gguf(info.base, models_dir, on_progress)
    target = Path(models_dir) / "gguf-export" / name
    lora_name = f"{name}-lora-{outtype}.gguf"
    merged_name = f"{name}-merged-{outtype}.gguf"
    with files.replacing_folder(target) as staging:
        if on_progress:
            on_progress("converting the adapter to a GGUF LoRA")
        _convert("convert_lora_to_gguf.py", [str(info.folder), "--base",
                                             str(base_folder(info.base, models_dir)),
                                             "--outtype", outtype, "--outfile",
                                             str(staging / lora_name)])
        if merged:
            if on_progress:
                on_progress("merging the adapter into its base, then converting to GGUF")
            folder = adapter_ops.merge(models_dir, name)["folder"]
            _convert("convert_hf_to_gguf.py", [folder, "--outtype", outtype, "--outfile",
                                               str(staging / merged_name)])
        (staging / "Modelfile").write_text(
            modelfile(target / merged_name, None) if merged else
            modelfile(base, target / lora_name))
    if on_progress:
        on_progress(f"checking the GGUF against the adapter on {CHECK_DOCUMENTS} documents")
    checks = {"lora": check(models_dir, name, base, target / lora_name, texts)}
    if merged:
        checks["merged"] = check(models_dir, name, target / merged_name, None, texts)
    report = {"adapter": name, "base": info.base, "base_gguf": str(base), "outtype": outtype,
              "folder": str(target), "lora_gguf": str(target / lora_name),
              "merged_gguf": str(target / merged_name) if merged else None,
              "modelfile": str(target / "Modelfile"), "checks": checks,
              "agrees": all(c["agrees"] for c in checks.values()), "created": time.time()}
    files.write_json(target / "studio-gguf.json", report, indent=2)
    return report


def sample_texts(count: int = CHECK_DOCUMENTS) -> list[str]:
    from core.lora.data import read_table
    from core.samples import SAMPLE_DATASET

    return [str(t) for t in read_table(SAMPLE_DATASET)["text"].head(count)]


def check(models_dir: Path, name: str, model_gguf: Path, lora_gguf: Path | None,
          texts: list[str] | None = None) -> dict:
    """The GGUF's label probabilities against the PEFT adapter's on the same prompts (the
    Studio's tokens, so only the weights differ): how many documents get the same top label,
    and the largest difference in any label's probability."""
    from llama_cpp import Llama

    from core.lora.adapters import load_classifier

    texts = texts or sample_texts()
    classifier = load_classifier(models_dir, adapter=name)
    # float32, not the bf16 classification may run in here: the difference should measure the
    # export, not bf16's rounding on the reference side.
    classifier.model.float()
    expected = classifier.score_many(texts)
    labels, answers, room = classifier._answers(None, ())
    prompts = [_prompt_ids(classifier, text, labels, room) for text in texts]
    try:
        llama = Llama(model_path=str(model_gguf),
                      lora_path=str(lora_gguf) if lora_gguf else None,
                      n_ctx=max(len(p) for p in prompts) + max(len(a) for a in answers),
                      logits_all=True, verbose=False)
    except ValueError as exc:  # llama-cpp-python's only word on a file llama.cpp refuses
        raise AdapterError(f"llama-cpp-python cannot load the exported GGUF {model_gguf.name}"
                           f"{f' with {lora_gguf.name}' if lora_gguf else ''}: {exc}") from exc
    try:
        same, largest = 0, 0.0
        for prompt, want in zip(prompts, expected):
            got = dict(zip(labels, _label_probabilities(llama, prompt, answers)))
            same += max(got, key=lambda label: got[label]) == want.label
            largest = max(largest, *(abs(got[label] - want.scores[label]) for label in labels))
    finally:
        llama.close()
    return {"documents": len(texts), "same_top_label": same,
            "max_probability_difference": largest,
            "agrees": same >= math.ceil(len(texts) * MIN_AGREEING / CHECK_DOCUMENTS)}


def _prompt_ids(classifier: Any, text: str, labels: list[str], room: int) -> list[int]:
    from core.lora.prompts import encode

    return encode(classifier.tokenizer, text, labels, None, room).input_ids


def _label_probabilities(llama: Any, prompt: list[int], answers: list[list[int]]) -> list[float]:
    """Each answer's log-likelihood after the prompt, softmaxed over the labels. The prompt is
    evaluated once; each answer rewinds the cache to its end."""
    import numpy as np

    llama.reset()
    llama.eval(prompt)
    end = len(prompt)
    totals = []
    for answer in answers:
        llama.n_tokens = end
        llama.eval(answer[:-1])
        logits = np.asarray(llama.scores[end - 1:end - 1 + len(answer)], dtype=np.float64)
        peak = logits.max(-1, keepdims=True)
        logp = logits - peak - np.log(np.exp(logits - peak).sum(-1, keepdims=True))
        totals.append(float(logp[np.arange(len(answer)), answer].sum()))
    weights = np.exp(np.array(totals) - max(totals))
    return (weights / weights.sum()).tolist()
