"""ZIPs that come from elsewhere (an adapter to import, a dataset of documents), read without
trusting them. A ZIP's sizes are whatever its maker wrote, and `ZipFile.read` inflates a member
in one call before it checks the CRC, so a 1 MB file whose member claims 100 bytes can fill
memory with gigabytes. Here each member is inflated in blocks and counted as it comes, against a
cap per member and one for the whole archive (a central directory may list the same data many
times)."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from core.errors import InputError

BLOCK = 1 << 16
MAX_MEMBERS = 10_000
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate",
           zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


class ArchiveError(InputError):
    """The archive as a whole cannot be read."""


class MemberError(ArchiveError):
    """One member cannot be read; the others may be fine."""


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size:,} bytes"


class SafeZip:
    """A ZIP opened for reading with `member_bytes` and `total_bytes` caps on what it unpacks to."""

    def __init__(self, source: bytes | Path, member_bytes: int, total_bytes: int,
                 max_members: int = MAX_MEMBERS):
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes)
                                        else source)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
            raise ArchiveError("not a ZIP file") from exc
        if len(infos) > max_members:
            self._zip.close()
            raise ArchiveError(f"{len(infos):,} entries is over the limit of {max_members:,}")
        self.members = [m for m in infos if not m.is_dir()]
        self.member_bytes = member_bytes
        self.total_bytes = total_bytes
        self.unpacked = 0

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc) -> None:
        self._zip.close()

    def copy(self, member: zipfile.ZipInfo, out: BinaryIO) -> int:
        """Inflate `member` into `out`; MemberError when it is encrypted, packed with a method
        zipfile cannot read, damaged or too large, ArchiveError when the archive's total
        passes its cap. Returns the bytes written."""
        where = member.filename
        if member.flag_bits & 0x1:
            raise MemberError(f"{where}: encrypted; pack it without a password")
        if member.compress_type not in METHODS:
            raise MemberError(f"{where}: packed with compression method {member.compress_type}, "
                              f"which cannot be read (use {' or '.join(METHODS.values())})")
        if member.file_size > self.member_bytes:  # the declared size: a cheap early refusal
            raise MemberError(f"{where}: {_mb(member.file_size)} unpacked is over the "
                              f"{_mb(self.member_bytes)} limit for one file")
        written = 0
        try:
            with self._zip.open(member) as fh:
                while block := fh.read(BLOCK):
                    written += len(block)
                    self.unpacked += len(block)
                    if written > self.member_bytes:
                        raise MemberError(f"{where}: unpacks to more than the "
                                          f"{_mb(self.member_bytes)} limit for one file")
                    if self.unpacked > self.total_bytes:
                        raise ArchiveError(f"unpacks to more than the {_mb(self.total_bytes)} "
                                           "limit for the whole archive")
                    out.write(block)
        except ArchiveError:  # ours, from the caps above (also a ValueError)
            raise
        except zipfile.BadZipFile as exc:  # a bad CRC, a header that does not match
            problem = ("its content does not match its CRC checksum" if "CRC" in str(exc)
                       else str(exc))
            raise MemberError(f"{where}: damaged, {problem}") from exc
        except (zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
            raise MemberError(f"{where}: cannot be unpacked ({exc})") from exc
        return written

    def extract(self, member: zipfile.ZipInfo, target: Path) -> None:
        """Write `member` to `target`; nothing is left at `target` if it fails."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with target.open("wb") as fh:
                self.copy(member, fh)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
