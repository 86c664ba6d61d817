"""A full disk while ingesting, writing a checkpoint and saving an adapter, on a real small
file system: a tmpfs each test mounts (root only; elsewhere the tests are skipped, since a fault
injected at one write would not show what the libraries do at another). The message names the
folder, nothing half-written is left, and the next try works once there is room."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from core.files import PARTIAL, DiskFull
from core.settings import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    """mount(size) -> a folder on a tmpfs of that size, unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Take every free byte of the disk holding `folder`; remove the returned file to free it."""
    ballast = folder / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    for block in (1 << 16, 512, 1):
        try:
            while True:
                os.write(fd, b"\0" * block)
        except OSError:
            pass
    os.close(fd)
    return ballast


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if PARTIAL in p.name or p.name.endswith(".old")]


# Embedded Chroma writing on a full disk hung in a Rust worker (twice); the Studio now checks
# for room before it opens Chroma. Should it hang again, fail within minutes.
@pytest.mark.timeout(300)
def test_ingesting_on_a_full_disk(small_disk, tmp_path, monkeypatch, capsys):
    from core.cli import main
    from core.rag import store
    from core.rag.ingest import ingest_files
    from core.uploads import upload_folder
    from tests.conftest import shared

    disk = small_disk("16m")
    monkeypatch.setenv("STUDIO_DATA_DIR", str(disk / "data"))
    settings = load_settings()
    notes = tmp_path / "notes.txt"
    notes.write_text("Attention is all you need. " * 50)
    assert main(["ingest", str(notes), "--collection", "papers"]) == 0
    ballast = fill(disk)

    # The CLI keeps the original first: refused, naming the uploads folder.
    paper = shared("papers", "2505.23724v1.txt")
    capsys.readouterr()
    assert main(["ingest", str(paper), "--collection", "papers"]) == 1
    folder = upload_folder(settings.data_dir, "papers")
    assert f"{paper.name}: could not be kept in {folder} (the disk holding {folder} is full" \
        in capsys.readouterr().out
    # Stored from where it is (as the sample paper is): Chroma's own folder is named.
    [result] = ingest_files(settings, [paper], "papers")
    assert result.status == "error"
    assert f"(the disk holding {settings.chroma_dir} is full" in result.error
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]

    ballast.unlink()
    collection = store.get_collection(store.client(settings), "papers")
    assert [(d["file"], d["chunks"]) for d in store.documents(collection)] == [("notes.txt", 3)]
    assert not any(key.startswith(store.PENDING) for key in collection.metadata)
    assert main(["ingest", str(paper), "--collection", "papers"]) == 0
    assert leftovers(disk) == []


def test_a_checkpoint_on_a_full_disk(small_disk, tmp_path, models_env, monkeypatch, capsys):
    """The runs folder on a disk with room for a run's files but not its first checkpoint."""
    from core.cli import main
    from core.lora.runs import run_dir
    from core.samples import SAMPLE_DATASET
    from tests.tiny import tiny_causal_lm

    disk = small_disk("300k")
    monkeypatch.setenv("STUDIO_DATA_DIR", str(disk / "data"))
    base = tiny_causal_lm(tmp_path / "tiny-base")
    code = main(["train", "--data", str(SAMPLE_DATASET), "--name", "tiny", "--base", str(base),
                 "--max-steps", "4", "--batch-size", "4", "--max-length", "128",
                 "--eval-steps", "2", "--save-steps", "2"])
    run = run_dir(load_settings(), "tiny")
    assert code == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the libraries' progress bars
    assert last.startswith(f"error: the disk holding {run.path} is full")
    assert list(run.checkpoints.glob("checkpoint-*")) == [] and not run.adapter.exists()
    status = json.loads((run.path / "status.json").read_text())
    assert status["state"] == "failed" and "is full" in status["error"]
    assert not (models_env / "adapters" / "tiny").exists()


def test_saving_an_adapter_on_a_full_disk(small_disk, tmp_path):
    """The library on a disk too small for the new version of an adapter: the old one stays."""
    from core.lora.adapters import publish

    models = small_disk("256k")
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, size in ((first, 64_000), (second, 400_000)):
        folder.mkdir()
        (folder / "adapter_model.safetensors").write_bytes(os.urandom(size))
    published = publish(first, models, "tiny")
    with pytest.raises(DiskFull, match=f"the disk holding {published.parent} is full"):
        publish(second, models, "tiny")
    assert (published / "adapter_model.safetensors").read_bytes() == \
        (first / "adapter_model.safetensors").read_bytes()
    assert sorted(p.name for p in published.parent.iterdir()) == ["tiny"]
