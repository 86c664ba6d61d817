"""The prompt: passages numbered within the model's window, the neighbours read around each hit
(the window), a list's later items, and when an answer is asked to be brief; with a tiny real
model."""

import pytest

from core.rag.hits import Hit
from core.rag.prompting import (
    TEMPLATE_OVERHEAD_TOKENS,
    asks_for_several,
    build_prompt,
    list_items,
    wants_brevity,
    with_run_in_headings_apart,
)
from core.settings import load_settings
from tests.conftest import hit


def test_prompt_numbers_chunks_and_drops_whole_chunks_that_do_not_fit(engine):
    hits = [hit(1, "alpha " * 50), hit(2, "beta " * 400), hit(3, "gamma " * 30)]
    engine.context_window = 700
    plan = build_prompt("What is alpha?", hits, engine, max_new_tokens=128)
    assert [h.rank for h in plan.used] == [1, 3] and [h.rank for h in plan.dropped] == [2]
    user = plan.messages[-1]["content"]
    assert "Passage 1 (paper.pdf, page 1):" in user and "Passage 3 (paper.pdf, page 3):" in user
    assert "beta" not in user  # never cut mid-chunk: the chunk is left out whole
    assert len(plan.messages) == 1 and "don't know" in user
    assert user.endswith("Question: What is alpha?\nAnswer in as few words as possible.\n"
                         "Helpful Answer:")
    engine.context_window = 4096
    assert len(build_prompt("q", hits, engine, 128).used) == 3
    # A request, not a question, is answered at the length it asks for
    essay = build_prompt("Write a long essay about alpha.", hits, engine, 128)
    assert essay.messages[-1]["content"].endswith(
        "Question: Write a long essay about alpha.\nHelpful Answer:")
    # Asked for brevity, or asked who wrote it, the 0.5B named one author of four
    authors = build_prompt("Who wrote the alpha paper?", hits, engine, 128)
    assert authors.messages[-1]["content"].endswith(
        "Question: Who are the authors of the alpha paper?\nHelpful Answer:")
    # ... and wrote an acronym back for what it stands for ("Bert")
    for question in ("What does BERT stand for?", "Which acronym is ALPHA?"):
        plain = build_prompt(question, hits, engine, 128).messages[-1]["content"]
        assert plain.endswith(f"Question: {question}\nHelpful Answer:")


SECTION = "3.1 Pre-training BERT"


def chunk_row(chunk: int, text: str, page: int = 1, start: int | None = None,
              section: str = SECTION) -> dict:
    start = chunk * 1000 if start is None else start  # apart: no overlap
    return {"doc_id": "doc", "file": "paper.pdf", "chunk": chunk, "page": page, "start": start,
            "end": start + len(text), "text": text, "section": section}


def hit_at(rank: int, chunk: int, text: str) -> Hit:
    row = chunk_row(chunk, text)
    return Hit(rank=rank, score=1 / rank, doc="paper.pdf", page=1, chunk_id=f"c{chunk}",
               text=text, retriever="dense", doc_id="doc", chunk=chunk, start=row["start"],
               end=row["end"], section=SECTION)


def prompt_tokens(engine, plan) -> int:
    return sum(engine.count_tokens(m["content"]) for m in plan.messages)


def test_window_merges_neighbours_without_repeating_text(engine):
    engine.context_window = 4096
    # Chunk 5 is the hit; 4 and 6 overlap it by a few characters, as chunks cut inside a
    # paragraph do; chunk 7 is on the next page.
    nearby = {("doc", 4): chunk_row(4, "Alpha one two. Overlap here", start=0),
              ("doc", 6): chunk_row(6, "tail words. Gamma six.", start=60),
              ("doc", 7): chunk_row(7, "Delta seven on a new page.", page=2, start=0)}
    hit = hit_at(1, 5, "Overlap here and beta five, tail words.")
    hit.start, hit.end = 15, 15 + len(hit.text)
    nearby[("doc", 6)]["start"] = hit.end - len("tail words.")
    plan = build_prompt("What is beta?", [hit], engine, 128, nearby, window=2)
    user = plan.messages[-1]["content"]
    assert ("Passage 1 (paper.pdf, pages 1–2 · 3.1 Pre-training BERT):\nAlpha one two. Overlap here and "
            "beta five, tail words. Gamma six.\n\nDelta seven on a new page.") in user
    assert user.count("Overlap here") == 1 and user.count("tail words") == 1
    # and the panel shows what the neighbours share with the hit in the hit alone
    assert plan.windows[1] == {"before": "Alpha one two.",
                               "after": "Gamma six.\n\nDelta seven on a new page."}


def test_window_fills_the_budget_best_hits_first(engine):
    words = lambda tag: " ".join(f"{tag}{i}" for i in range(40))  # noqa: E731
    hits = [hit_at(1, 10, words("a")), hit_at(2, 20, words("b")), hit_at(3, 11, words("c"))]
    nearby = {("doc", i): chunk_row(i, words(f"n{i}x")) for i in (8, 9, 12, 13, 18, 19, 21, 22)}
    engine.context_window = 4096
    wide = build_prompt("q?", hits, engine, 128, nearby, window=2)
    user = wide.messages[-1]["content"]
    # Hits 1 and 3 are chunks 10 and 11: one passage 8–13 led by [1]; hit 2 has its own.
    assert user.index("Passage 1 (paper.pdf") < user.index("Passage 2 (paper.pdf")
    assert "Passage 3" not in user and [h.rank for h in wide.used] == [1, 2, 3]
    assert all(user.count(words(f"n{i}x")) == 1 for i in (8, 9, 12, 13, 18, 19, 21, 22))
    # Beside the answer, a hit's surroundings stop at the next hit, which shows as itself
    assert wide.windows[1] == {"before": words("n8x") + "\n" + words("n9x"), "after": ""}
    assert wide.windows[3] == {"before": "", "after": words("n12x") + "\n" + words("n13x")}

    # With room for one more chunk and a half, the hits come first, then the nearest
    # neighbour of the best hit; nothing farther, nothing for the lesser hits.
    base = prompt_tokens(engine, build_prompt("q?", hits, engine, 128))
    budget = base + int(1.5 * engine.count_tokens(words("n9x")))
    engine.context_window = budget + 128 + TEMPLATE_OVERHEAD_TOKENS
    tight = build_prompt("q?", hits, engine, 128, nearby, window=2)
    assert prompt_tokens(engine, tight) <= budget and [h.rank for h in tight.used] == [1, 2, 3]
    text = tight.messages[-1]["content"]
    assert [i for i in (8, 9, 12, 13, 18, 19, 21, 22) if words(f"n{i}x") in text] == [9]
    engine.context_window = 4096

    # A budget for the neighbours' text: two chunks' worth, taken ring by ring, best hits
    # first (hit 1's other side is hit 3), the chunk after a hit before the one before it,
    # whatever room the model's window has.
    two = 2 * engine.count_tokens(words("n9x"))
    capped = build_prompt("q?", hits, engine, 128, nearby, window=2, window_tokens=two)
    text = capped.messages[-1]["content"]
    assert [i for i in (8, 9, 12, 13, 18, 19, 21, 22) if words(f"n{i}x") in text] == [9, 21]
    assert [h.rank for h in capped.used] == [1, 2, 3]
    assert build_prompt("q?", hits, engine, 128, nearby, window=2,
                        window_tokens=two - 1).windows[2] == {"before": "", "after": ""}


def test_window_keeps_to_the_hits_section(engine):
    """The chunk before a hit that opens a section ends another section: not read with it."""
    engine.context_window = 4096
    hit = hit_at(1, 5, "3.1 Pre-training BERT. We pre-train BERT using two unsupervised tasks.")
    nearby = {("doc", 4): chunk_row(4, "Transfer from machine translation.",
                                    section="2.3 Transfer Learning"),
              ("doc", 6): chunk_row(6, "Task #1: Masked LM.")}
    plan = build_prompt("What are the tasks?", [hit], engine, 128, nearby, window=1)
    assert plan.windows[1] == {"before": "", "after": "Task #1: Masked LM."}
    assert "machine translation" not in plan.messages[-1]["content"]


@pytest.mark.slow
def test_bert_pre_training_tasks_are_in_the_window(engine, studio_env):
    from core.rag.answers import RagTurn
    from core.rag.ingest import ingest_files
    from core.rag.retrieval import RetrievalOptions
    from tests.conftest import shared

    settings = load_settings()
    [result] = ingest_files(settings, [shared("papers", "1810.04805_BERT.pdf")], "bert")
    assert result.status == "ok"
    turn = RagTurn(settings, "bert", "What are the two pre-training tasks of BERT?", engine,
                   RetrievalOptions(k=5, window=1))
    context = turn.plan.messages[-1]["content"].lower()
    assert "masked lm" in context and "next sentence prediction" in context
    assert all(h.title.startswith("BERT: Pre-training") and h.section for h in turn.search.hits)


def test_a_list_that_a_hit_opens_is_read_on_to_its_later_items(engine):
    """BERT's 3.1 opens "Task #1: Masked LM" in one chunk and "Task #2: Next Sentence
    Prediction" five chunks later: the later item's first sentence follows the hit."""
    engine.context_window = 4096
    hit = hit_at(1, 5, "We pre-train BERT using two unsupervised tasks.\n\nTask #1: Masked LM "
                       "Intuitively, a deep model is more powerful than")
    nearby = {("doc", 6): chunk_row(6, "a shallow one. More on masking."),
              ("doc", 8): chunk_row(8, "Table 2: Results on GLUE."),
              ("doc", 9): chunk_row(9, "The end of masking.\n\nTask #2: Next Sentence Prediction "
                                       "(NSP) Many tasks rely on sentence pairs. More words here."),
              ("doc", 11): chunk_row(11, "Task #3: Another section's item.", section="3.2 Fine-tuning")}
    plan = build_prompt("What are the two tasks?", [hit], engine, 128, nearby, window=0)
    user = plan.messages[-1]["content"]
    # (each item's run-in heading on a line of its own)
    assert ("Task #1: Masked LM\nIntuitively, a deep model is more powerful than\n[…]\n"
            "Task #2: Next Sentence Prediction (NSP)\nMany tasks rely on sentence pairs.\n\n"
            "Question:") in user
    for left_out in ("More on masking", "Table 2", "More words here", "Task #3", "end of masking"):
        assert left_out not in user
    assert plan.windows[1]["after"].startswith("[…]\nTask #2: Next Sentence Prediction")
    # and with the window: the neighbour, then the skip
    plan = build_prompt("What are the two tasks?", [hit], engine, 128, nearby, window=1)
    assert "more powerful than\na shallow one. More on masking.\n[…]\nTask #2:" in \
        plan.messages[-1]["content"]


def test_a_list_items_run_in_heading_is_set_apart_from_its_sentence():
    assert with_run_in_headings_apart("Intro.\n\nTask #1: Masked LM Intuitively, it is") == \
        "Intro.\n\nTask #1: Masked LM\nIntuitively, it is"
    assert with_run_in_headings_apart("Task #2: Next Sentence Prediction (NSP) Many tasks") == \
        "Task #2: Next Sentence Prediction (NSP)\nMany tasks"
    for unchanged in ("Tip 1: Decide whether deep learning is right",  # a sentence, no heading
                      "Table 1: Results on GLUE are", "Task #3: Masked"):
        assert with_run_in_headings_apart(unchanged) == unchanged


def test_list_items_are_numbered_paragraph_openings_not_captions():
    assert list_items("Intro.\n\nTask #1: Masked LM\nStep 2. Mix\nTable 1: GLUE\nFigure 3. A") == \
        {"Task": {1}, "Step": {2}}
    assert list_items("as in Task #1: inside a sentence") == {}


def test_a_question_for_a_number_of_things_is_not_asked_for_brevity():
    assert asks_for_several("What are the two pre-training tasks of BERT?")
    assert asks_for_several("Who were the two abbots at Fécamp Abbey?")
    assert not asks_for_several("How many layers does BERT-large have?")
    assert not asks_for_several("What is in Table 2?")
    assert not wants_brevity("What are the three measures of bias?")
    assert wants_brevity("What is the salary?")
