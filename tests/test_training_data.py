"""Dataset checks, the stratified split and the prompt format (tiny tokenizer, no model)."""

import pandas as pd
import pytest

from core.lora.data import DataError, clean, from_table, load, split
from core.lora.prompts import PromptError, encode, plain
from core.samples import SAMPLE_DATASET
from tests.tiny import CHAT_TEMPLATE

CATEGORIES = ["Distributor", "Endorsement", "Hosting", "License", "Sponsorship"]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from core.registry import Registry
    from core.settings import PROJECT_ROOT

    registry = Registry.load(PROJECT_ROOT / "models" / "registry.toml")
    return AutoTokenizer.from_pretrained(registry.load_path(registry.default("embedding")))


def test_sample_dataset_loads_and_splits_stratified():
    data, findings = clean(load(SAMPLE_DATASET, "text", "label"))
    assert findings == [] and len(data.texts) == 60 and data.label_set == CATEGORIES
    parts = split(data, (0.8, 0.1, 0.1), seed=7)
    assert parts.sizes == {"train": 48, "validation": 6, "test": 6}
    for part in (parts.train, parts.validation, parts.test):
        assert set(part.labels) == set(CATEGORIES)
    assert not set(parts.train.texts) & set(parts.test.texts)
    assert split(data, seed=7).test.texts == parts.test.texts  # the seed fixes it


def test_checks_name_the_problems():
    frame = pd.DataFrame({"t": ["a", "a", "", "b", "c", "d", "e"],
                          "y": ["x", "z", "x", "x", "x", "x", "rare"]})
    data, findings = clean(from_table(frame, "t", "y", "mine.csv"))
    messages = [f.message for f in findings]
    assert "1 row(s) with an empty text or label were left out" in messages
    assert "1 duplicate text(s) were left out, 1 of them with a different label" in messages
    errors = [f.message for f in findings if f.level == "error"]
    assert errors == ["labels with fewer than 3 examples cannot be split for training and "
                      "testing: rare (1)"]
    with pytest.raises(DataError, match=r"mine.csv: no column 'text' \(columns: t, y\)"):
        from_table(frame, "text", "y", "mine.csv")


def test_bad_file_named(tmp_path):
    bad = tmp_path / "data.jsonl"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="data.jsonl: not a readable JSONL file"):
        load(bad, "text", "label")


@pytest.mark.parametrize("template", [None, CHAT_TEMPLATE])
def test_truncation_cuts_the_document_never_the_categories_or_answer(tokenizer, template):
    tokenizer.chat_template = template
    long_doc = "contract clause " * 2000
    enc = encode(tokenizer, long_doc, CATEGORIES, "Hosting", max_length=256)
    assert enc.truncated and len(enc.input_ids) <= 256
    text = tokenizer.decode(enc.input_ids)
    assert "valid categories : distributor, endorsement, hosting, license, sponsorship" in text
    answer = tokenizer.decode([t for t in enc.labels if t != -100])
    assert answer.replace(" ", "").startswith('{"label":"hosting"}')
    assert enc.labels[:enc.prompt_length] == [-100] * enc.prompt_length
    short = encode(tokenizer, "a short contract", CATEGORIES, None, max_length=256)
    assert not short.truncated and all(t == -100 for t in short.labels)
    with pytest.raises(PromptError, match="no room for the document"):
        encode(tokenizer, long_doc, CATEGORIES, "Hosting", max_length=40)


def test_a_document_reads_the_same_however_its_spaces_arrived():
    """Pasted (a CSV's double spaces, CRLF, blank lines) or extracted (spaces collapsed): one
    prompt, so one label. A BPE tokenizer reads every space, unlike MiniLM's."""
    from transformers import AutoTokenizer

    from core.registry import Registry
    from core.settings import PROJECT_ROOT

    registry = Registry.load(PROJECT_ROOT / "models" / "registry.toml")
    bpe = AutoTokenizer.from_pretrained(registry.load_path(registry.get("smollm2-135m-instruct")))
    pasted = "lifestyle  governs mobile choice  faster  better\r\n\r\n\r\n\tor funkier  \nhardware "
    extracted = "lifestyle governs mobile choice faster better\n\nor funkier\nhardware"
    assert plain(pasted) == extracted
    assert bpe(pasted)["input_ids"] != bpe(extracted)["input_ids"]  # what the model would see
    both = [encode(bpe, text, CATEGORIES, "Hosting", max_length=256) for text in (pasted, extracted)]
    assert both[0].input_ids == both[1].input_ids
