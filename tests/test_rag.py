"""Prompt building, citations and inferred attribution, with a tiny real model."""

import pytest

from core.rag.answers import build_prompt, cited_ranks, infer_citations, is_refusal, to_markdown
from core.rag.llm import TransformersEngine
from core.rag.retrieval import Hit, highlight_spans
from core.settings import load_settings
from tests.tiny import tiny_causal_lm


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return TransformersEngine("tiny", tiny_causal_lm(tmp_path_factory.mktemp("m")))


def hit(rank: int, text: str) -> Hit:
    return Hit(rank=rank, score=1 / rank, doc="paper.pdf", page=rank, chunk_id=f"c{rank}",
               text=text, retriever="dense")


def test_prompt_numbers_chunks_and_drops_whole_chunks_that_do_not_fit(engine):
    hits = [hit(1, "alpha " * 50), hit(2, "beta " * 400), hit(3, "gamma " * 30)]
    engine.context_window = 700
    plan = build_prompt("What is alpha?", hits, engine, max_new_tokens=128)
    assert [h.rank for h in plan.used] == [1, 3] and [h.rank for h in plan.dropped] == [2]
    user = plan.messages[1]["content"]
    assert "[1] (paper.pdf, page 1)" in user and "[3] (paper.pdf, page 3)" in user
    assert "beta" not in user  # never cut mid-chunk: the chunk is left out whole
    assert "I don't know" in plan.messages[0]["content"]
    engine.context_window = 4096
    assert len(build_prompt("q", hits, engine, 128).used) == 3


def test_cited_ranks_only_counts_chunks_the_model_was_given():
    used = [hit(1, "a"), hit(2, "b")]
    assert cited_ranks("Yes [2], see also [1, 2] and [7].", used) == [1, 2]
    assert cited_ranks("No marks here.", used) == []
    assert is_refusal("I don't know.") and not is_refusal("It is known.")


def test_inferred_citations_follow_meaning(studio_env):
    used = [hit(1, "Cats are small domesticated felines that purr and chase mice."),
            hit(2, "The central bank raised interest rates to fight inflation.")]
    answer = "Interest rates went up because the bank wanted to curb inflation. Cats purr when they are happy."
    links = infer_citations(load_settings(), answer, used)
    assert [link["rank"] for link in links] == [2, 1]


def test_highlight_and_markdown_export():
    spans = highlight_spans("Overfitting hurts; the model overfits.", "what is overfitting?")
    assert [s for s, match in spans if match] == ["Overfitting", "overfits"]  # same stem
    from core.rag.answers import Answer

    a = Answer("Q?", "An answer [1].", [hit(1, "text one")], [1], [], [1], False)
    md = to_markdown("papers", [a])
    assert "## Q: Q?" in md and "[1] paper.pdf, page 1, score 1.00 (cited)" in md


@pytest.mark.slow
def test_stop_ends_generation_early_and_keeps_the_partial_answer(engine, studio_env):
    import threading

    from core.rag.answers import RagTurn
    from core.rag.ingest import ingest_files
    from core.samples import SAMPLE_PAPER

    settings = load_settings()
    ingest_files(settings, [SAMPLE_PAPER], "samples")
    stop = threading.Event()
    turn = RagTurn(settings, "samples", "What is overfitting?", engine, max_new_tokens=200,
                   stop=stop)
    pieces = []
    for piece in turn.stream():
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
    answer = turn.finish()
    assert answer.stopped and len(pieces) < 20
    assert answer.text == "".join(pieces).strip()
    assert turn.finish(stop=True) is None  # recorded once, whoever asks second


def test_a_reader_that_goes_away_leaves_the_model_free_once_stopped(engine):
    """Streamlit interrupts a script mid-stream without closing its generator: the generation
    must still end at `stop`, and meanwhile a second one waits for the model."""
    import threading

    messages = [{"role": "user", "content": "Tell me a long story."}]
    stop = threading.Event()
    abandoned = engine.stream(messages, 200, stop)
    next(abandoned)  # generating now; the reader goes away without closing it
    stop.set()
    assert "".join(engine.stream(messages, 5))  # had to wait for the stopped one to let go
    assert not engine.lock.locked()
    assert len(list(abandoned)) < 10  # it stopped within a token or two, not at 200
