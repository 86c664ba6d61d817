"""Adapter operations on real PEFT adapters of a tiny model: averaging against hand-computed
tensors, ZIP round trip and refusals, merge equivalence, PEFT combinations, rename, delete."""

import io
import json
import shutil
import zipfile

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.lora import adapter_ops, familiarity
from core.lora.adapters import AdapterError, get, list_adapters, of_run

WEIGHTS = "adapter_model.safetensors"


@pytest.fixture
def models(tiny_library, tmp_path):
    """A private copy of the library, with a second adapter of the same shape."""
    models = tmp_path / "models"
    shutil.copytree(tiny_library, models, symlinks=True)
    twin = models / "adapters" / "tiny-twin"
    shutil.copytree(models / "adapters" / "tiny-cuad", twin)
    tensors = load_file(twin / WEIGHTS)
    torch.manual_seed(1)
    save_file({k: v + torch.randn_like(v) for k, v in tensors.items()}, twin / WEIGHTS)
    return models


def test_weighted_average_matches_hand_computed_tensors():
    a = {"w": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}
    b = {"w": torch.tensor([[5.0, 6.0], [7.0, 8.0]])}
    out = adapter_ops.weighted_average([a, b], [1, 3])
    assert torch.equal(out["w"], torch.tensor([[4.0, 5.0], [6.0, 7.0]]))  # (a + 3b) / 4
    with pytest.raises(AdapterError, match="non-negative"):
        adapter_ops.weighted_average([a, b], [0, 0])
    with pytest.raises(AdapterError, match="different tensors"):
        adapter_ops.weighted_average([a, {"v": b["w"]}], [1, 1])


def test_average_of_two_adapters_records_parents(models):
    target = adapter_ops.average(models, ["tiny-cuad", "tiny-twin"], [1, 3], "tiny-avg")
    a = load_file(models / "adapters" / "tiny-cuad" / WEIGHTS)
    b = load_file(models / "adapters" / "tiny-twin" / WEIGHTS)
    out = load_file(target / WEIGHTS)
    for key in a:
        assert torch.allclose(out[key], (a[key] + 3 * b[key]) / 4, atol=1e-6)
    meta = get(models, "tiny-avg").meta
    assert meta.combined == {"type": "weighted_average", "parents": ["tiny-cuad", "tiny-twin"],
                                "weights": [1, 3]}
    assert meta.evaluation is None
    # it learnt from both parents' training documents
    profile = familiarity.load(target)
    assert profile is not None and len(profile.vectors) == 2 * len(
        familiarity.load(models / "adapters" / "tiny-cuad").vectors)
    with pytest.raises(AdapterError, match="exists"):
        adapter_ops.average(models, ["tiny-cuad", "tiny-twin"], [1, 1], "tiny-avg")
    (models / "adapters" / "tiny-twin" / familiarity.FILE).unlink()  # a parent of unknown data
    assert familiarity.load(adapter_ops.average(models, ["tiny-cuad", "tiny-twin"], [1, 1],
                                                "tiny-avg2")) is None


def test_average_refuses_different_lora_shapes(models):
    config = models / "adapters" / "tiny-twin" / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "r": 4}))
    # Its weights still have rank 8: the weight check refuses it before the shape comparison.
    with pytest.raises(AdapterError, match="rank 8, adapter_config.json says r=4"):
        adapter_ops.average(models, ["tiny-cuad", "tiny-twin"], [1, 1], "nope")
    assert not (models / "adapters" / "nope").exists()


def test_peft_cat_combination_loads_as_an_adapter(models):
    from core.lora.adapters import load_classifier

    target = adapter_ops.combine(models, ["tiny-cuad", "tiny-twin"], [0.5, 0.5], "tiny-cat",
                                 "cat")
    assert json.loads((target / "adapter_config.json").read_text())["r"] == 16  # 8 + 8
    pred = load_classifier(models, adapter="tiny-cat").score("A hosting agreement.")
    assert sum(pred.scores.values()) == pytest.approx(1, abs=1e-5)


def test_export_import_round_trip_and_refusals(models):
    data = adapter_ops.export_zip(models, "tiny-cuad")
    imported = adapter_ops.import_zip(models, data, name="tiny-copy",
                                      base_available=lambda base: True)
    assert (imported.folder / WEIGHTS).read_bytes() == \
        (models / "adapters" / "tiny-cuad" / WEIGHTS).read_bytes()
    assert imported.meta.name == "tiny-copy" and imported.labels == get(models, "tiny-cuad").labels
    with pytest.raises(AdapterError, match="exists"):
        adapter_ops.import_zip(models, data)  # its own name, tiny-cuad, is taken

    def rezip(extra: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buffer, "w") as out:
            for item in src.infolist():
                out.writestr(item, src.read(item))
            for name, content in extra.items():
                out.writestr(name, content)
        return buffer.getvalue()

    with pytest.raises(AdapterError, match="pickled files are refused"):
        adapter_ops.import_zip(models, rezip({"tiny-cuad/adapter_model.bin": b"\x80\x04."}), "pickled")
    with pytest.raises(AdapterError, match="outside its folder"):
        adapter_ops.import_zip(models, rezip({"../../evil.txt": b"x"}), "x2")
    beside = adapter_ops.import_zip(models, rezip({"NOTES.txt": b"exported on Monday"}), "beside")
    assert not (beside.folder / "NOTES.txt").exists()  # files beside the adapter's folder stay out
    adapter_ops.delete(models, "beside")
    with pytest.raises(AdapterError, match="not a ZIP"):
        adapter_ops.import_zip(models, b"PK not really", "x3")
    with pytest.raises(AdapterError, match="not available here"):
        adapter_ops.import_zip(models, data, "x4", base_available=lambda base: False)
    without_weights = io.BytesIO()
    with zipfile.ZipFile(without_weights, "w") as out:
        out.writestr("a/adapter_config.json", "{}")
    with pytest.raises(AdapterError, match="adapter_model.safetensors is missing"):
        adapter_ops.import_zip(models, without_weights.getvalue(), "x5")
    assert {a.name for a in list_adapters(models)} == {"tiny-cuad", "tiny-twin", "tiny-copy"}


def test_merge_matches_the_adapter(models):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    report = adapter_ops.merge(models, "tiny-cuad")
    assert report["max_logit_difference"] < 1e-3
    meta = get(models, "tiny-cuad").meta
    merged = AutoModelForCausalLM.from_pretrained(report["folder"]).float()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(meta.base),
                                        models / "adapters" / "tiny-cuad")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-3)


def test_rename_and_delete(models):
    adapter_ops.rename(models, "tiny-twin", "tiny-renamed")
    assert get(models, "tiny-renamed").meta.name == "tiny-renamed"
    with pytest.raises(AdapterError, match="no adapter named"):
        get(models, "tiny-twin")
    with pytest.raises(ValueError, match="adapter name"):
        adapter_ops.rename(models, "tiny-renamed", "../escape")
    adapter_ops.delete(models, "tiny-renamed")
    assert [a.name for a in list_adapters(models)] == ["tiny-cuad"]


def test_a_renamed_adapter_still_belongs_to_its_run(models):
    """Renamed, it lost its training curve on the Adapters page and the Train wizard said its
    run had "no saved adapter"."""
    adapter_ops.delete(models, "tiny-twin")  # a bare folder copy: it would be the run's too
    adapter_ops.rename(models, "tiny-cuad", "contracts")
    adapter_ops.copy(models, "contracts", "contracts-copy")
    assert get(models, "contracts").meta.run == "tiny-cuad"
    assert of_run(models, "tiny-cuad").name == "contracts"  # not the copy
    assert of_run(models, "contracts").name == "contracts" and of_run(models, "nope") is None
    adapter_ops.average(models, ["contracts", "contracts-copy"], [1, 1], "contracts-avg")
    assert get(models, "contracts-avg").meta.run == "contracts-avg"  # not its parent's run


def test_cli_adapters(models, tmp_path):
    import os
    import subprocess
    import sys

    from core.settings import PROJECT_ROOT

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "core", "adapters", *args, "--json"],
                              cwd=PROJECT_ROOT, capture_output=True, text=True,
                              env={**os.environ, "STUDIO_MODELS_DIR": str(models)})

    listed = [json.loads(line) for line in cli("list").stdout.splitlines()]
    assert {r["name"] for r in listed} == {"tiny-cuad", "tiny-twin"}
    assert json.loads(cli("show", "tiny-cuad").stdout)["labels"][0] == "Distributor"
    done = cli("average", "tiny-cuad", "tiny-twin", "--weights", "1,3", "--name", "avg")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"adapter": "avg", "parents": ["tiny-cuad", "tiny-twin"],
                                       "weights": [1.0, 3.0]}
    zipped = tmp_path / "avg.zip"
    assert cli("export", "avg", "--output", str(zipped)).returncode == 0
    assert cli("delete", "avg").returncode == 0
    back = cli("import", str(zipped))
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout) == {"imported": "avg"}
    clash = cli("import", str(zipped))
    assert clash.returncode == 2 and "exists" in clash.stderr


def test_a_profile_is_made_again_from_the_dataset_and_only_from_that_dataset(models, tmp_path):
    folder = get(models, "tiny-cuad").folder
    before = familiarity.load(folder)
    (folder / familiarity.FILE).unlink()
    made = adapter_ops.profile(models, "tiny-cuad")
    again = familiarity.load(folder)
    assert again is not None and made.documents == again.documents == 48
    assert before is not None and again.floor == pytest.approx(before.floor, abs=1e-3)
    assert set(again.other_kinds) == {"research papers", "Wikipedia articles"}
    # a dataset edited since training: its split would hold other documents
    meta_path = folder / "studio-adapter.json"
    meta = json.loads(meta_path.read_text())
    edited = tmp_path / "edited.csv"
    edited.write_text(open(meta["config"]["data"]).read().replace("AGREEMENT", "Agreement", 1))
    meta["config"]["data"] = str(edited)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(AdapterError, match="edited.csv\\) has changed since"):
        adapter_ops.profile(models, "tiny-cuad")
    edited.unlink()
    with pytest.raises(AdapterError, match="edited.csv\\) is no longer there"):
        adapter_ops.profile(models, "tiny-cuad")
    averaged = adapter_ops.average(models, ["tiny-twin", "tiny-twin"], [1, 1], "both")
    with pytest.raises(AdapterError, match="not trained on one dataset here"):
        adapter_ops.profile(models, averaged.name)
