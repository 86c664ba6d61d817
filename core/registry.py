"""The model registry (models/registry.toml) and where each model stands on this machine.

Reading the registry and the status of each model never imports torch, so the home page can show
it at once. Preparing models lives in `core.prepare`.
"""

from __future__ import annotations

import importlib.metadata
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from core.errors import StudioError

Role = Literal["embedding", "chat", "lora-base"]
Status = Literal["ready", "missing", "corrupt"]
STAMP_NAME = "studio-prepared.json"


class RegistryError(StudioError):
    """A one-line, user-facing reason a model cannot be used or prepared."""


@dataclass(frozen=True)
class Part:
    package: str
    file: str
    version: str | None = None  # pinned here for optional models (not in requirements.txt)
    sha256: str | None = None  # lets a damaged part be named, not just the joined file

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}" if self.version else self.package


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    roles: tuple[Role, ...]
    source: Literal["pypi", "hf", "local"]
    format: Literal["gguf", "sentence-transformers", "hf"]
    sha256: str | None = None
    parts: tuple[Part, ...] = ()
    default_for: tuple[Role, ...] = ()
    hf_id: str | None = None
    path: str | None = None
    optional: bool = False  # installed on demand by `models install`, never by default
    archive: Literal["zip"] | None = None
    archive_folder: str = ""
    # What an installed optional model takes on disk, its packages plus what `prepare` builds
    # from them: `models install` checks for that much room before it downloads anything
    # (unset: no check before, and a disk that fills up is still named as such).
    disk_mb: int | None = None

    @property
    def role(self) -> Role:
        return self.roles[0]

    @property
    def needs_conversion(self) -> bool:
        """Fine-tuning and classification load a base model with transformers; llama.cpp reads
        a chat model's GGUF as it is, so a chat-only model is never converted (its bf16 folder
        would take 2.5-3x the GGUF's size on disk)."""
        return self.format == "gguf" and "lora-base" in self.roles

    @property
    def keeps_gguf(self) -> bool:
        """llama.cpp chats from the GGUF, so it stays after any conversion."""
        return self.format == "gguf" and "chat" in self.roles

    @property
    def joined(self) -> bool:
        """Shipped in several packages, joined into one file: the packages are then a second
        copy, removed once the model is prepared."""
        return len(self.parts) > 1

    @property
    def builds_folder(self) -> bool:
        """Prepared into models/base/<name> (converted or unpacked), not used where pip put it."""
        return self.needs_conversion or self.archive is not None


@dataclass
class ModelState:
    name: str
    role: Role
    roles: list[Role]
    status: Status
    path: str | None
    size_bytes: int
    detail: str = ""
    default_for: list[Role] = field(default_factory=list)
    optional: bool = False

    @property
    def not_installed(self) -> bool:
        """An optional model nobody asked for yet: a choice, not a fault."""
        return self.optional and self.status == "missing"

    def to_json(self) -> dict:
        return asdict(self)


class Registry:
    def __init__(self, specs: list[ModelSpec], models_dir: Path):
        self.specs = {s.name: s for s in specs}
        self.models_dir = Path(models_dir)

    @classmethod
    def load(cls, path: Path, models_dir: Path | None = None) -> Registry:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise RegistryError(f"model registry not found: {path}") from None
        specs = []
        for raw in data.get("model", []):
            raw = dict(raw)
            raw["roles"] = tuple(raw.get("roles", ()))
            raw["default_for"] = tuple(raw.get("default_for", ()))
            raw["parts"] = tuple(Part(**p) for p in raw.get("parts", ()))
            spec = ModelSpec(**raw)
            if spec.optional and not all(p.version and p.sha256 for p in spec.parts):
                raise RegistryError(f"optional model {spec.name}: each part needs a pinned "
                                    "version and sha256 (models install fetches it)")
            specs.append(spec)
        return cls(specs, models_dir or Path(path).parent)

    def get(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(sorted(self.specs))
            raise RegistryError(f"unknown model {name!r}; the registry has: {known}") from None

    def with_role(self, role: Role) -> list[ModelSpec]:
        return [s for s in self.specs.values() if role in s.roles]

    def default(self, role: Role) -> ModelSpec:
        for spec in self.specs.values():
            if role in spec.default_for:
                return spec
        raise RegistryError(f"the registry names no default {role} model")

    # Where things live ---------------------------------------------------------------------
    def base_dir(self, spec: ModelSpec) -> Path:
        return self.models_dir / "base" / spec.name

    def onnx_dir(self, spec: ModelSpec) -> Path:
        """An embedding model exported to ONNX (model.onnx, tokenizer.json): queries embed
        without importing torch, and CPUs without fast bf16 embed faster (core.rag.embeddings)."""
        return self.models_dir / "onnx" / spec.name

    def weights_path(self, spec: ModelSpec) -> Path:
        """The weight file: the joined one for a model in several parts, else the package's own
        file (RegistryError when that package is not installed)."""
        if spec.joined:
            return self.models_dir / "gguf" / f"{spec.name}.gguf"
        return part_path(spec.parts[0], spec)

    def load_path(self, spec: ModelSpec) -> Path:
        """What transformers / sentence-transformers should load."""
        if spec.source == "local":
            return Path(spec.path or "")
        if spec.source == "hf":
            return Path(spec.hf_id or "")
        if spec.builds_folder:
            return self.base_dir(spec)
        if spec.format == "gguf":
            return self.weights_path(spec)  # transformers reads a GGUF file itself
        return part_path(spec.parts[0], spec).parent

    # Status ------------------------------------------------------------------------------
    def state(self, spec: ModelSpec) -> ModelState:
        status, path, size, detail = self._check(spec)
        return ModelState(name=spec.name, role=spec.role, roles=list(spec.roles), status=status,
                          path=str(path) if path else None, size_bytes=size, detail=detail,
                          default_for=list(spec.default_for), optional=spec.optional)

    def available(self, model: str) -> bool:
        """A registry model that is ready, or a model folder on this machine."""
        if Path(model).expanduser().is_dir():
            return True
        try:
            return self.state(self.get(model)).status == "ready"
        except RegistryError:
            return False

    def states(self) -> list[ModelState]:
        return [self.state(s) for s in self.specs.values()]

    def _check(self, spec: ModelSpec) -> tuple[Status, Path | None, int, str]:
        if spec.source == "local":
            path = Path(spec.path or "")
            ok = (path / "config.json").is_file()
            return ("ready" if ok else "missing", path, folder_size(path) if ok else 0,
                    "" if ok else f"no config.json in {path}")
        if spec.source == "hf":
            return _hf_cache_state(spec)
        stamp = read_stamp(self.stamp_path(spec))
        if not spec.builds_folder:
            try:
                weights = self.weights_path(spec)
                path = self.load_path(spec)
            except RegistryError as exc:
                return "missing", None, 0, str(exc)
            if stamp is None or not weights.is_file():
                return "missing", path, 0, f"not prepared yet: run `{prepare_command(spec)}`"
            if stamp.get("sha256") != spec.sha256 or stamp.get("source_size") != weights.stat().st_size:
                return "corrupt", path, 0, ("weights changed since they were verified: run "
                                            f"`{prepare_command(spec)}`")
            return "ready", path, folder_size(path), ""
        base = self.base_dir(spec)
        if stamp is None:
            try:
                for part in spec.parts:
                    part_path(part, spec)
            except RegistryError as exc:  # a package to install first, named
                return "missing", None, 0, str(exc)
            return "missing", base, 0, f"not prepared yet: run `{prepare_command(spec)}`"
        if spec.keeps_gguf:
            try:
                gone = not self.weights_path(spec).is_file()
            except RegistryError:
                gone = True
            if gone:
                return "corrupt", base, folder_size(base), "the GGUF file it chats from is gone"
        if stamp.get("sha256") != spec.sha256:
            return "corrupt", base, 0, "prepared from other weights than the registry pins"
        for rel, size in stamp.get("files", {}).items():
            f = base / rel
            if not f.is_file() or f.stat().st_size != size:
                return "corrupt", base, folder_size(base), f"{rel} is missing or changed"
        return "ready", base, folder_size(base), ""

    def stamp_path(self, spec: ModelSpec) -> Path:
        """Written last by `prepare`: its presence means the model is whole."""
        if spec.builds_folder:
            return self.base_dir(spec) / STAMP_NAME
        return self.models_dir / ".state" / f"{spec.name}.json"


def prepare_command(spec: ModelSpec) -> str:
    """What brings this model to ready: optional models are fetched first."""
    if spec.optional:
        return f"python -m core models install {spec.name}"
    return f"python -m core models prepare {spec.name}"


def reinstall_command(spec: ModelSpec | None, part: Part) -> str:
    if spec is not None and spec.optional:
        return f"python -m core models install --reinstall {spec.name}"
    return f"pip install --force-reinstall --no-deps {part.requirement}"


def part_path(part: Part, spec: ModelSpec | None = None) -> Path:
    """Locate a file a PyPI package ships, without importing the package."""
    try:
        dist = importlib.metadata.distribution(part.package)
    except importlib.metadata.PackageNotFoundError:
        hint = (prepare_command(spec) if spec is not None and spec.optional
                else "pip install --no-deps -r models/requirements.txt")
        raise RegistryError(f"package {part.package} is not installed: run `{hint}`") from None
    if part.version and dist.version != part.version:
        raise RegistryError(f"package {part.package} is {dist.version}, the registry pins "
                            f"{part.version}: run `{reinstall_command(spec, part)}`")
    path = Path(str(dist.locate_file(part.file)))
    if not path.is_file():
        raise RegistryError(f"package {part.package} lacks {part.file}: reinstall it with "
                            f"`{reinstall_command(spec, part)}`")
    return path


def read_stamp(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _hf_cache_state(spec: ModelSpec) -> tuple[Status, Path | None, int, str]:
    from huggingface_hub import try_to_load_from_cache  # light import, no torch

    cached = try_to_load_from_cache(spec.hf_id or "", "config.json")
    if isinstance(cached, str):
        folder = Path(cached).parent
        return "ready", folder, folder_size(folder), ""
    return "missing", None, 0, f"{spec.hf_id} is not in the local Hugging Face cache"


def linked_models_dir(folder: Path, source: Path) -> Path:
    """A models folder of its own (its adapters stay in it) that sees `source`'s registry and
    prepared models through links: for tests and benchmarks that write adapters."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    (folder / "registry.toml").write_text((Path(source) / "registry.toml").read_text())
    for part in ("base", "gguf", ".state"):
        if (Path(source) / part).exists():
            (folder / part).symlink_to(Path(source) / part)
    return folder
