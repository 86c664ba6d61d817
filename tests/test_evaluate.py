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
    assert baseline_verdict(evaluation(0.92, 0.92)) is None
    both = evaluation(0.85, 0.80) | {"tfidf": {"accuracy": 0.9}}
    said = baseline_verdict(both)
    assert said is not None and "TF-IDF + linear SVM baseline" in said and "90% against 85%" in said
    assert baseline_verdict(both | {"adapter": {"accuracy": 0.9}}) is None


def test_tfidf_baseline_learns_words_that_name_the_label():
    from core.lora.data import LabelledData
    from core.lora.evaluate import tfidf_baseline

    def data(n: int) -> LabelledData:
        texts = [f"invoice number {i} total amount due" for i in range(n)]
        texts += [f"dear team, the meeting moves to room {i}" for i in range(n)]
        return LabelledData(texts, ["invoice"] * n + ["letter"] * n, "toy")

    result = tfidf_baseline(data(6), data(3))
    assert result["accuracy"] == 1.0 and result["n"] == 6
