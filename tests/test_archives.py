"""Hostile ZIPs, built byte by byte here, against the two places that unpack ZIPs from users: the
adapter import and the dataset of documents in label folders."""

import io
import json
import struct
import tracemalloc
import zipfile
import zlib

import pytest
import torch
from safetensors.torch import save_file

from core.archives import SafeZip
from core.lora import adapter_ops
from core.lora.adapters import AdapterError
from core.lora.data import DataError, DataLimits, from_zip

GIB = 1 << 30


def raw_zip(entries: list[dict]) -> bytes:
    """A ZIP written by hand, so its headers can say what zipfile would never write: a size
    that is not the real one, a flag, a method. Each entry: name, data (as stored), crc, size
    (declared), and optionally method (8: deflate), flags, offset_of (index of an earlier entry
    whose local header it shares, for a central directory that lists the same data twice)."""
    body, central, offsets = b"", b"", []
    for entry in entries:
        name = entry["name"].encode()
        method, flags = entry.get("method", 8), entry.get("flags", 0)
        fields = (20, flags, method, 0, 0, entry["crc"], len(entry["data"]), entry["size"],
                  len(name), 0)
        if "offset_of" in entry:
            offsets.append(offsets[entry["offset_of"]])
        else:
            offsets.append(len(body))
            body += struct.pack("<4s5H3I2H", b"PK\x03\x04", *fields[:5], *fields[5:]) + name
            body += entry["data"]
        central += struct.pack("<4s6H3I5HII", b"PK\x01\x02", 20, *fields, 0, 0, 0, 0,
                               offsets[-1]) + name
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                      len(central), len(body), 0)
    return body + central + end


def zeros_deflated(size: int) -> tuple[bytes, int]:
    """`size` zero bytes deflated (1 MiB blocks repeated: deflate allows it after a full flush)
    and their CRC, in well under a second for a GiB."""
    block = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size >> 20):
        crc = zlib.crc32(block, crc)
    return one * (size >> 20) + packer.flush(), crc


def deflated(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def adapter_files(tmp_path) -> dict[str, bytes]:
    """A small, valid PEFT LoRA adapter's files (r=2 on q_proj); also makes the models folder
    it is imported into."""
    (tmp_path / "models").mkdir(exist_ok=True)
    config = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"],
              "base_model_name_or_path": "tiny", "task_type": "CAUSAL_LM"}
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file({f"{prefix}.lora_A.weight": torch.zeros(2, 8),
               f"{prefix}.lora_B.weight": torch.zeros(8, 2)}, tmp_path / "w.safetensors")
    return {"a/adapter_config.json": json.dumps(config).encode(),
            "a/adapter_model.safetensors": (tmp_path / "w.safetensors").read_bytes()}


def entry(name: str, content: bytes, **kw) -> dict:
    return {"name": name, "data": deflated(content), "crc": zlib.crc32(content),
            "size": len(content), **kw}


def peak_while(call) -> tuple[int, Exception | None]:
    tracemalloc.start()
    try:
        call()
        raised = None
    except Exception as exc:  # the caller checks what was raised
        raised = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, raised


def test_a_member_that_lies_about_its_size_is_refused_without_inflating_it(tmp_path):
    """The reported bomb: ~1 MB of ZIP, a member claiming 100 bytes that inflates to 1 GiB.
    `ZipFile.read` inflated all of it before the CRC check (2.1 GB of memory)."""
    files = adapter_files(tmp_path)
    bomb, crc = zeros_deflated(GIB)
    data = raw_zip([entry("a/adapter_config.json", files["a/adapter_config.json"]),
                    {"name": "a/adapter_model.safetensors", "data": bomb, "crc": crc,
                     "size": 100}])
    assert len(data) < 1.1e6
    models = tmp_path / "models"
    peak, raised = peak_while(lambda: adapter_ops.import_zip(models, data, "bomb"))
    assert isinstance(raised, AdapterError)
    assert str(raised) == ("a/adapter_model.safetensors: damaged, its content does not match "
                           "its CRC checksum")
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MB allocated"
    assert not (models / "adapters" / "bomb").exists()


def test_a_member_over_the_cap_is_refused_by_its_declared_and_its_real_size(tmp_path):
    bomb, crc = zeros_deflated(GIB)
    config = adapter_files(tmp_path)["a/adapter_config.json"]
    honest = raw_zip([entry("a/adapter_config.json", config),
                      {"name": "a/adapter_model.safetensors", "data": bomb, "crc": crc,
                       "size": GIB}])
    with pytest.raises(AdapterError, match=r"1024 MB unpacked is over the 512 MB limit"):
        adapter_ops.import_zip(tmp_path / "models", honest, "bomb")
    small, crc = zeros_deflated(4 << 20)
    with SafeZip(raw_zip([{"name": "x", "data": small, "crc": crc, "size": 4 << 20}]),
                 member_bytes=8 << 20, total_bytes=3 << 20) as archive:
        with pytest.raises(Exception, match="more than the 3 MB limit for the whole archive"):
            archive.copy(archive.members[0], io.BytesIO())


def test_many_members_within_their_cap_pass_the_total_cap(tmp_path):
    content, crc = zeros_deflated(4 << 20)
    path = tmp_path / "many.zip"
    path.write_bytes(raw_zip([{"name": f"A/doc{i}.txt", "data": content, "crc": crc,
                               "size": 4 << 20} for i in range(5)]))
    with pytest.raises(DataError, match=r"many.zip: unpacks to more than the 10 MB limit "
                                        r"for the whole archive"):
        from_zip(path, lambda p: p.read_text(), DataLimits(max_zip_bytes=10 << 20))


def test_one_member_listed_many_times_passes_the_total_cap(tmp_path):
    """A central directory may list the same compressed data again and again: each entry is
    within its cap, together they are not."""
    content, crc = zeros_deflated(4 << 20)
    first = {"name": "A/doc.txt", "data": content, "crc": crc, "size": 4 << 20}
    path = tmp_path / "overlap.zip"
    path.write_bytes(raw_zip([first] + [{**first, "offset_of": 0}] * 300))
    assert len(path.read_bytes()) < 100_000
    with pytest.raises(DataError, match=r"overlap.zip: unpacks to more than the 1024 MB limit"):
        from_zip(path, lambda p: "text")


@pytest.mark.parametrize("kw, message", [
    ({"crc": 1234}, "damaged, its content does not match its CRC checksum"),
    ({"flags": 1}, "encrypted"),
    ({"method": 99}, "packed with compression method 99, which cannot be read"),
    ({"data": b"\xff\xfe not deflate"}, "cannot be unpacked"),
])
def test_bad_members_are_named_and_the_rest_of_the_dataset_is_read(tmp_path, kw, message):
    good = [entry(f"{label}/{i}.txt", f"{label} document {i}".encode())
            for label in ("A", "B") for i in range(3)]
    path = tmp_path / "set.zip"
    path.write_bytes(raw_zip(good + [entry("B/bad.txt", b"secret words", **kw)]))
    frame, problems = from_zip(path, lambda p: p.read_text())
    assert len(frame) == 6
    assert len(problems) == 1 and problems[0].startswith(f"B/bad.txt: {message}")
    files = adapter_files(tmp_path)
    broken = raw_zip([entry(n, c, **kw) if n.endswith(".safetensors") else entry(n, c)
                      for n, c in files.items()])
    with pytest.raises(AdapterError, match=f"adapter_model.safetensors: {message}"):
        adapter_ops.import_zip(tmp_path / "models", broken, "broken")


def test_a_hand_built_zip_of_a_valid_adapter_imports(tmp_path):
    """The builder writes ZIPs zipfile reads: a valid adapter made with it imports."""
    data = raw_zip([entry(n, c) for n, c in adapter_files(tmp_path).items()])
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    info = adapter_ops.import_zip(tmp_path / "models", data, "fine")
    assert info.name == "fine"
