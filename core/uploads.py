"""Uploaded files: safe names, one folder per collection, the same size limit as the app."""

from __future__ import annotations

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


def safe_filename(name: str) -> str:
    """A name that stays inside its folder: no directories, no leading dots, no control
    characters; unicode letters and spaces are kept so users recognise their files."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"\s+", " ", name).strip().lstrip(".")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = stem[:150].strip() or "upload"
    return f"{stem}.{suffix[:10]}" if suffix else stem


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
    files.write_bytes(target, data)
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
