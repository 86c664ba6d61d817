"""Label scoring and generate-and-parse with a tiny random model."""

import pytest
import torch

from core.lora.classify import Classifier, Prediction, label_or_none, parse_answer
from core.lora.prompts import answer_ids, encode, plain
from tests.tiny import tiny_causal_lm

LABELS = ["Hosting", "License", "Sponsorship agreement"]
TEXT = "The licensor grants the licensee a non-exclusive licence to use the software."


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_causal_lm(tmp_path_factory.mktemp("tiny"))
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    return Classifier(model, AutoTokenizer.from_pretrained(folder), LABELS, max_length=128)


def full_sequence_logprob(clf: Classifier, text: str, label: str) -> float:
    """The answer's log-likelihood from one pass over prompt + answer, no cache; the document
    cut to leave room for the longest answer, as classification cuts it."""
    room = clf.max_length - max(len(answer_ids(clf.tokenizer, x)) for x in clf.labels)
    answer = answer_ids(clf.tokenizer, label)
    ids = encode(clf.tokenizer, text, clf.labels, None, room).input_ids + answer
    with torch.no_grad():
        logp = torch.log_softmax(clf.model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    return sum(logp[i - 1, ids[i]].item() for i in range(len(ids) - len(answer), len(ids)))


def test_scores_are_probabilities_over_the_labels_and_the_label_is_the_argmax(classifier):
    pred = classifier.score(TEXT)
    assert set(pred.scores) == set(LABELS)
    assert sum(pred.scores.values()) == pytest.approx(1, abs=1e-5)
    assert pred.label == max(pred.scores, key=pred.scores.get)
    assert "Valid categories: Hosting, License, Sponsorship agreement" in pred.prompt
    assert TEXT in pred.prompt and not pred.truncated


def test_cached_prefix_scores_equal_scoring_each_full_sequence(classifier):
    pred = classifier.score(TEXT)
    full = torch.tensor([full_sequence_logprob(classifier, TEXT, label) for label in LABELS])
    expected = dict(zip(LABELS, torch.softmax(full, 0).tolist()))
    for label in LABELS:
        assert pred.scores[label] == pytest.approx(expected[label], abs=1e-4)


def tiny_gemma(folder, sliding_window: int) -> Classifier:
    """A tiny Gemma 3: sliding-window layers beside global ones, as in the default base model."""
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm(folder))
    torch.manual_seed(1)
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                              head_dim=16, sliding_window=sliding_window,
                              layer_types=["sliding_attention", "full_attention"],
                              pad_token_id=tokenizer.pad_token_id)
    return Classifier(Gemma3ForCausalLM(config).eval(), tokenizer, LABELS, max_length=128)


@pytest.mark.parametrize("model", ["llama", "gemma-window-256", "gemma-window-24"])
def test_documents_scored_together_equal_each_full_sequence(model, classifier, tmp_path):
    # Different lengths share a pass (padding between document and answer); with a window
    # shorter than the prompts they may not, and the scores must still be exact.
    clf = classifier if model == "llama" else tiny_gemma(tmp_path, int(model.split("-")[-1]))
    texts = [TEXT, "Short.", "word " * 30, "The server is hosted in the EU. " * 4,
             "word " * 2000, "A licence."]
    seen = []
    predictions = clf.score_many(texts, on_progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(texts), len(texts))
    for text, pred in zip(texts, predictions):
        full = torch.tensor([full_sequence_logprob(clf, text, label) for label in LABELS])
        expected = torch.softmax(full, 0).tolist()
        assert [pred.scores[label] for label in LABELS] == pytest.approx(expected, abs=1e-4)
        assert plain(text) in pred.prompt  # as the model reads it


def test_long_documents_are_cut_and_flagged(classifier):
    pred = classifier.score("word " * 2000)
    assert pred.truncated and sum(pred.scores.values()) == pytest.approx(1, abs=1e-5)


def test_few_shot_examples_appear_before_the_document_and_new_labels_work(classifier):
    examples = [("Payment terms are net 30.", "Finance"), ("The server is hosted.", "IT")]
    pred = classifier.score(TEXT, labels=["Finance", "IT"], examples=examples)
    assert set(pred.scores) == {"Finance", "IT"}
    assert pred.prompt.index("Payment terms") < pred.prompt.index(TEXT)


def test_generate_mode_reports_unparseable_output_instead_of_guessing(classifier):
    pred = classifier.generate(TEXT)
    assert pred.mode == "generate" and pred.output is not None
    # A random model does not answer in JSON: the result says so and names no label.
    assert pred.label is None and "not" in pred.error


@pytest.mark.parametrize("output,label,error", [
    ('{"label": "License"}', "License", None),
    ('Sure! {"label": "Hosting"} done', "Hosting", None),
    ('{"label": "Lease"}', None, "not one of the labels"),
    ("License", None, "not JSON"),
    ('{"label": License}', None, "does not parse"),
])
def test_parse_answer(output, label, error):
    got, why = parse_answer(output, LABELS)
    assert got == label
    assert (why is None) if error is None else error in why


def test_one_label_is_refused(classifier):
    with pytest.raises(ValueError, match="two labels"):
        classifier.score(TEXT, labels=["Only"])


def test_cli_classify_one_object_per_file_errors_named(tiny_library, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from core.settings import PROJECT_ROOT

    (tmp_path / "contract.txt").write_text(TEXT)
    (tmp_path / "empty.txt").write_bytes(b"")
    out = subprocess.run([sys.executable, "-m", "core", "classify", "--adapter", "tiny-cuad",
                          str(tmp_path / "contract.txt"), str(tmp_path / "empty.txt"), "--json"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env={**os.environ, "STUDIO_MODELS_DIR": str(tiny_library)})
    assert out.returncode == 1, out.stderr[-2000:]  # one file failed, the other was classified
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["file"] for r in rows] == ["contract.txt", "empty.txt"]
    assert rows[0]["label"] in rows[0]["scores"] and rows[0]["seconds"] > 0
    assert "empty" in rows[1]["error"]
    unknown = subprocess.run([sys.executable, "-m", "core", "classify", "--adapter", "nope",
                              str(tmp_path / "contract.txt")], cwd=PROJECT_ROOT,
                             capture_output=True, text=True,
                             env={**os.environ, "STUDIO_MODELS_DIR": str(tiny_library)})
    assert unknown.returncode == 2 and "no adapter named 'nope'" in unknown.stderr


def test_label_or_none_under_the_threshold():
    scores = {"Hosting": 0.55, "License": 0.3, "Sponsorship agreement": 0.15}
    assert label_or_none(scores, 0.5) == "Hosting"
    assert label_or_none(scores, 0.55) == "Hosting"  # at the threshold: still the label
    assert label_or_none(scores, 0.6) is None
    assert label_or_none(scores, 0.0) == "Hosting"
    assert label_or_none({}, 0.0) is None


def test_label_at_keeps_a_generated_label_without_scores():
    generated = Prediction("License", {}, 0.1, False, "", mode="generate")
    assert generated.label_at(0.9) == "License"
    scored = Prediction("License", {"License": 0.4, "Hosting": 0.35, "Other": 0.25}, 0.1,
                        False, "")
    assert scored.label_at(0.5) is None and scored.label_at(0.4) == "License"
