"""Evaluation metrics against hand-computed values."""

import pytest

from core.lora.evaluate import baseline_verdict, metrics


def test_metrics_match_hand_computed_values():
    truth = ["a", "a", "b", "b", "c"]
    predicted = ["a", "b", "b", "b", None]  # None: generate mode's unparsed answer, wrong
    m = metrics(truth, predicted, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                   "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["c"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0) / 3)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]


def test_the_wizard_says_when_the_baseline_wins():
    def evaluation(adapter: float, baseline: float) -> dict:
        return {"adapter": {"accuracy": adapter}, "baseline": {"accuracy": baseline}}

    said = baseline_verdict(evaluation(0.83, 0.92))  # saved before the TF-IDF baseline
    assert said is not None and "embeddings + logistic regression baseline" in said
    assert "92% against 83%" in said
    assert baseline_verdict(evaluation(0.95, 0.92)) is None
    said = baseline_verdict(evaluation(0.92, 0.92))  # a tie is worth saying too
    assert said is not None and "does as well as this adapter" in said and "92% each" in said
    both = evaluation(0.85, 0.80) | {"tfidf": {"accuracy": 0.9}}
    said = baseline_verdict(both)
    assert said is not None and "TF-IDF + linear SVM baseline" in said and "90% against 85%" in said
    assert baseline_verdict(both | {"adapter": {"accuracy": 0.91}}) is None


def test_tfidf_baseline_learns_words_that_name_the_label():
    from core.lora.data import LabelledData
    from core.lora.evaluate import tfidf_baseline

    def data(n: int) -> LabelledData:
        texts = [f"invoice number {i} total amount due" for i in range(n)]
        texts += [f"dear team, the meeting moves to room {i}" for i in range(n)]
        return LabelledData(texts, ["invoice"] * n + ["letter"] * n, "toy")

    result = tfidf_baseline(data(6), data(3))
    assert result["accuracy"] == 1.0 and result["n"] == 6


WORDS = ("invoice", "total", "due", "meeting", "room", "team", "contract", "party", "term")


class CountingEmbedder:
    """Counts of a few words as the vector; remembers every text it was asked to embed."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.asked += texts
        return [[float(text.split().count(w)) for w in WORDS] for text in texts]


def labelled(n: int, seed: int):
    """`n` noisy texts of each of three labels: two of a label's words among random others."""
    import random

    from core.lora.data import LabelledData

    rng = random.Random(seed)
    texts, labels = [], []
    for label, own in (("invoice", WORDS[:3]), ("letter", WORDS[3:6]), ("contract", WORDS[6:])):
        for i in range(n):
            texts.append(" ".join(rng.sample(own, 2) + rng.choices(WORDS, k=3) + [str(i)]))
            labels.append(label)
    return LabelledData(texts, labels, "toy")


def test_learning_curve_embeds_once_and_ends_at_the_full_baselines():
    from core.lora.evaluate import embedding_baseline, learning_curve, tfidf_baseline

    train, test = labelled(100, 0), labelled(20, 1)
    embedder = CountingEmbedder()
    curve = learning_curve(train, test, embedder)
    assert [row["train_examples"] for row in curve] == [50, 100, 200, 300]
    assert all(set(row) == {"train_examples", "baseline", "tfidf"} for row in curve)
    assert all(0 <= row[key] <= 1 for row in curve for key in ("baseline", "tfidf"))
    assert sorted(embedder.asked) == sorted(train.texts + test.texts)  # each text once
    assert curve[-1]["baseline"] == embedding_baseline(train, test, embedder)["accuracy"]
    assert curve[-1]["tfidf"] == tfidf_baseline(train, test)["accuracy"]
    assert [row["train_examples"] for row in learning_curve(labelled(30, 0), test, embedder)] \
        == [50, 90]  # only the sizes under the training set's, then all of it


class FirstLabel:
    """Stands in for the adapter, which this test is not about: always the first label."""
    labels = ["contract", "invoice", "letter"]

    def score_many(self, texts, use_adapter=True, on_progress=None):
        from core.lora.classify import Prediction

        return [Prediction(self.labels[0], {self.labels[0]: 1.0}, 0.0, False, text) for text in texts]


def test_compare_fits_each_baseline_on_all_the_data_once_and_its_curve_ends_there(monkeypatch):
    from core.lora import evaluate

    train, test = labelled(100, 0), labelled(20, 1)
    fits = []
    fit_tfidf = evaluate.tfidf_baseline
    monkeypatch.setattr(evaluate, "tfidf_baseline",
                        lambda tr, te: fits.append(len(tr.texts)) or fit_tfidf(tr, te))
    embedder = CountingEmbedder()
    result = evaluate.compare(FirstLabel(), train, test, embedder)
    assert sorted(fits) == [50, 100, 200, 300]  # not 300 twice
    assert sorted(embedder.asked) == sorted(train.texts + test.texts)
    assert result["learning_curve"][-1] == {"train_examples": 300,
                                            "baseline": result["baseline"]["accuracy"],
                                            "tfidf": result["tfidf"]["accuracy"]}
    assert result["adapter"]["accuracy"] == 1 / 3


def test_subsample_keeps_every_label_even_one_sklearn_cannot_stratify():
    from collections import Counter

    from core.lora.data import LabelledData, subsample

    data = labelled(40, 0)
    part = subsample(data, 30, seed=3)
    assert Counter(part.labels) == {"invoice": 10, "letter": 10, "contract": 10}
    assert part.texts == subsample(data, 30, seed=3).texts  # the seed fixes the draw
    assert subsample(data, 500) is data
    rare = LabelledData(data.texts + ["a lone memo"], data.labels + ["memo"], "toy")
    part = subsample(rare, 30, seed=3)
    assert len(part.texts) == 30 and set(part.labels) == {"invoice", "letter", "contract", "memo"}
