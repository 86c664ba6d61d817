"""One answer end to end with a tiny real model: stopping, what a follow-up reads, the model
freed for the next reader, highlights and the Markdown export."""

import pytest

from core.rag.export import to_markdown
from core.rag.terms import highlight_spans
from core.settings import load_settings
from tests.conftest import hit


def test_highlight_and_markdown_export():
    spans = highlight_spans("Overfitting hurts; the model overfits.", "what is overfitting?")
    assert [s for s, match in spans if match] == ["Overfitting", "overfits."]  # same stem
    # Punctuation touching a word is inside its mark (drawn padded, "tasks ," otherwise);
    # so is a possessive's "'s".
    spans = highlight_spans('Two tasks, (BERT) and "tasks". BERT\'s e.g. tasks', "BERT tasks?")
    assert [s for s, match in spans if match] == ["tasks,", "(BERT)", '"tasks".', "BERT's",
                                                  "tasks"]
    assert "".join(s for s, _ in spans) == 'Two tasks, (BERT) and "tasks". BERT\'s e.g. tasks'
    spans = highlight_spans("BERT uses pre-training and pre- or post-\nBERT models",
                            "What is pre-training in BERT models?")
    assert spans == [("BERT", True), (" uses ", False), ("pre-training", True),
                     (" and ", False), ("pre", True), ("- or post-\n", False),
                     ("BERT models", True)]  # neighbouring terms are one mark, not across lines
    spans = highlight_spans("BERTBASE (L=12)", "How many layers does BERT-base have?")
    assert spans[0] == ("BERTBASE", True)  # a hyphenated word is also read joined
    assert highlight_spans("a Feature-based one", "What is BERT-base?") == [
        ("a ", False), ("Feature-based", True), (" one", False)]  # not "Feature- based"
    from core.rag.answers import Answer

    a = Answer("Q?", "An answer [1].", [hit(1, "text one")], [1], [], [1], False)
    md = to_markdown("papers", [a])
    assert "## Q: Q?" in md and "[1] paper.pdf, page 1, weak match (cited)" in md


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


@pytest.mark.slow
def test_only_a_follow_up_reads_the_earlier_turns(engine, studio_env):
    from core.rag.answers import RagTurn
    from core.rag.conversations import Turn
    from core.rag.ingest import ingest_files
    from core.rag.prompting import REWORD_PROMPT
    from core.samples import SAMPLE_PAPER

    settings = load_settings()
    ingest_files(settings, [SAMPLE_PAPER], "samples")
    earlier = [{"role": "user", "content": "Who wrote the BERT paper?"},
               {"role": "assistant", "content": "Jacob Devlin and others [1]"}]
    alone = RagTurn(settings, "samples", "How do I detect overfitting in a model?", engine,
                    history=earlier)
    assert [m["role"] for m in alone.plan.messages] == ["user"]
    assert "Devlin" not in alone.plan.messages[0]["content"]
    # the earlier questions, not the answers, which the 0.5B copied
    follow_up = RagTurn(settings, "samples", "Why does it matter?", engine, history=earlier)
    assert [m["role"] for m in follow_up.plan.messages] == ["user", "user"]
    assert follow_up.plan.messages[0]["content"] == "Who wrote the BERT paper?"
    assert "Devlin" not in str(follow_up.plan.messages)
    # a request about the previous answer rewords it, without the passages, which are
    # searched as its question was
    earlier = [{"role": "user", "content": "How many layers does BERT-base have?"},
               {"role": "assistant", "content": "12 [1]"}]
    reworded = RagTurn(settings, "samples", "Can you say that in a full sentence?", engine,
                       history=earlier)
    assert reworded.plan.messages[1:3] == earlier
    assert reworded.plan.messages[0]["content"] == REWORD_PROMPT
    assert reworded.searched_for == "How many layers does BERT-base have?"
    assert reworded.search.hits and reworded.answerable
    # From a saved conversation, that answer's own passages in its order, where its marks
    # point, whatever a new search would find; no prompt reads the saved answer
    first = RagTurn(settings, "samples", "How many layers does BERT-base have?", engine,
                    max_new_tokens=8)
    "".join(first.stream())
    saved = first.result().to_json()
    saved["sources"] = saved["sources"][::-1]
    assert len(saved["sources"]) > 1
    reworded = RagTurn(settings, "samples", "Say that more simply", engine,
                       history=Turn(first.question, saved).messages)
    assert [h.chunk_id for h in reworded.search.hits] == \
        [h["chunk_id"] for h in saved["sources"]]
    assert reworded.searched_for == saved["searched_for"] and reworded.search.seconds == 0
    assert all(m.keys() == {"role", "content"} for m in reworded.plan.messages)


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
