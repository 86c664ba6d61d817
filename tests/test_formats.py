"""Raw metadata as people read it: dates and percentages."""

import time

from core.formats import local_time, percent, rate, readable


def test_local_time_is_this_machines_date_and_minute():
    ts = 1796024989.008
    assert local_time(ts) == time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
    assert local_time(None) == "" and local_time(0) == ""


def test_readable_formats_times_and_accuracies_and_leaves_the_rest():
    meta = {"created": 1796024989.008, "test accuracy": 0.6666666666666666, "steps": 12,
            "evaluation": {"adapter": {"accuracy": 0.5, "macro_f1": 0.42}},
            "labels": ["A", "B"], "training_seconds": 63.2}
    out = readable(meta)
    assert out["created"] == local_time(1796024989.008)
    assert out["test accuracy"] == "67%"
    assert out["evaluation"]["adapter"] == {"accuracy": "50%", "macro_f1": 0.42}
    assert out["steps"] == 12 and out["labels"] == ["A", "B"]
    assert out["training_seconds"] == 63.2
    assert percent(None) == "—"


def test_a_slow_rate_keeps_a_decimal():
    assert rate(0.4, "tokens") == "0.4 tokens/s"
    assert rate(42.4, "tokens") == "42 tokens/s"
