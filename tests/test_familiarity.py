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
    assert not unlike.familiar and unlike.as_dict() == {
        "closest": 0.21, "floor": 0.47, "other": None, "other_kind": None, "lead_floor": None,
        "familiar": False}
    assert "0.21" in unlike.sentence() and "0.47" in unlike.sentence() and "guess" in \
        unlike.sentence()
    # a contract given to a news adapter: over the floor, but more like the contracts kept
    contract = Likeness(0.31, 0.25, 0.62, "contracts", -0.08)
    assert not contract.familiar and contract.nearer_another_kind
    assert contract.sentence() == (
        "Unlike the documents this adapter was trained on: it is more like the contracts the "
        "Studio keeps for comparison (0.620 to the closest) than like them (0.310). Read the "
        "label as a guess.")
    close_call = Likeness(0.33, 0.25, 0.30, "contracts", 0.05)  # ahead, by too little
    assert not close_call.familiar and "almost as like the contracts" in close_call.sentence()
    assert Likeness(0.5, 0.25, 0.52, "contracts", -0.08).familiar  # leads by enough
    # in a table's note
    assert contract.brief() == "more like contracts"
    assert unlike.brief() == "unlike the training documents"


def test_documents_of_other_kinds_tell_what_the_floor_lets_through(tmp_path):
    """News is broad: a news adapter's floor let 88-95% of contracts through (bench/README)."""
    rng, axis = np.random.default_rng(0), np.eye(50)

    def kind(centre: np.ndarray, spread: float, n: int) -> np.ndarray:
        return unit(*(centre + rng.normal(0, spread, (n, 50))))

    # a broad kind: most documents around one centre, a few far out, which set the floor low
    train = np.concatenate([kind(axis[0], 0.15, 56), kind(axis[0], 0.6, 4)])
    held_out = kind(axis[0], 0.15, 10)
    contracts = kind(0.3 * axis[0] + axis[1], 0.05, 30)  # another kind, over the floor alone
    like_train = kind(axis[0], 0.15, 30)  # a kind of the background the adapter learnt from
    others = np.concatenate([contracts, like_train])
    kinds = ["contracts"] * 30 + ["news"] * 30
    profile = familiarity.build(train, held_out, "m", others, kinds)
    assert set(profile.other_kinds) == {"contracts"} and profile.lead_floor is not None
    contract, article = profile.likeness(np.concatenate([kind(0.3 * axis[0] + axis[1], 0.05, 1),
                                                         kind(axis[0], 0.15, 1)]))
    assert contract.closest >= profile.floor and not contract.familiar
    assert contract.other_kind == "contracts" and article.familiar
    # what it keeps goes to disk and back, and a profile of before has none
    familiarity.save(profile, tmp_path)
    loaded = familiarity.load(tmp_path)
    assert loaded is not None and loaded.other_kinds == profile.other_kinds
    assert loaded.lead_floor == profile.lead_floor and loaded.others is not None
    assert not loaded.likeness(contracts[:1])[0].familiar
    assert familiarity.build(train, held_out, "m").others is None
    # combined with an adapter trained on contracts: no kind both tell apart
    trained_on_contracts = familiarity.build(kind(0.3 * axis[0] + axis[1], 0.05, 30),
                                             kind(0.3 * axis[0] + axis[1], 0.05, 5), "m",
                                             others, kinds)
    assert trained_on_contracts.other_kinds == ["news"] * 30
    both = familiarity.merged([profile, trained_on_contracts])
    assert both is not None and both.others is None and both.lead_floor is None
    alone = familiarity.merged([profile, profile])
    assert alone is not None and alone.other_kinds == profile.other_kinds


def test_the_shipped_documents_of_other_kinds():
    found = familiarity.background()
    kinds = {kind for kind, _ in found}
    assert kinds == {"contracts", "research papers", familiarity.ENCYCLOPEDIA}
    assert len(found) > 150 and all(text.strip() for _, text in found)
    shipped = set(pd.read_csv(SAMPLE_DATASET)["text"].str[:200])
    assert not shipped & {text[:200] for kind, text in found if kind == "contracts"}


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


def test_a_news_profile_tells_contracts_and_papers_apart_with_the_shipped_documents():
    """A profile of 120 BBC articles, as training makes it, with the real embedding model: its
    floor alone passed 88% of unseen contracts (bench/README.md)."""
    from core.rag.embeddings import default_embedder
    from core.settings import PROJECT_ROOT

    embed = default_embedder(PROJECT_ROOT / "models").embed
    news = pd.read_csv(shared("classification", "bbc_news", "bbc_news_train_5class.csv"))
    news = news.drop_duplicates("Text").sample(frac=1, random_state=0)["Text"].tolist()
    kinds, others = zip(*familiarity.background())
    profile = familiarity.build(embed(news[:120]), embed(news[120:150]), "all-minilm-l6-v2",
                                embed(list(others)), kinds)
    assert set(profile.other_kinds) == set(kinds)  # news is none of them
    # each kind once, as the Adapters page names them
    assert profile.kinds_in_words() == "contracts, research papers or Wikipedia articles"
    background = {text[:200] for text in others}
    cuad = pd.read_csv(shared("classification", "cuad_contract_types",
                              "cuad_contract_types.csv")).dropna(subset=["text"])
    contracts = [t for t in cuad["text"] if t[:200] not in background][:40]
    unseen = profile.likeness(embed(news[150:250]))
    assert sum(x.familiar for x in unseen) >= 95, [x for x in unseen if not x.familiar]
    found = profile.likeness(embed(contracts))
    assert sum(not x.familiar for x in found) >= 0.85 * len(contracts)
    assert sum(x.closest < x.floor for x in found) <= 0.3 * len(contracts)  # the floor alone
    paper = shared("papers", "2505.23724v1.txt").read_text(encoding="utf-8")[:2000]  # SC-LoRA
    [likeness] = profile.likeness(embed([paper]))
    assert not likeness.familiar, likeness
