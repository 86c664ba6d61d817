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

    said = baseline_verdict(evaluation(0.83, 0.92))
    assert said is not None and "92% against 83%" in said
    assert baseline_verdict(evaluation(0.95, 0.92)) is None
    assert baseline_verdict(evaluation(0.92, 0.92)) is None
