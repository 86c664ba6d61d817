"""Grounded answers (issue 13, items 4, 5, 7): citation marks, calibrated relevance, refusal of
questions the documents do not answer, and the batch CLI."""

import json
import os
import re
import subprocess
import sys
import threading

import pytest

from core.cli.rag.chat import read_questions
from core.errors import InputError
from core.rag import relevance
from core.rag.citations import (
    REFUSAL,
    citation_marks,
    cited_ranks,
    holding_numbers,
    is_refusal,
    stream_marked,
    with_marks,
)
from core.rag.hits import Hit
from core.rag.prompting import echoes
from core.settings import PROJECT_ROOT, load_settings


def hit(rank: int) -> Hit:
    return Hit(rank=rank, score=0.9, doc="paper.pdf", page=1, chunk_id=f"c{rank}", text="t",
               retriever="both", doc_id="d")


def test_citation_marks_in_every_written_form():
    assert citation_marks("BERT uses MLM [1][3] and NSP [2, 4]; see [ 5 ] or [x].") == [1, 2, 3, 4]
    assert citation_marks("No marks.") == []


def test_only_marks_of_passages_given_are_valid():
    used = [hit(1), hit(2)]
    assert cited_ranks("It is [2] and [1, 7] and [9].", used) == [1, 2]
    assert cited_ranks("It is [9].", used) == []


class ScriptedModel:
    """Writes `first` as its answer's first sentence and then, for every later call, `then`:
    the degenerate run a small model can fall into, which no real model writes on demand."""

    def __init__(self, first: list[str], then: list[str]):
        self.first, self.then = first, then

    def continue_reply(self, messages, reply, budget, stop, stop_at=()):
        yield from (self.then if reply else self.first)[:budget]

    def choose(self, messages, reply, choices):
        return choices[0]


def marked(model: ScriptedModel) -> str:
    return "".join(stream_marked(model, [], {1: "t", 2: "t"}, 200, threading.Event()))


def test_a_run_of_bare_marks_ends_the_answer():
    model = ScriptedModel(["Two", " models", ".", "\n"], ["[", "1", "]", "\n"] * 40)
    assert marked(model) == "Two models. [1]\n"


def test_marks_the_model_writes_itself_are_kept():
    assert marked(ScriptedModel(["Two", " models", ".", "\n"], ["[", "2", "]"])) == \
        "Two models. [1]\n[2]"
    assert marked(ScriptedModel(["Two", " models", ".", "\n"],
                                ["[", "2", "]", " Both", " train", "."])) == \
        "Two models. [1]\n[2] Both train."


def test_a_mark_the_model_writes_within_a_sentence_is_checked_against_the_passages():
    """The 1.5B marked "Jane Smith [2]" in a list, passage 2 being the form's signature block."""
    passages = {1: "Employee {Jane Smith} Employer {SuperCo, Inc.}",
                2: "Sincerely: Employer Signature: Name: Title: Date:",
                3: "Client {ClientCo, Inc.}"}

    def marked_by(pieces: list[str]) -> str:
        model = ScriptedModel(pieces, ["\n"])
        return "".join(stream_marked(model, [], passages, 200, threading.Event(),
                                     question="Who are the parties?"))

    # the one passage that clearly holds it replaces the model's choice
    assert marked_by(["The", " employee", " is", " Jane", " Smith", " [", "2", "]", " and",
                      " the", " employer", " SuperCo", "."]) == \
        "The employee is Jane Smith [1] and the employer SuperCo."
    # a mark it may carry is kept, as is the text of code ("x[0]" is no mark)
    assert marked_by(["Jane", " Smith", " [", "1", "]", " works", " there", "."]).startswith(
        "Jane Smith [1] works there.")
    assert marked_by(["Use", " x[0]", " first", "."]).startswith("Use x[0] first.")
    # its "]" and the full stop after it may come as one token
    assert marked_by(["SuperCo", " [", "1", "]", " and", " Jane", " Smith", " [", "2", "]."]) == \
        "SuperCo [1] and Jane Smith [1]."
    # a mark of no passage given, where none clearly holds the words, goes; the sentence's end
    # is then marked as any other's
    assert marked_by(["It", " is", " signed", " [", "7", "]", " today", "."]) == \
        "It is signed today. [1]"


def test_a_sentence_with_numbers_is_marked_only_with_a_passage_that_holds_them():
    passages = {1: "We report BERTBASE (L=12, H=768) and BERTLARGE (L=24, H=1024).",
                2: "Table 6: Ablation over BERT model size. #L = the number of layers.",
                3: "Pay {$123,456 per year}, from February 1, 2020."}
    assert holding_numbers("BERTLARGE has 24 layers.", passages) == [1]
    assert holding_numbers("The salary is $123,456 [2] per year.", passages) == [3]
    assert holding_numbers("It starts on February 1, 2020.", passages) == [3]
    assert holding_numbers("It has 48 layers.", passages) == [1, 2, 3]  # held by none
    assert holding_numbers("It is a Transformer.", passages) == [1, 2, 3]
    # a list's item numbers are not facts: the passage that numbers its own list is not chosen
    listed = {1: "Task #1: Masked LM … Task #2: Next Sentence Prediction (NSP)",
              2: "analogous to (1) sentence pairs in paraphrasing, (2) hypothesis-premise pairs"}
    assert holding_numbers("They are: 1. Masked LM 2. Next Sentence Prediction", listed) == [1, 2]
    assert holding_numbers("They are (1) MLM and (2) NSP.", listed) == [1, 2]
    # of two that hold the number, the one where it is given with the question's words
    stacks = {1: "Decoder: The decoder is also composed of a stack of N = 6 identical layers.",
              2: "Encoder: The encoder is composed of a stack of N = 6 identical layers. The "
                 "decoder inserts a third sub-layer.",
              3: "We trained for 6 days."}
    assert holding_numbers("6 layers", stacks, "How many layers does its encoder have?") == [2]
    assert holding_numbers("6 layers", stacks, "How many layers does it have?") == [1, 2]
    assert holding_numbers("6 layers", stacks) == [1, 2, 3]

    class Choosing(ScriptedModel):
        def choose(self, messages, reply, choices):
            self.offered = choices
            return choices[0]

    model = Choosing(["It", " has", " 24", " layers", "."], [])
    assert "".join(stream_marked(model, [], passages, 50, threading.Event())) == \
        "It has 24 layers. [1]"
    assert model.offered == ["1]"]


def test_a_reworded_answer_keeps_the_marks_of_the_answer_it_rewords():
    assert "".join(with_marks(iter(["BERT-base has ", "12 layers."]), [1, 2])) == \
        "BERT-base has 12 layers. [1][2]"
    assert "".join(with_marks(iter(["12 layers [2]."]), [1, 2])) == "12 layers [2]."
    assert "".join(with_marks(iter(["The documents do not say."]), [1])) == \
        "The documents do not say."


def test_refusals_are_recognised():
    assert is_refusal(REFUSAL) and is_refusal("I don’t know.")
    assert is_refusal("[1] The documents do not say.")
    assert not is_refusal("The documents say it is Paris [1].")


def test_off_topic_chunk_is_not_a_strong_match():
    # A chunk of the BERT paper for "What is the capital of Peru?": low cosine, no shared word.
    off_topic = relevance.relevance(cosine=0.12, coverage=0.0)
    assert off_topic < relevance.STRONG and relevance.label(off_topic) == "weak"
    assert not relevance.answerable([off_topic] * 5)
    # The same-topic chunk that holds every question word is, and answers.
    on_topic = relevance.relevance(cosine=0.75, coverage=1.0)
    assert relevance.label(on_topic) == "strong" and relevance.answerable([on_topic])


def test_relevance_grows_with_each_signal():
    for rate in (relevance.relevance, relevance.sentence_relevance):
        assert rate(0.6, 0.5) > rate(0.3, 0.5)
        assert rate(0.5, 0.8) > rate(0.5, 0.2)
        assert rate(0.12, 0.0) < relevance.ANSWERABLE_MIN  # off topic, either way


def test_questions_file_plain_lines_or_jsonl(tmp_path):
    plain = tmp_path / "q.txt"
    plain.write_text("What is BERT?\n\n  Who wrote it?  \n")
    assert read_questions(plain) == ["What is BERT?", "Who wrote it?"]
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"question": "What is BERT?", "id": 1}\n{"question": "Why?"}\n')
    assert read_questions(jsonl) == ["What is BERT?", "Why?"]
    jsonl.write_text('{"q": "no question field"}\n')
    with pytest.raises(InputError, match="line 1"):
        read_questions(jsonl)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(InputError, match="holds no question"):
        read_questions(tmp_path / "empty.txt")


def test_cli_search_questions_prints_one_json_per_question(studio_env, tmp_path):
    from core.rag import store
    from core.rag.chunking import chunk_pages
    from core.rag.embeddings import get_embedder

    settings = load_settings()
    embedder = get_embedder(settings)
    chroma = store.client(settings)
    collection = store.open_collection(chroma, "facts", embedder.model_name, 500, 50)
    for doc, text in [("cats", "Cats are small felines that purr and chase mice."),
                      ("rates", "The central bank raised interest rates to fight inflation.")]:
        chunks = chunk_pages([text], title=doc)
        store.replace_document(collection, doc, f"{doc}.txt", chunks,
                               embedder.embed([c.embedded_text for c in chunks]), 100)
    questions = tmp_path / "questions.txt"
    questions.write_text("Why did the bank raise rates?\nWhat do cats chase?\n")
    out = subprocess.run([sys.executable, "-m", "core", "search", "--questions", str(questions),
                          "--collection", "facts", "-k", "2"], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["question"] for r in rows] == ["Why did the bank raise rates?", "What do cats chase?"]
    assert [r["hits"][0]["doc"] for r in rows] == ["rates.txt", "cats.txt"]
    best = rows[1]["hits"][0]
    assert best["match"] in ("strong", "partial") and 0 < best["relevance"] < 1
    assert rows[1]["hits"][1]["match"] == "weak"  # the bank chunk, for a question about cats


def test_cli_needs_a_question_or_a_file(studio_env):
    out = subprocess.run([sys.executable, "-m", "core", "search", "--collection", "x"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 2 and "QUESTION or --questions" in out.stderr


@pytest.mark.slow
def test_default_model_refuses_what_the_bert_paper_does_not_say_and_names_its_authors(studio_env):
    from core.rag.answers import RagTurn
    from core.rag.ingest import ingest_files
    from core.rag.llm import get_engine
    from tests.conftest import shared

    settings = load_settings()
    ingest_files(settings, [shared("papers", "1810.04805_BERT.pdf")], "bert")
    engine = get_engine(settings)
    for question in ("What is the capital of Peru?", "Who funded this contract?"):
        turn = RagTurn(settings, "bert", question, engine, max_new_tokens=60)
        "".join(turn.stream())
        answer = turn.result()
        assert is_refusal(answer.text), (question, answer.text)
        assert answer.sources and not answer.cited  # closest passages shown, none cited
        assert all(h.match != "strong" for h in answer.sources)
    # The question the first version answered wrongly: Next Sentence Prediction is five chunks
    # after the hit that opens the list (core.rag.prompting.later_items)
    turn = RagTurn(settings, "bert", "What are the two pre-training tasks of BERT?", engine,
                   max_new_tokens=80)
    "".join(turn.stream())
    answer = turn.result()
    assert re.search(r"masked (lm|language model)", answer.text, re.I), answer.text
    assert re.search(r"next sentence prediction", answer.text, re.I), answer.text
    assert answer.cited and not answer.citations_inferred, answer.text
    assert all("Task #1: Masked LM" in h.text for h in answer.sources if h.rank in answer.cited)
    # Its title block matches "Who wrote…" weakly and is still the answer (core.rag.front_matter)
    turn = RagTurn(settings, "bert", "Who wrote the BERT paper?", engine, max_new_tokens=60)
    "".join(turn.stream())
    answer = turn.result()
    assert "Devlin" in answer.text and answer.cited == [1], answer.text
    assert answer.sources[0].chunk == 0 and answer.sources[0].match == "weak"
    # Asked for brevity, it wrote "Bert"
    turn = RagTurn(settings, "bert", "What does BERT stand for?", engine, max_new_tokens=60)
    "".join(turn.stream())
    assert "Bidirectional Encoder Representations" in turn.result().text, turn.result().text
    # The count is given to a symbol, "the number of layers … as L" then "(L=12, …)"; it had
    # "5 [1]", from "5 random restarts", and "the last 4 layers of BERT" ranked above it
    turn = RagTurn(settings, "bert", "How many layers does BERT have?", engine, max_new_tokens=40)
    "".join(turn.stream())
    answer = turn.result()
    assert re.search(r"\b(12|24)\b", answer.text), answer.text
    assert any("L=12" in h.text for h in answer.sources if h.rank in answer.cited), answer.text
    # Given the passages, a request about the previous answer got "Yes, I can explain it more
    # simply."; given the answer, it is reworded, its mark kept
    earlier = [{"role": "user", "content": "How many layers does BERT-base have?"},
               {"role": "assistant", "content": "12 [1]"}]
    turn = RagTurn(settings, "bert", "Can you say that in a full sentence?", engine,
                   max_new_tokens=40, history=earlier)
    "".join(turn.stream())
    answer = turn.result()
    assert re.search(r"\b12 layers\b", answer.text) and not answer.text.startswith("Yes"), \
        answer.text
    assert answer.cited == [1] and not answer.citations_inferred
    assert answer.rewording == "reworded" and not answer.restates_question
    # Read with its footnote marks, GAN's title block got two names of eight ("Pouget-Abadie*")
    ingest_files(settings, [shared("papers", "1406.2661_GAN.pdf")], "gan")
    turn = RagTurn(settings, "gan", "Who wrote the GAN paper?", engine, max_new_tokens=60)
    "".join(turn.stream())
    assert all(name in turn.result().text for name in ("Goodfellow", "Courville", "Bengio"))
    # Its title block gives each name with its affiliation: the 0.5B answered "Niki Parmar
    # Google Research", one of eight, until the names came as a list
    ingest_files(settings, [shared("papers", "1706.03762_Attention_is_all_you_need.pdf")], "gan")
    turn = RagTurn(settings, "gan", "Who wrote the Attention Is All You Need paper?", engine,
                   max_new_tokens=80)
    "".join(turn.stream())
    text = turn.result().text
    assert sum(name in text for name in ("Vaswani", "Shazeer", "Parmar", "Uszkoreit", "Jones",
                                         "Gomez", "Kaiser", "Polosukhin")) >= 6, text
    assert "Google" not in text, text
    # BERT's title says "Transformers"; the paper that introduces the Transformer is
    # Attention's, and its sentence that does goes with its title block (it got BERT's authors)
    ingest_files(settings, [shared("papers", "1706.03762_Attention_is_all_you_need.pdf")], "bert")
    turn = RagTurn(settings, "bert", "Who wrote the Transformer paper?", engine, max_new_tokens=80)
    "".join(turn.stream())
    answer = turn.result()
    assert all(name in answer.text for name in ("Vaswani", "Gomez", "Polosukhin")), answer.text
    assert "Devlin" not in answer.text and answer.cited, answer.text
    assert [(h.chunk, h.retriever) for h in answer.sources] == [(0, "front matter"),
                                                                (1, "introduction")]
    assert answer.sources[1].text.startswith("We propose a new simple network architecture, the "
                                             "Transformer,")
    # The affiliations come after the names: each one's is still read (BERT's references, which
    # cite Gomez, gave "University of California, Berkeley" before his title block was read)
    turn = RagTurn(settings, "bert", "Where does Aidan N. Gomez work?", engine, max_new_tokens=40)
    "".join(turn.stream())
    assert "Toronto" in turn.result().text, turn.result().text


@pytest.mark.slow
def test_an_answer_that_begins_to_copy_the_prompt_ends_there(studio_env):
    """Asked to, the real default model writes a passage's heading line as the prompt gives it;
    over QASPER it did so unasked, and the passage's text followed."""
    from core.rag.llm import get_engine

    asked = [{"role": "user", "content": "Copy these three lines exactly, nothing else:\nThe "
              "results were as follows:\nPassage 2 (Gender bias, page 1):\nWord embeddings."}]
    engine = get_engine(load_settings())
    assert "Passage 2 (" in "".join(engine.continue_reply(asked, "", 40))
    answer = "".join(stream_marked(engine, asked, {1: "", 2: ""}, 40, threading.Event(),
                                   echoes([hit(1), hit(2)])))
    assert answer.startswith("The results were as follows:") and "Passage" not in answer, answer
