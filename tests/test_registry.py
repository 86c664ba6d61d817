import hashlib
import json
import subprocess
import sys
from dataclasses import replace

import pytest

from core.prepare import prepare
from core.registry import STAMP_NAME, ModelSpec, Part, Registry, RegistryError
from core.settings import PROJECT_ROOT

REAL = Registry.load(PROJECT_ROOT / "models" / "registry.toml")


def leftovers(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_registry_names_roles_sources_and_hashes():
    for role in ("embedding", "chat", "lora-base"):
        assert REAL.default(role).name
    assert REAL.default("chat").name == "qwen2.5-coder-0.5b-instruct"
    assert REAL.default("lora-base").name == "gemma-3-270m"
    assert {s.name for s in REAL.with_role("lora-base")} == {"gemma-3-270m", "smollm2-135m-instruct"}
    for spec in REAL.specs.values():
        assert spec.source == "pypi" and len(spec.sha256) == 64 and spec.parts
    with pytest.raises(RegistryError, match="unknown model 'nope'"):
        REAL.get("nope")


def test_missing_package_says_what_to_install(tmp_path):
    spec = replace(REAL.get("smollm2-135m-instruct"),
                   parts=(Part("studio-no-such-package", "x/model.gguf"),))
    registry = Registry([spec], tmp_path)
    state = registry.state(spec)
    assert state.status == "missing" and "pip install" in state.detail
    with pytest.raises(RegistryError, match=r"package studio-no-such-package is not installed: run `pip install"):
        prepare(registry)
    assert leftovers(tmp_path) == []


def test_bad_hash_single_file_writes_nothing(tmp_path):
    spec = replace(REAL.get("smollm2-135m-instruct"), sha256="0" * 64)
    with pytest.raises(RegistryError, match="sha256 mismatch.*reinstall"):
        prepare(Registry([spec], tmp_path))
    assert leftovers(tmp_path) == []


def test_prepare_brings_what_an_older_studio_kept_to_this_layout(tmp_path):
    """An older Studio converted chat models to bf16 folders and kept the joined GGUF of a base
    model that only fine-tuning loads; neither is loaded now. The packages are gone already."""
    data = b"GGUF" + bytes(range(256)) * 64
    digest = hashlib.sha256(data).hexdigest()
    parts = tuple(Part(f"studio-gone-{i}", f"gone/part{i}.bin", "1", "0" * 64) for i in (1, 2))
    chat = ModelSpec("old-chat", "t", ("chat",), "pypi", "gguf", digest, parts, optional=True)
    base = ModelSpec("old-base", "t", ("lora-base",), "pypi", "gguf", digest, parts)
    registry = Registry([chat, base], tmp_path)
    (tmp_path / "gguf").mkdir()
    for spec in (chat, base):
        (tmp_path / "gguf" / f"{spec.name}.gguf").write_bytes(data)
        folder = tmp_path / "base" / spec.name
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"weights")
        (folder / STAMP_NAME).write_text(json.dumps({"sha256": digest,
                                                     "files": {"model.safetensors": 7}}))
    assert registry.state(chat).status == "missing"  # this version keeps no folder for it
    assert registry.state(base).status == "ready"

    assert prepare(registry) == ["old-chat"]  # optional, but installed before
    assert registry.state(chat).status == registry.state(base).status == "ready"
    assert registry.state(chat).path == str(tmp_path / "gguf" / "old-chat.gguf")
    assert not (tmp_path / "base" / "old-chat").exists()
    assert not (tmp_path / "gguf" / "old-base.gguf").exists()
    assert (tmp_path / "base" / "old-base" / "model.safetensors").is_file()
    assert prepare(registry) == []

    # An optional model that cannot be prepared (its GGUF gone, its packages too) is said so
    # and left; the default ones are still prepared.
    (tmp_path / "gguf" / "old-chat.gguf").unlink()
    (tmp_path / "base" / "old-chat").mkdir()
    events: list = []
    assert prepare(registry, progress=events.append) == []
    assert any(e.model == "old-chat" and "studio-gone-1 is not installed" in e.message
               for e in events)
    assert registry.state(chat).status == "missing"


def test_embedding_model_verified_then_corrupt_when_stamp_disagrees(tmp_path):
    registry = Registry([REAL.get("all-minilm-l6-v2")], tmp_path)
    spec = registry.get("all-minilm-l6-v2")
    assert registry.state(spec).status == "missing"
    assert prepare(registry) == ["all-minilm-l6-v2"]
    assert registry.state(spec).status == "ready"
    assert prepare(registry) == []  # already prepared: no work
    stamp = registry.stamp_path(spec)
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "source_size": 1}))
    assert registry.state(spec).status == "corrupt"


def test_already_prepared_real_registry_is_a_noop():
    """`make test` prepared the models; preparing again does no work and changes nothing."""
    default = {name: spec for name, spec in REAL.specs.items() if not spec.optional}
    stamps = {name: REAL.stamp_path(spec).stat().st_mtime_ns for name, spec in default.items()}
    events = []
    assert prepare(REAL, progress=events.append) == []
    assert {e.stage for e in events} == {"skip"}
    installed = {name for name, spec in REAL.specs.items()
                 if spec.optional and REAL.available(name)}
    assert {e.model for e in events} == set(default) | installed  # optional ones if installed
    assert stamps == {name: REAL.stamp_path(spec).stat().st_mtime_ns
                      for name, spec in default.items()}


def test_models_list_json_cli():
    out = subprocess.run([sys.executable, "-m", "core", "models", "list", "--json"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["name"] for r in rows} == set(REAL.specs)
    for row in rows:
        assert {"name", "role", "status", "path", "size_bytes"} <= set(row)
        if row["optional"] and row["status"] == "missing":
            assert "models install" in row["detail"]  # fetched on demand only
            continue
        assert row["status"] == "ready" and row["size_bytes"] > 1_000_000


def test_cli_help_lists_models_command():
    out = subprocess.run([sys.executable, "-m", "core", "--help"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, check=True)
    assert "models" in out.stdout


@pytest.mark.slow
def test_convert_real_gguf_then_detect_damage(tmp_path):
    """The light model converted from scratch into a private models dir loads and generates;
    a damaged weight file is then reported as corrupt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    registry = Registry([REAL.get("smollm2-135m-instruct")], tmp_path)
    spec = registry.get("smollm2-135m-instruct")
    stages = []
    assert prepare(registry, progress=lambda e: stages.append(e.stage)) == [spec.name]
    assert "convert" in stages and registry.state(spec).status == "ready"
    folder = registry.base_dir(spec)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.dtype == torch.bfloat16
    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    with (folder / "model.safetensors").open("r+b") as fh:
        fh.truncate(1000)
    assert registry.state(spec).status == "corrupt"
