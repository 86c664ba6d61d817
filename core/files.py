"""Writes that are whole or absent. A reader (a page polling a run, a second process, a restart
after `kill -9` or a full disk) sees the old content or the new, never half of either: data goes
to a temporary name in the same folder, is flushed to disk, and is renamed over the target."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from core.errors import InputError, StudioError

PARTIAL = ".partial"  # what a write in progress is called; .gitignore and cleanup know it
# Collections, runs and adapters become folder names (and Chroma's own rule is the strictest:
# 3-63 characters, alphanumeric at both ends), so one rule serves all three.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")
NAME_RULE = ("use 3–63 letters, digits, '.', '_' or '-', starting and ending with a letter or "
             "digit, with no '..'")


def check_name(name: str, what: str) -> str:
    """`name` when it can safely name a collection, run or adapter folder, else InputError."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        shown = name if isinstance(name, str) and len(name) <= 80 else f"{str(name)[:80]}…"
        raise InputError(f"{what} name {shown!r}: {NAME_RULE}")
    return name


class DiskFull(StudioError, OSError):
    """A write refused for want of space; also an OSError, as the refused write was."""


FULL_DISK_WORDS = ("no space left", "disk is full", "storagefull")
NEARLY_FULL = 1 << 20  # bytes free: a write that failed on a disk this full failed for want of room


def _free_space(folder: Path) -> tuple[Path, int]:
    """The nearest existing folder at or above `folder`, and the bytes free on its disk."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder, shutil.disk_usage(folder).free


def _full(folder: Path, free: int, need: int = 0) -> DiskFull:
    if need > NEARLY_FULL:  # a big write asked first: the disk need not be full to refuse it
        return DiskFull(f"the disk holding {folder} has {free / 2**30:.1f} GB free, and this "
                        f"needs about {need / 2**30:.1f} GB; free some space there and try again")
    return DiskFull(f"the disk holding {folder} is full ({free / 2**20:.1f} MB free); free some "
                    "space there and try again")


def check_room(folder: Path, need: int = 0) -> None:
    """DiskFull unless the disk holding `folder` has `need` bytes free beyond NEARLY_FULL. For
    writers that must not start on a full disk (embedded Chroma, writing on one, has hung, a
    Rust worker waiting forever, rather than failed), or that should not start a long write
    that cannot end (a model's gigabytes)."""
    folder, free = _free_space(folder)
    if free < need + NEARLY_FULL:
        raise _full(folder, free, need)


def says_disk_full(text: str) -> bool:
    """Whether an error's text is the system's (or a library's) words for a full disk."""
    return any(words in text.lower() for words in FULL_DISK_WORDS)


def disk_full(exc: BaseException, folder: Path) -> DiskFull | None:
    """The plain message for a write that failed because the disk is full, naming `folder`
    (where it was writing), or None for any other failure. Libraries wrap the OSError (SQLite
    and safetensors in their own errors, with the system's words), so the chain and the
    messages are searched; torch says only "unexpected pos", so a failure on a disk with
    (almost) no room left counts too."""
    folder, free = _free_space(folder)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DiskFull):
            return seen
        if (isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT)) \
                or says_disk_full(str(seen)):
            break
        seen = seen.__cause__ or seen.__context__
    else:
        if free >= NEARLY_FULL:
            return None
    return _full(folder, free)


@contextmanager
def replacing_file(path: Path) -> Iterator[BinaryIO]:
    """Yield a binary file to write; it replaces `path` when the block ends without an error,
    and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if (full := disk_full(exc, path.parent)) in (None, exc):
            raise
        raise full from exc
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with replacing_file(path) as fh:
        fh.write(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any, indent: int | None = None) -> None:
    write_text(path, json.dumps(value, indent=indent, ensure_ascii=False))


def read_json(path: Path, default: Any = None) -> Any:
    """The file's JSON, or `default` when it is missing or not JSON (a file from before these
    writes were atomic, or one edited by hand)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return default


@contextmanager
def replacing_folder(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; when the block ends without an error the
    staging folder replaces `target` whole, else it is removed and `target` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{PARTIAL}")
    staging.mkdir()
    try:
        yield staging
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except Exception as exc:  # torch and safetensors report a full disk in their own errors
        if (full := disk_full(exc, target.parent)) in (None, exc):
            raise
        raise full from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether the process a lock or run file names (its writer) still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
