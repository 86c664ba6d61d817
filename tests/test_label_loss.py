"""The label-set loss (classification's own objective) against references computed the slow way
on a tiny random model: one full pass per (document, label), no cache."""

import pytest
import torch
import torch.nn.functional as F

from core.lora.config import PRESETS, TrainConfig, from_preset
from core.lora.objective import LeftPadCollator, answer_only_loss, label_set_loss, label_tails
from core.lora.prompts import answer_ids, encode
from tests.tiny import tiny_causal_lm

LABELS = ["Hosting", "License", "Sponsorship agreement"]
DOCS = [("The host keeps the servers running around the clock.", "Hosting"),
        ("The licensor grants the licensee a non-exclusive licence to use the software.", "License"),
        ("Sponsor pays the team; the team wears the logo.", "Sponsorship agreement")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_causal_lm(tmp_path_factory.mktemp("tiny"))
    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def rows_for(tokenizer, max_length=128):
    out = []
    for text, label in DOCS:
        enc = encode(tokenizer, text, LABELS, label, max_length)
        out.append({"input_ids": enc.input_ids, "labels": enc.labels,
                    "label_index": LABELS.index(label)})
    return out


def reference_scores(model, tokenizer) -> torch.Tensor:
    """log p(answer of each label | prompt), one full pass per (document, label)."""
    scores = torch.zeros(len(DOCS), len(LABELS))
    for d, (text, _) in enumerate(DOCS):
        prompt = encode(tokenizer, text, LABELS, None, 128).input_ids
        for c, label in enumerate(LABELS):
            answer = answer_ids(tokenizer, label)
            ids = prompt + answer
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
            scores[d, c] = sum(logp[i - 1, ids[i]] for i in range(len(prompt), len(ids)))
    return scores


def test_label_set_loss_equals_the_reference_and_the_answer_token_loss(tiny):
    model, tokenizer = tiny
    shared, tails = label_tails([answer_ids(tokenizer, x) for x in LABELS])
    assert shared > 0 and len({t[0] for t in tails}) == len(LABELS)
    rows = rows_for(tokenizer)
    out = label_set_loss(model, LeftPadCollator(0, tails)(rows), tails)
    with torch.no_grad():
        expected = reference_scores(model, tokenizer)
    truth = torch.tensor([LABELS.index(y) for _, y in DOCS])
    # shared opening's tokens cancel in the softmax over labels; the scores differ by them only
    offset = (out.scores - expected)
    assert torch.allclose(offset, offset[:, :1].expand_as(offset), atol=1e-4)
    assert torch.allclose(out.label, F.cross_entropy(expected, truth), atol=1e-4)
    assert out.predicted.tolist() == expected.argmax(-1).tolist()
    # the answer-token part is the old loss: every answer token over the whole vocabulary
    old, _ = answer_only_loss(model, LeftPadCollator(0)(rows))
    assert torch.allclose(out.tokens, old, atol=1e-4)
    # gradients flow through the cached pass into the model
    out.label.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_label_set_scores_match_classification(tiny):
    from core.lora.classify import Classifier

    model, tokenizer = tiny
    _, tails = label_tails([answer_ids(tokenizer, x) for x in LABELS])
    with torch.no_grad():
        out = label_set_loss(model, LeftPadCollator(0, tails)(rows_for(tokenizer)), tails)
    probs = Classifier(model.eval(), tokenizer, LABELS, 128).score_many([t for t, _ in DOCS])
    for row, pred in zip(torch.softmax(out.scores, -1).tolist(), probs):
        assert row == pytest.approx([pred.scores[x] for x in LABELS], abs=1e-4)


def test_label_loss_setting_round_trips_and_is_checked(tmp_path):
    cfg = from_preset("quick", name="run-x", data="d.csv", label_loss=0.5)
    cfg.save(tmp_path / "run.yaml")
    assert TrainConfig.load(tmp_path / "run.yaml") == cfg and cfg.label_loss == 0.5
    assert all(0 < p["label_loss"] <= 1 for p in PRESETS.values())
    with pytest.raises(ValueError, match="label_loss"):
        TrainConfig(label_loss=1.5)
