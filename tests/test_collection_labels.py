"""Classifying a whole collection: a tiny trained adapter over a small real collection (real
extraction, MiniLM and embedded Chroma); the label filter in `search` and on the pages."""

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.lora import collection_labels
from core.lora.collection_labels import Pages, classify_collection
from core.rag import store
from core.rag.ingest import ingest_files
from core.settings import PROJECT_ROOT, load_settings
from tests.tiny import tiny_causal_lm

TEXTS = {
    "letter.txt": "Dear Ms Brown, thank you for your letter about the garden fence. The fence "
                  "will be repaired next week. Yours sincerely, John Smith.",
    "licence.txt": "The licensor grants the licensee a non-exclusive licence to use the "
                   "software. The licence fee is payable yearly. This agreement is governed by "
                   "the laws of England.",
}


@pytest.fixture
def letters(studio_env, tiny_library, tmp_path, monkeypatch):
    """The collection `letters`: two small text documents, and the tiny adapter installed."""
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tiny_library))
    paths = []
    for name, text in TEXTS.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    results = ingest_files(load_settings(), paths, "letters", chunk_size=100, chunk_overlap=0)
    assert all(r.status == "ok" for r in results)
    return reopened()


def reopened():
    """The collection read afresh: a handle keeps the collection metadata it was opened with."""
    return store.get_collection(store.client(load_settings()), "letters")


def label_by_hand(collection, labels: dict[str, str]) -> None:
    """Labels per file, without a model: for the filters, which must not depend on what a
    random model happens to answer."""
    chunks = store.chunks_by_document(collection)
    store.write_labels(collection, {c["id"]: (labels[c["file"]], 0.9)
                                    for rows in chunks.values() for c in rows}, "by hand")


def wait_for_job(collection: str) -> dict:
    deadline = time.time() + 300
    while (status := collection_labels.job_status(load_settings(), collection))["state"] \
            == "running":
        assert time.time() < deadline
        time.sleep(0.2)
    return status


def test_labels_and_probabilities_stored_on_every_chunk(letters):
    rows = classify_collection(load_settings(), "letters", "tiny-cuad")
    assert {r["file"] for r in rows} == set(TEXTS) and all(r["page"] is None for r in rows)
    labels = {r["file"]: r["label"] for r in rows}
    got = store.read_all(letters, ["metadatas"])["metadatas"]
    assert len(got) > 2  # several chunks per document
    for meta in got:
        assert meta["label"] == labels[meta["file"]]
        assert 0 < meta["label_p"] <= 1
    assert store.labelled_by(reopened()) == "tiny-cuad (first:2)"
    docs = store.documents(letters)
    assert [d["labels"] for d in docs] == [[labels[d["file"]]] for d in docs]


def test_per_page_labels_each_page_and_pages_are_parsed(letters):
    rows = classify_collection(load_settings(), "letters", "tiny-cuad", Pages(None))
    assert sorted((r["file"], r["page"]) for r in rows) == [("letter.txt", 1),
                                                            ("licence.txt", 1)]
    assert all("label" in m for m in store.read_all(letters, ["metadatas"])["metadatas"])
    assert Pages.parse("first:3") == Pages(3) and Pages.parse("per-page") == Pages(None)
    with pytest.raises(ValueError):
        Pages.parse("first:0")


def test_a_failed_classification_leaves_the_collection_unchanged(letters):
    class Broken:
        def score_many(self, texts, on_progress=None):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        classify_collection(load_settings(), "letters", "tiny-cuad", classifier=Broken())
    assert not any("label" in m for m in store.read_all(letters, ["metadatas"])["metadatas"])
    assert store.labelled_by(reopened()) is None


def test_background_job_reports_progress_and_the_end(letters):
    settings = load_settings()
    collection_labels.start_job(settings, "letters", "tiny-cuad")
    with pytest.raises(collection_labels.LabelJobBusy):
        collection_labels.start_job(settings, "letters", "tiny-cuad")
    status = wait_for_job("letters")
    assert status["state"] == "done" and status["done"] == status["total"] == 2
    assert sum(status["labels"].values()) == 2
    assert "letter.txt" in status["unlike"]  # a letter about a fence, to a contract adapter


def test_cli_classify_collection_then_search_by_label(letters, capsys):
    assert main(["classify", "--adapter", "tiny-cuad", "--collection", "letters", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["file"] for r in rows} == set(TEXTS)

    label_by_hand(letters, {"letter.txt": "Letter", "licence.txt": "License"})
    assert main(["search", "the fence and the licence", "--collection", "letters",
                 "--label", "Letter", "--json", "-k", "10"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and {h["doc"] for h in hits} == {"letter.txt"}
    for method in ("dense", "bm25"):
        assert main(["search", "licence", "--collection", "letters", "--label", "License",
                     "--method", method, "--json", "-k", "10"]) == 0
        assert {h["doc"] for h in json.loads(capsys.readouterr().out)} == {"licence.txt"}
    assert main(["classify", "--adapter", "tiny-cuad"]) == 2  # neither files nor a collection


def test_documents_page_classifies_shows_and_filters_labels(letters):
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    at.query_params["collection"] = "letters"
    at.run()
    at.switch_page("app_pages/documents.py").run()
    assert not at.exception
    assert "label" not in at.dataframe[0].value.columns  # nothing classified yet
    assert at.selectbox(key="label-adapter").value == "tiny-cuad"
    at.button(key="label-start").click().run()
    assert wait_for_job("letters")["state"] == "done"
    at.run()
    assert not at.exception
    assert at.dataframe[0].value["label"].all()
    assert any("Last run: tiny-cuad (first:2) labelled" in c.value for c in at.caption)
    assert any("unlike the documents tiny-cuad was trained on" in w.value and "letter.txt" in
               w.value for w in at.warning)

    label_by_hand(letters, {"letter.txt": "Letter", "licence.txt": "License"})
    at.run()
    table = at.dataframe[0].value
    assert dict(zip(table["file"], table["label"])) == {"letter.txt": "Letter",
                                                        "licence.txt": "License"}
    at.multiselect(key="label-filter").set_value(["License"]).run()
    assert list(at.dataframe[0].value["file"]) == ["licence.txt"]


@pytest.mark.slow
def test_chat_page_label_filter_retrieves_only_those_documents(letters, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_CHAT_MODEL", str(tiny_causal_lm(tmp_path / "tiny-chat")))
    label_by_hand(letters, {"letter.txt": "Letter", "licence.txt": "License"})
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    at.query_params["collection"] = "letters"
    at.run()
    at.switch_page("app_pages/chat.py").run()
    assert at.multiselect(key="only-labels").options == ["Letter", "License"]
    at.slider(key="k").set_value(15)  # more than the collection's chunks: all, unfiltered
    at.multiselect(key="only-labels").set_value(["Letter"]).run()
    at.chat_input(key="question").set_value("Who repairs the fence under the licence?").run()
    assert not at.exception
    assert [m.value for m in at.markdown if m.value.startswith("**[")]  # the sources' cards
    # each card names its file, in its heading or, under a title, in the caption below
    shown = [e.value for e in (*at.markdown, *at.caption)]
    assert any("letter\\.txt" in v for v in shown) and not any("licence\\.txt" in v for v in shown)


def test_per_page_units_give_each_page_its_own_chunks(studio_env):
    """Pages of one document, by hand: each page is one text, and only its chunks take its
    label; the first pages together cover every chunk of the document."""
    collection = store.open_collection(store.client(load_settings()), "paged", "all-minilm-l6-v2",
                                       500, 50)
    pages = [1, 1, 2, 3]
    collection.add(ids=[f"c{i}" for i in range(4)], embeddings=[[1.0] + [0.0] * 383] * 4,
                   documents=["Dear Ann,", "thanks.", "Page two.", "Page three."],
                   metadatas=[{"doc_id": "d", "file": "f.pdf", "page": page, "chunk": i,
                               "start": 0 if i != 1 else 10, "end": 9}
                              for i, page in enumerate(pages)])
    per_page = collection_labels.units(collection, Pages(None))
    assert [(u.page, u.text, u.chunk_ids) for u in per_page] == [
        (1, "Dear Ann, thanks.", ["c0", "c1"]), (2, "Page two.", ["c2"]),
        (3, "Page three.", ["c3"])]
    [first] = collection_labels.units(collection, Pages(2))
    assert first.text == "Dear Ann, thanks.\n\nPage two." and first.chunk_ids == ["c0", "c1", "c2", "c3"]
