"""Is a document like an adapter's training documents? The profile's arithmetic on vectors made
by hand; then the real one, written by the real trainer with the real embedding model, telling
contracts from news articles."""

import numpy as np
import pandas as pd
import pytest

from core.lora import familiarity
from core.lora.adapters import AdapterError, get, list_adapters, load_classifier
from core.lora.familiarity import Likeness, ProfileError
from core.samples import SAMPLE_DATASET
from tests.conftest import shared


def unit(*rows: list[float]) -> np.ndarray:
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def around(*centre: float, n: int = familiarity.MIN_DOCUMENTS, seed: int = 0) -> np.ndarray:
    """`n` unit vectors scattered a little around `centre`: documents of one kind."""
    noise = np.random.default_rng(seed).normal(0, 0.1, (n, len(centre)))
    return unit(*(np.asarray(centre) + noise))


def test_the_floor_is_the_low_quantile_of_held_out_and_leave_one_out_closeness():
    train, held_out = around(1, 0, 0), around(1, 0, 0, n=5, seed=1)
    profile = familiarity.build(train, held_out, "m")
    within = train @ train.T
    np.fill_diagonal(within, -1)
    seen = np.concatenate([within.max(1), (held_out @ train.T).max(1)])
    assert profile.floor == pytest.approx(
        np.quantile(seen, familiarity.QUANTILE) - familiarity.MARGIN, abs=1e-4)
    near, far = profile.likeness(unit([1, 0.05, 0], [0, 0, 1]))
    assert near.familiar and near.closest > 0.95
    assert not far.familiar and far.closest < 0.5
    with pytest.raises(ProfileError, match=f"at least {familiarity.MIN_DOCUMENTS}"):
        familiarity.build(train[:familiarity.MIN_DOCUMENTS - 1], held_out, "m")
    with pytest.raises(ProfileError, match="another size"):
        profile.likeness(unit([1, 0]))


def test_a_profile_round_trips_through_safetensors_and_a_damaged_one_is_named(tmp_path):
    profile = familiarity.build(around(1, 1, 0), around(1, 1, 0, n=3, seed=1), "emb")
    familiarity.save(profile, tmp_path)
    loaded = familiarity.load(tmp_path)
    assert loaded is not None and loaded.embedder == "emb" and loaded.floor == profile.floor
    assert np.allclose(loaded.vectors, profile.vectors, atol=1e-3)  # float16 on disk
    header = familiarity.load(tmp_path, vectors=False)
    assert header is not None and header.vectors.shape == (0, 3)
    assert header.documents == profile.documents == familiarity.MIN_DOCUMENTS
    assert familiarity.load(tmp_path / "none") is None
    (tmp_path / familiarity.FILE).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(ProfileError, match=f"{familiarity.FILE} is unreadable"):
        familiarity.load(tmp_path)


def test_a_combined_adapter_knows_all_its_parents_documents():
    a = familiarity.build(around(1, 0, 0), around(1, 0, 0, n=3, seed=1), "m")
    b = familiarity.build(around(0, 1, 0, seed=2), around(0, 1, 0, n=3, seed=3), "m")
    both = familiarity.merged([a, b])
    assert both is not None and len(both.vectors) == both.documents == 2 * familiarity.MIN_DOCUMENTS
    assert both.floor == min(a.floor, b.floor)
    assert all(x.familiar for x in both.likeness(unit([1, 0, 0], [0, 1, 0])))
    assert not a.likeness(unit([0, 1, 0]))[0].familiar  # what only the other parent knew
    assert familiarity.merged([a, None]) is None  # a parent of unknown documents
    other = familiarity.Profile(b.vectors, b.floor, "other", b.documents)
    assert familiarity.merged([a, other]) is None


def test_likeness_says_what_it_means():
    unlike = Likeness(0.21, 0.47)
    assert not unlike.familiar and unlike.as_dict() == {"closest": 0.21, "floor": 0.47,
                                                        "familiar": False}
    assert "0.21" in unlike.sentence() and "0.47" in unlike.sentence() and "guess" in \
        unlike.sentence()


@pytest.fixture(scope="module")
def adapter(tiny_library):
    return load_classifier(tiny_library, "tiny-cuad")


def test_training_keeps_a_profile_that_tells_contracts_from_news(tiny_library, adapter):
    profile = familiarity.load(get(tiny_library, "tiny-cuad").folder)
    assert profile is not None and profile.vectors.shape == (48, 384)  # the training split
    assert profile.embedder == "all-minilm-l6-v2" and 0.2 < profile.floor < 0.9
    # Contracts of the adapter's five types that it never saw, and news articles
    seen = set(pd.read_csv(SAMPLE_DATASET)["source_file"])
    cuad = pd.read_csv(shared("classification", "cuad_contract_types",
                              "cuad_contract_types.csv")).dropna(subset=["text"])
    unseen = cuad[cuad.contract_type.isin(adapter.labels) & ~cuad.file.isin(seen)]
    contracts = unseen["text"].tolist()
    news = pd.read_csv(shared("classification", "bbc_news",
                              "bbc_news_train_5class.csv"))["Text"].head(20).tolist()
    scored = adapter.score_many(contracts + news)
    assert all(p.likeness is not None for p in scored)
    familiar = [p.likeness.familiar for p in scored if p.likeness]
    # bench/familiarity.py: 76 of the 80 (its own adapter; the profile does not depend on it)
    assert sum(familiar[:len(contracts)]) >= 0.9 * len(contracts) and len(contracts) == 80
    assert not any(familiar[len(contracts):]), [p.likeness for p in scored[len(contracts):]]
    # the base model alone has no training documents to be like
    assert adapter.score(news[0], use_adapter=False).likeness is None
    assert scored[-1].as_dict()["likeness"]["familiar"] is False


def test_a_damaged_profile_makes_the_adapter_unusable_with_a_message(tiny_library, tmp_path):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(tiny_library, models, symlinks=True)
    (get(models, "tiny-cuad").folder / familiarity.FILE).write_bytes(b"not safetensors")
    [info] = list_adapters(models)
    assert info.problem and familiarity.FILE in info.problem
    with pytest.raises(AdapterError, match=familiarity.FILE):
        load_classifier(models, "tiny-cuad")
