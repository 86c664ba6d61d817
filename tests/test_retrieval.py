"""Dense, BM25 and hybrid retrieval over real papers in a real embedded Chroma."""

import json
import os
import subprocess
import sys

import pytest

from core.rag import relevance, store
from core.rag.ingest import ingest_files
from core.rag.retrieval import RetrievalOptions, search
from core.samples import SAMPLE_PAPER
from core.settings import PROJECT_ROOT, load_settings
from tests.conftest import shared

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def papers(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    settings = load_settings(env={"STUDIO_DATA_DIR": str(data)})
    gan = shared("papers", "1406.2661_GAN.pdf")
    results = ingest_files(settings, [SAMPLE_PAPER, gan], "papers")
    assert [r.status for r in results] == ["ok", "ok"]
    return settings, {r.file: r.doc_id for r in results}


def test_dense_finds_the_passage_and_scores_mean_similarity(papers):
    settings, _ = papers
    result = search(settings, "papers", "How can I tell that my model is overfitting?",
                    RetrievalOptions(k=5, method="dense", rerank=False))
    hits = result.hits
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert "overfitting" in hits[0].text.lower() and hits[0].retriever == "dense"
    assert all(0 <= h.score <= 1 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert "cosine similarity" in result.score_meaning
    # each carries its document's page count, so its card says which page it is on
    assert all(h.pages > 1 and h.paged for h in hits)


def test_a_document_of_one_page_has_no_page_to_tell():
    from core.rag.bm25 import Bm25Index
    from core.rag.hits import Hit

    metas = [{"doc_id": "a", "page": 1, "chunk": 0}, {"doc_id": "a", "page": 3, "chunk": 1},
             {"doc_id": "t", "page": 1, "chunk": 0}]
    index = Bm25Index(["a:0", "a:1", "t:0"], ["one", "two", "three"], metas)
    assert index.pages == {"a": 3, "t": 1}
    # a PDF of one page as a text file: "page 1" says nothing
    one = Hit(rank=1, score=1.0, doc="notes.pdf", page=1, chunk_id="t:0", text="three",
              retriever="both", pages=1)
    assert not one.paged and Hit(**{**one.__dict__, "pages": 3}).paged
    # saved in a conversation before page counts were kept: its page is shown, as it was then
    assert Hit(**{**one.__dict__, "pages": 0}).paged


def test_bm25_relative_scores_and_hybrid_fusion(papers):
    settings, _ = papers
    bm25 = search(settings, "papers", "generative adversarial nets discriminator",
                  RetrievalOptions(k=3, method="bm25", rerank=False)).hits
    assert bm25[0].score == 1.0 and bm25[0].doc == "1406.2661_GAN.pdf"
    hybrid = search(settings, "papers", "generative adversarial nets discriminator",
                    RetrievalOptions(k=8, method="hybrid", rerank=False)).hits
    assert {h.retriever for h in hybrid} <= {"dense", "bm25", "both"}
    assert hybrid[0].retriever == "both" and 0 < hybrid[0].score <= 1
    assert all(h.score <= hybrid[0].score for h in hybrid)


def test_by_default_the_candidates_are_ordered_by_relevance(papers):
    """Reranked, the top k are the most relevant of every candidate, not the fused top k."""
    settings, _ = papers
    question = "How is the discriminator of a generative adversarial net trained?"
    fused = search(settings, "papers", question, RetrievalOptions(k=40, rerank=False)).hits
    reranked = search(settings, "papers", question, RetrievalOptions(k=5)).hits
    assert [h.rank for h in reranked] == [1, 2, 3, 4, 5]
    assert [h.relevance for h in reranked] == sorted((h.relevance for h in reranked),
                                                     reverse=True)
    best = sorted(fused, key=lambda h: h.relevance, reverse=True)[:5]
    assert [h.chunk_id for h in reranked] == [h.chunk_id for h in best]


def test_filters_floor_and_mmr(papers):
    settings, doc_ids = papers
    only_gan = search(settings, "papers", "training data", RetrievalOptions(
        k=5, method="hybrid", doc_ids=(doc_ids["1406.2661_GAN.pdf"],))).hits
    assert only_gan and {h.doc for h in only_gan} == {"1406.2661_GAN.pdf"}
    floor = search(settings, "papers", "overfitting", RetrievalOptions(
        k=10, method="dense", min_score=0.5)).hits
    assert all(h.score >= 0.5 for h in floor)
    mmr = search(settings, "papers", "overfitting", RetrievalOptions(k=5, method="dense",
                                                                     mmr=True)).hits
    assert len(mmr) == 5 and len({h.chunk_id for h in mmr}) == 5
    with pytest.raises(ValueError, match="k must be between 1 and 50"):
        RetrievalOptions(k=0)
    with pytest.raises(ValueError, match="window_tokens must be between 0 and 8192, got -1"):
        RetrievalOptions(window_tokens=-1)
    with pytest.raises(ValueError, match="question is empty"):
        search(settings, "papers", "   ")


def test_bm25_follows_deletion_and_refuses_other_embedding_model(papers):
    settings, doc_ids = papers
    chroma = store.client(settings)
    store.delete_document(store.get_collection(chroma, "papers"), doc_ids["1406.2661_GAN.pdf"])
    hits = search(settings, "papers", "generative adversarial nets discriminator",
                  RetrievalOptions(k=5, method="bm25"), chroma=chroma).hits
    assert "1406.2661_GAN.pdf" not in {h.doc for h in hits}
    with pytest.raises(store.StoreError, match="cannot be searched with other-model"):
        search(settings, "papers", "x", embedding_model="other-model")


def test_cli_search_json(papers):
    settings, _ = papers
    out = subprocess.run([sys.executable, "-m", "core", "search", "What is overfitting?",
                          "--collection", "papers", "-k", "3", "--method", "dense", "--json"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env={**os.environ, "STUDIO_DATA_DIR": str(settings.data_dir)})
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert len(rows) == 3
    assert set(rows[0]) == {"rank", "score", "doc", "page", "pages", "chunk_id", "text", "retriever",
                            "doc_id", "chunk", "start", "end", "title", "section", "cosine",
                            "coverage", "sentence_cosine", "best_sentence", "relevance", "similar_words",
                            "match"}


def test_the_keyword_index_is_kept_between_processes_and_follows_writes(papers, tmp_path):
    settings, _ = papers
    question = "adversarial nets generator discriminator"
    first = search(settings, "papers", question, RetrievalOptions(k=3, method="bm25"))
    folders = list(settings.indexes_dir.glob("papers-*/bm25-r*"))
    assert len(folders) == 1 and (folders[0] / "chunks.json").is_file()
    # A fresh process loads it instead of rebuilding: same hits, and it never imports torch.
    code = ("import sys, json; from core.cli import main; "
            "main(['search', sys.argv[1], '--collection', 'papers', '-k', '3', '--method', "
            "'bm25', '--json']); print(json.dumps('torch' in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, question], capture_output=True,
                          text=True, cwd=PROJECT_ROOT,
                          env={**os.environ, "STUDIO_DATA_DIR": str(settings.data_dir)})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[-1]) is False
    again = [row["chunk_id"] for row in json.loads(lines[0])]
    assert again == [h.chunk_id for h in first.hits]
    # A write bumps the revision: the next search builds a new index and drops the old one.
    note = tmp_path / "gan-notes.txt"
    note.write_text("Notes on adversarial nets: the generator and the discriminator play a "
                    "minimax game.")
    assert ingest_files(settings, [note], "papers")[0].status == "ok"
    search(settings, "papers", question, RetrievalOptions(k=3, method="bm25"))
    now = list(settings.indexes_dir.glob("papers-*/bm25-r*"))
    assert len(now) == 1 and now != folders
    chroma = store.client(settings)
    store.delete_document(store.get_collection(chroma, "papers"),
                          ingest_files(settings, [note], "papers")[0].doc_id)


def test_off_topic_hits_score_high_but_match_weakly(papers):
    """Fused ranks put the best chunk near 1 whatever the question; the calibrated relevance
    says the chunk is unlikely to hold the answer, the same for every method."""
    settings, _ = papers
    for method in ("hybrid", "bm25", "dense"):
        hits = search(settings, "papers", "What is the capital of Peru?",
                      RetrievalOptions(k=5, method=method)).hits
        assert all(h.match == "weak" and h.relevance < 0.05 for h in hits), method
        assert all(h.cosine < 0.4 for h in hits), method
    on_topic = search(settings, "papers", "What is overfitting?", RetrievalOptions(k=5)).hits
    assert on_topic[0].match in ("strong", "partial")


def test_who_wrote_a_paper_is_answered_from_its_opening_chunk(papers):
    """Neither retriever finds a title block for "Who wrote…": MiniLM put BERT's 40th of 153."""
    settings, _ = papers  # a collection of its own: a test above deletes the GAN paper
    gan = shared("papers", "1406.2661_GAN.pdf")
    assert {r.status for r in ingest_files(settings, [SAMPLE_PAPER, gan], "authors")} == {"ok"}
    named = search(settings, "authors", "Who are the authors of the GAN paper?")
    assert named.placed and len(named.hits) == 1
    assert (named.hits[0].doc, named.hits[0].chunk) == ("1406.2661_GAN.pdf", 0)
    assert "Goodfellow" in named.hits[0].text and named.hits[0].rank == 1
    unnamed = search(settings, "authors", "Who wrote this paper?", RetrievalOptions(k=5))
    assert unnamed.placed and {(h.doc, h.chunk) for h in unnamed.hits} == {
        ("1406.2661_GAN.pdf", 0), (SAMPLE_PAPER.name, 0)}
    assert {h.retriever for h in named.hits + unnamed.hits} == {"front matter"}
    content = search(settings, "authors", "What do the authors of the GAN paper propose?")
    assert not content.placed and len(content.hits) == 3
    # a follow-up's standalone query holds earlier questions: what was asked last decides
    follow_up = search(settings, "authors", "Who wrote the GAN paper? How is it trained?",
                       asked="How is it trained?")
    assert not follow_up.placed and len(follow_up.hits) == 3


def test_an_acronym_the_text_never_writes_is_searched_for_spelled_out(papers):
    """The GAN paper never writes "GAN": no chunk held the question's one topical word, every
    passage was a weak match, and "What is a GAN?" was refused over that very paper."""
    settings, _ = papers  # a collection of its own: a test above deletes the GAN paper
    gan = shared("papers", "1406.2661_GAN.pdf")
    assert [r.status for r in ingest_files(settings, [SAMPLE_PAPER, gan], "acronyms")] == \
        ["ok", "ok"]
    result = search(settings, "acronyms", "What is a GAN?")
    assert result.query == "What is a GAN (Generative Adversarial Nets)?"
    assert all(h.doc == "1406.2661_GAN.pdf" for h in result.hits)
    assert relevance.answerable([h.relevance for h in result.hits])


def test_a_question_that_names_a_paper_is_answered_from_that_paper(tmp_path):
    """Over BERT's paper and the Transformer's, "Which optimizer was used to train the
    Transformer?" is about the paper that introduces the Transformer, whose "5.3 Optimizer"
    never says "Transformer", where BERT's title says "Transformers" and its text "Adam"."""
    settings = load_settings(env={"STUDIO_DATA_DIR": str(tmp_path)})
    results = ingest_files(settings, [shared("papers", "1810.04805_BERT.pdf"),
                                      shared("papers", "1706.03762_Attention_is_all_you_need.pdf")],
                           "two")
    attention = results[1].doc_id
    found = search(settings, "two", "Which optimizer was used to train the Transformer?")
    assert found.within == (attention,)
    assert found.hits[0].section == "5.3 Optimizer" and "Adam optimizer" in found.hits[0].text
    assert {h.doc_id for h in found.hits} == {attention}
    # named by neither: both are searched
    assert search(settings, "two", "Which optimizer was used?").within == ()
    # named, but only weakly answered there: the others are searched too (BERT reports SWAG)
    elsewhere = search(settings, "two", "What does the Transformer score on SWAG?")
    assert elsewhere.within == () and elsewhere.hits[0].doc_id != attention
    # A follow-up that names neither is about the paper the conversation is about: BERT's GLUE
    # table leads over both, the Transformer's own tasks when the talk is of the Transformer
    follow_up = "Which tasks was it evaluated on?"
    assert search(settings, "two", follow_up).hits[0].doc_id != attention
    followed = search(settings, "two", follow_up, discussed=(attention,))
    assert followed.within == (attention,) and followed.because == "discussed"
    assert {h.doc_id for h in followed.hits} == {attention}
    # a conversation about every document searched keeps none first
    both = (attention, results[0].doc_id)
    assert search(settings, "two", follow_up, discussed=both).within == ()
    only = RetrievalOptions(doc_ids=(attention,))
    assert search(settings, "two", follow_up, only, discussed=(attention,)).within == ()
    # the paper the question names comes before the one discussed
    named = search(settings, "two", "Which optimizer was used to train the Transformer?",
                   discussed=(results[0].doc_id,))
    assert named.within == (attention,) and named.because == "named"
    # An amount question reads the passage that gives the amount: "h = 8 … heads" ranks 5th
    # by relevance, under passages about multi-head attention that count nothing
    heads = search(settings, "two", "How many attention heads does the Transformer use?")
    assert len(heads.hits) == 3
    assert any("employ h = 8 parallel attention layers, or heads" in h.text for h in heads.hits)
    # A table's chunk, its caption with its rows, is rated whole: it has no sentence to be
    # rated by, and its rows' best "sentence" had put it below prose that mentions the results
    squad = search(settings, "two", "What F1 does BERT get on SQuAD v1.1?")
    assert any("Table 2: SQuAD 1.1 results" in h.text and "93.2" in h.text for h in squad.hits)


def test_beside_a_strong_match_the_weak_ones_are_not_given_to_the_model():
    from core.rag.definitions import RETRIEVER
    from core.rag.hits import Hit
    from core.rag.retrieval import worth_reading

    strong, partial, weak = (Hit(rank=i, score=1.0, doc="p.pdf", page=1, chunk_id=str(i),
                                 text="t", retriever="both") for i in (1, 2, 3))
    strong.relevance, partial.relevance, weak.relevance = 0.39, 0.12, 0.04
    assert worth_reading([strong, partial, weak]) == [strong, partial]
    assert worth_reading([partial, weak]) == [partial, weak]  # no strong one: all are read
    weak.retriever = RETRIEVER  # the passage that spells out the abbreviation asked about
    assert worth_reading([strong, weak]) == [strong, weak]


def test_a_passage_that_says_what_a_better_one_says_gives_its_place_up():
    from core.rag.hits import Hit, distinct

    tip = ("Tip 2: Use traditional methods to establish performance baselines. Since deep "
           "learning requires practitioners to consider a larger number and variety of tuning "
           "parameters than more traditional machine learning methods, start with a simple model.")
    pdf, html, other, template = (
        Hit(rank=i, score=1.0, doc=doc, doc_id=doc, title=title, page=1, chunk_id=str(i),
            text=text, retriever="both")
        for i, (doc, title, text) in enumerate([
            ("tips.pdf", "Ten Tips", tip),
            ("tips.html", "Ten Tips", tip.replace("Since deep", "As deep") + " Then"),
            ("tips.pdf", "Ten Tips", "Tip 6: Tune your hyperparameters extensively and systematically."),
            ("other.pdf", "Other Tips", tip)]))
    # the same document uploaded as a PDF and as a web page
    assert distinct([pdf, html, other]) == [pdf, other]
    assert distinct([other, pdf]) == [other, pdf]
    # another document that says the same (a contract of the same template) keeps its place
    assert distinct([pdf, template]) == [pdf, template]
