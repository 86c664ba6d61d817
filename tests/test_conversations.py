"""Saved conversations and follow-up questions."""

import threading

import pytest

from core.rag.answers import Answer, cited_documents
from core.rag.conversations import ConversationError, ConversationStore, Turn, history
from core.rag.export import to_markdown
from core.rag.followup import about_the_answer, clean_query, needs_rewrite, rewrite, with_previous
from core.rag.front_matter import asks_about_document


def answer(text: str, **more) -> dict:
    return {"answer": text, "sources": [], "cited": [], **more}


def test_a_conversation_is_kept_across_stores_and_named_by_its_first_question(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    chat = store.create("papers")
    source = {"rank": 1, "score": 0.8, "doc": "bert.pdf", "page": 4, "chunk_id": "x:1",
              "text": "Masked LM ...", "retriever": "both", "start": 10, "end": 500,
              "relevance": 0.9, "match": "strong"}
    store.add_turn(chat.id, Turn("What are the two pre-training tasks of BERT?", answer(
        "Masked LM and next sentence prediction [1].", sources=[source], cited=[1],
        timings={"ttft_ms": 1200}, windows={"1": {"before": "", "after": "Task #2"}})))
    store.add_turn(chat.id, Turn("Which of them does RoBERTa drop?", answer(
        "NSP [2].", searched_for="Which BERT pre-training task does RoBERTa drop?")))
    other = store.create("contracts")
    again = ConversationStore(tmp_path / "c.sqlite3")  # a restart
    loaded = again.get(chat.id)
    assert loaded.title == "What are the two pre-training tasks of BERT?"
    assert [t.question for t in loaded.turns] == ["What are the two pre-training tasks of BERT?",
                                                  "Which of them does RoBERTa drop?"]
    first = Answer.from_json(loaded.turns[0].question, loaded.turns[0].answer)
    assert first.sources[0].page == 4 and first.sources[0].match == "strong"
    assert first.cited == [1] and first.windows == {1: {"before": "", "after": "Task #2"}}
    assert loaded.turns[1].answer["searched_for"].startswith("Which BERT")
    assert [m["role"] for m in history(loaded)] == ["user", "assistant"] * 2
    assert [c.id for c in again.list("papers")] == [chat.id] and again.list("papers")[0].size == 2
    assert {c.id for c in again.list()} == {chat.id, other.id}
    markdown = to_markdown("papers", [Answer.from_json(t.question, t.answer)
                                      for t in loaded.turns])
    assert "## Q: Which of them does RoBERTa drop?" in markdown and "bert.pdf, page 4" in markdown
    # exported under its title, each question with what was searched for it
    titled = to_markdown("papers", [Answer.from_json(t.question, t.answer) for t in loaded.turns],
                         "BERT and RoBERTa")
    assert titled.startswith("# BERT and RoBERTa\n") and "*searched for: Which BERT" in titled
    again.rename(chat.id, "BERT and RoBERTa")
    assert again.get(chat.id).title == "BERT and RoBERTa"
    again.delete(chat.id)
    with pytest.raises(ConversationError, match="no conversation"):
        again.get(chat.id)
    with pytest.raises(ConversationError, match="no conversation"):
        again.add_turn(chat.id, Turn("q", answer("a")))


def test_two_writers_at_once_lose_no_turn(tmp_path):
    path = tmp_path / "c.sqlite3"
    chat = ConversationStore(path).create("papers")

    def tab(name: str) -> None:
        store = ConversationStore(path)  # each tab has its own connection, as pages do
        for i in range(15):
            store.add_turn(chat.id, Turn(f"{name} {i}", answer("text")))

    tabs = [threading.Thread(target=tab, args=(name,)) for name in ("left", "right")]
    for t in tabs:
        t.start()
    for t in tabs:
        t.join()
    questions = [t.question for t in ConversationStore(path).get(chat.id).turns]
    assert len(questions) == 30 and len(set(questions)) == 30
    for name in ("left", "right"):  # each tab's turns in its own order
        assert [q for q in questions if q.startswith(name)] == [f"{name} {i}" for i in range(15)]


def test_which_questions_lean_on_the_conversation():
    earlier = [{"role": "user", "content": "What are the two pre-training tasks of BERT?"},
               {"role": "assistant", "content": "MLM and NSP."}]
    assert not needs_rewrite("Which of them does RoBERTa drop?", [])  # nothing to lean on
    assert needs_rewrite("Which of them does RoBERTa drop?", earlier)
    assert needs_rewrite("And in GPT-2?", earlier)
    assert needs_rewrite("The second one?", earlier)
    assert needs_rewrite("How is the second one trained?", earlier)
    assert not needs_rewrite("What is one of the Normans' major exports?", earlier)
    assert not needs_rewrite("What does the discriminator estimate?", earlier)
    assert not needs_rewrite("What is LoRA?", earlier)  # short, but it names what it asks of
    assert not needs_rewrite("How many layers does the BERT-large encoder have in total?",
                             earlier)
    # a name in capitals is no pronoun; a question all in capitals still leans
    assert not needs_rewrite("Which law governs the agreement between ITS and Comware?", earlier)
    assert needs_rewrite("WHICH LAW GOVERNS ITS USE?", earlier)
    assert clean_query('Query: "BERT pre-training task dropped by RoBERTa"\nIt is NSP.') == \
        "BERT pre-training task dropped by RoBERTa"
    assert clean_query(" ".join(["word"] * 80)) == ""  # an answer, not a query
    assert clean_query("Masked language modeling is useful for tasks like text summarization, "
                       "translation, and question answering.") == ""  # a statement
    assert clean_query("Masked LM [1]") == "Masked LM"
    assert clean_query("GAN paper by Ian Goodfellow," + " Ian Goodfellow," * 12) == ""
    assert clean_query("Why is masked language modeling useful?") == \
        "Why is masked language modeling useful?"


def test_a_request_about_the_previous_answer_is_told_from_a_question_about_the_documents():
    for request in ("Can you say that in a full sentence?", "Rephrase your answer",
                    "Please put your last answer in simpler words", "Translate that into French",
                    "Can you explain it more simply?", "Summarize it in one sentence"):
        assert about_the_answer(request), request
    for question in ("What does the paper say about it?", "Summarize BERT in one sentence",
                     "Who wrote it?", "Why does it matter?", "What is the answer to life?"):
        assert not about_the_answer(question), question
    earlier = [{"role": "user", "content": "What is QLoRA?"},
               {"role": "assistant", "content": "A way to finetune 4-bit LLMs. [1]"},
               {"role": "user", "content": "Who wrote it?"},
               {"role": "assistant", "content": "Tim Dettmers [1]"}]
    # searched as the answer was, without the model and without the request's own words
    assert rewrite(Says("full sentence"), "Can you say that in a full sentence?", earlier) == \
        "What is QLoRA? Who wrote it?"


class Says:
    """A chat engine that replies with a given text: the rewrites a small model gives now and
    then, which cannot be provoked on demand."""

    def __init__(self, reply: str):
        self.reply = reply

    def stream(self, messages, max_new_tokens, stop=None):
        return iter([self.reply])


def test_a_rewrite_that_resolves_nothing_searches_both_questions():
    earlier = [{"role": "user", "content": "What are the two pre-training tasks of BERT?"},
               {"role": "assistant", "content": "Sequence-level and token-level tasks. [1]"}]
    follow_up = "Which of them does RoBERTa drop?"
    assert rewrite(Says("RoBERTa"), follow_up, earlier) == \
        "What are the two pre-training tasks of BERT? Which of them does RoBERTa drop?"
    assert rewrite(Says("Which BERT pre-training task does RoBERTa drop?"), follow_up,
                   earlier) == "Which BERT pre-training task does RoBERTa drop?"
    assert rewrite(Says(" ".join(["word"] * 80)), follow_up, earlier).startswith("What are")


def test_what_about_a_thing_is_searched_with_the_earlier_questions_not_the_answers():
    earlier = [{"role": "user", "content": "What does it recommend about baselines?"},
               {"role": "assistant", "content": "Use random seeds for baselines. [1]"}]
    wrong = Says("random seeds, baseline, hyperparameters")  # from the earlier (wrong) answer
    assert rewrite(wrong, "And what about hyperparameters?", earlier) == \
        "What does it recommend about baselines? And what about hyperparameters?"
    # within the documents the conversation is about, the question alone
    assert rewrite(wrong, "And what about hyperparameters?", earlier, scoped=True) == \
        "And what about hyperparameters?"
    # what it asks about points back itself: the model says what
    assert rewrite(Says("the Transformer's encoder"), "What about its encoder?", earlier) == \
        "the Transformer's encoder"


def test_a_rewrite_keeps_what_the_question_asks_and_is_never_an_earlier_answer():
    earlier = [{"role": "user", "content": "What is QLoRA?"},
               {"role": "assistant", "content": "QLoRA finetunes 4-bit quantized LLMs. [1]"}]
    # "it" named, what is asked of it dropped: the two questions are searched, which still ask
    # for the authors
    query = rewrite(Says("QLoRA [1]"), "Who wrote it?", earlier)
    assert query == "What is QLoRA? Who wrote it?" and asks_about_document(query)
    assert rewrite(Says("Who wrote QLoRA?"), "Who wrote it?", earlier) == "Who wrote QLoRA?"
    # a paraphrase is a question, kept with what it drops of the question
    assert rewrite(Says("Why is QLoRA important?"), "Why does it matter?", earlier) == \
        "Why is QLoRA important? matter"
    assert rewrite(Says("QLoRA layers"), "How many layers does its encoder have?", earlier) == \
        "QLoRA layers encoder"
    assert rewrite(Says("QLoRA BLEU"), "What BLEU score does it reach on English-to-German?",
                   earlier) == "QLoRA BLEU score reach English-to-German"
    # a number the question lacks is an earlier answer's (or one made up): not a query
    assert rewrite(Says("QLoRA reduces memory by approximately 10%"),
                   "By how much does it reduce memory?", earlier) == \
        "What is QLoRA? By how much does it reduce memory?"
    # an earlier answer given back is no query: the two questions are searched instead
    for reply in ("QLoRA finetunes 4-bit quantized LLMs", "QLoRA finetunes 4-bit quantized."):
        assert rewrite(Says(reply), "Who wrote that paper?", earlier) == \
            "What is QLoRA? Who wrote that paper?"
    # the questions searched reach back to one that stands alone
    earlier += [{"role": "user", "content": "Who wrote that paper?"},
                {"role": "assistant", "content": "Tim Dettmers [1]"}]
    assert rewrite(Says("Tim Dettmers"), "How is it trained?", earlier) == \
        "What is QLoRA? Who wrote that paper? How is it trained?"
    # where the documents the conversation is about are searched first, they say what "it" is:
    # the question alone, else with the one before it
    assert rewrite(Says("Tim Dettmers"), "How is it trained?", earlier, scoped=True) == \
        "How is it trained?"
    assert with_previous("How is it trained?", earlier) == \
        "Who wrote that paper? How is it trained?"


def test_the_documents_a_follow_up_is_searched_in_first_are_those_the_last_answer_cites():
    sources = [{"rank": 1, "doc_id": "a"}, {"rank": 2, "doc_id": "b"}, {"rank": 3, "doc_id": "a"}]
    answered = {"role": "assistant", "content": "Adam [1][3]",
                "answer": {"sources": sources, "cited": [1, 3]}}
    assert cited_documents(answered) == ("a",)
    refused = {**answered, "answer": {"sources": sources, "cited": []}}
    assert cited_documents(refused) == ()
    assert cited_documents({"role": "assistant", "content": "Adam"}) == ()  # its text alone


@pytest.mark.slow
def test_the_default_model_rewrites_a_follow_up_into_a_standalone_query(studio_env):
    from core.rag.llm import get_engine
    from core.settings import load_settings

    engine = get_engine(load_settings())
    earlier = [{"role": "user", "content": "What are the two pre-training tasks of BERT?"},
               {"role": "assistant", "content": "BERT is pre-trained with a masked language "
                                                "model (MLM) and next sentence prediction (NSP) "
                                                "[1]."}]
    query = rewrite(engine, "Which of them does RoBERTa drop?", earlier)
    assert query != "Which of them does RoBERTa drop?"
    assert "roberta" in query.lower()
    assert any(w in query.lower() for w in ("bert", "pre-train", "pretrain", "mlm", "nsp",
                                           "masked", "next sentence"))


def test_the_cli_lists_shows_and_deletes_conversations(studio_env):
    import json
    import subprocess
    import sys

    from core.rag.conversations import conversation_store
    from core.settings import PROJECT_ROOT, load_settings

    store = conversation_store(load_settings())
    chat = store.create("papers")
    store.add_turn(chat.id, Turn("What is LoRA?", answer("A low-rank update [1].")))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "core", "conversations", *args],
                              capture_output=True, text=True, cwd=PROJECT_ROOT)

    listed = [json.loads(line) for line in cli("list", "--json").stdout.splitlines()]
    assert listed == [{"id": chat.id, "collection": "papers", "title": "What is LoRA?",
                       "turns": 1, "updated": listed[0]["updated"]}]
    assert "A low-rank update [1]." in cli("show", chat.id).stdout
    assert cli("delete", chat.id).returncode == 0
    missing = cli("show", chat.id)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no conversation")
    assert cli("list", "--collection", "papers").stdout == ""
