"""Uploaded files: safe names, one folder per collection, the same size limit as the app."""

from __future__ import annotations

import hashlib
import re
import shutil
import tomllib
import unicodedata
from pathlib import Path

from core import files
from core.errors import InputError
from core.settings import PROJECT_ROOT

SUPPORTED_SUFFIXES = (".pdf", ".docx", ".html", ".htm", ".txt", ".md")


def max_upload_bytes() -> int:
    """`.streamlit/config.toml`'s server.maxUploadSize (MB), so the page and CLI agree."""
    try:
        config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
        megabytes = int(config["server"]["maxUploadSize"])
    except (FileNotFoundError, KeyError, ValueError):
        megabytes = 200  # Streamlit's own default
    return megabytes * 1024 * 1024


class UploadError(InputError):
    pass


# File systems allow 255 bytes a name, not characters (a CJK character is 3 bytes), and an
# atomic write adds a dot, a random part and ".partial" to the name while it writes.
MAX_NAME_BYTES = 200


def _cut(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes of `text`, never half a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def safe_filename(name: str) -> str:
    """A name that stays inside its folder: no directories, no leading dots, no control
    characters, at most MAX_NAME_BYTES; unicode letters and spaces are kept so users recognise
    their files."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip().lstrip(".")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    suffix = _cut(suffix, 16)
    stem = _cut(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8")) - 1).strip() or "upload"
    return f"{stem}.{suffix}" if suffix else stem


def batch_names(names: list[str]) -> list[str]:
    """Safe names for files uploaded together, kept apart: `report.pdf`, `sub/report.pdf` and
    `report\\n.pdf` all make `report.pdf`, so the second and third become `report-2.pdf` and
    `report-3.pdf` instead of overwriting the first."""
    taken: set[str] = set()
    out = []
    for name in names:
        safe = safe_filename(name)
        stem, dot, suffix = safe.rpartition(".") if "." in safe else (safe, "", "")
        number = 1
        while safe.casefold() in taken:  # case-insensitive file systems too
            number += 1
            safe = f"{stem}-{number}{dot}{suffix}"
        taken.add(safe.casefold())
        out.append(safe)
    return out


def save_content_addressed(folder: Path, name: str, data: bytes) -> Path:
    """Keep `data` under its name plus a hash of its content: another upload of the same name
    never replaces a file that earlier runs point at, and the same content uploaded again (a
    page rerun) is the same file."""
    check_size(name, len(data))
    safe = safe_filename(name)
    stem, dot, suffix = safe.rpartition(".") if "." in safe else (safe, "", "")
    digest = hashlib.sha256(data).hexdigest()[:12]
    target = Path(folder) / f"{_cut(stem, MAX_NAME_BYTES - 30)}-{digest}{dot}{suffix}"
    if not target.is_file():
        save_upload(folder, target.name, data)
    return target.resolve()


def uploaded_as(path: Path) -> str:
    """The name a file kept by `save_content_addressed` was uploaded under ("bbc.csv" for
    bbc-e4ed6656a45d.csv); a ZIP's table is named for the ZIP."""
    name = re.sub(r"-[0-9a-f]{12}(?=\.|$)", "", Path(path).name)
    return name.removesuffix(".csv") if name.endswith(".zip.csv") else name


def discard(folder: Path, path: Path) -> None:
    """Remove an upload that was refused: nothing can use it, and it would stay on disk unseen.
    Only a file inside `folder` is removed (the shipped samples are read from elsewhere)."""
    path = Path(path).resolve()
    if path.parent == Path(folder).resolve():
        path.unlink(missing_ok=True)


def check_size(name: str, size: int) -> None:
    limit = max_upload_bytes()
    if size > limit:
        raise UploadError(f"{name}: {size / 2**20:.1f} MB is over the {limit // 2**20} MB "
                          "upload limit")


def save_upload(folder: Path, name: str, data: bytes) -> Path:
    check_size(name, len(data))
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / safe_filename(name)).resolve()
    if target.parent != folder.resolve():
        raise UploadError(f"{name}: refused, the name points outside the upload folder")
    try:
        files.write_bytes(target, data)
    except OSError as exc:  # a full disk, a name the file system still refuses
        raise UploadError(f"{target.name}: could not be stored in {folder} "
                          f"({exc.strerror or exc})") from exc
    return target


def keep_copy(folder: Path, name: str, source: Path) -> Path:
    """Keep a file given by path (the CLI's) under `name` in `folder`, as `save_upload` keeps an
    uploaded one, streamed rather than read whole."""
    check_size(name, source.stat().st_size)
    target = Path(folder) / safe_filename(name)
    try:
        with source.open("rb") as src, files.replacing_file(target) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except OSError as exc:  # a full disk, an unreadable source
        raise UploadError(f"{name}: could not be kept in {folder} ({exc.strerror or exc})") from exc
    return target


def upload_folder(data_dir: Path, collection: str) -> Path:
    """Where a collection's uploaded originals are kept (for re-indexing)."""
    return Path(data_dir) / "uploads" / collection


def forget_uploads(data_dir: Path, collection: str, file_name: str | None = None) -> None:
    """Drop one kept original, or all of a collection's."""
    folder = upload_folder(data_dir, collection)
    if file_name is None:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        (folder / safe_filename(file_name)).unlink(missing_ok=True)


def move_uploads(data_dir: Path, old: str, new: str) -> None:
    source = upload_folder(data_dir, old)
    if source.is_dir():
        source.rename(upload_folder(data_dir, new))
