"""AppTest for the Chat page with a tiny random model (real transformers streaming, real
retrieval over the sample paper in a real Chroma)."""

import re

import pytest
from streamlit.testing.v1 import AppTest

from core.rag.answer_notes import REWORDING_NOTE, UNCHANGED_NOTE
from core.rag.conversations import Turn, conversation_store
from core.rag.ingest import ingest_files
from core.rag.retrieval import DEFAULT_K, search
from core.settings import PROJECT_ROOT, load_settings
from tests.conftest import chat_page

pytestmark = pytest.mark.slow


def test_no_collection_points_to_documents(studio_env):
    at = chat_page()
    assert any(i.value.startswith("No collection yet: create one on the Documents page") for i in at.info)


def test_question_streams_an_answer_with_scored_sources(chat_env):
    at = chat_page()
    at.chat_input(key="question").set_value("How do I detect overfitting?").run()
    assert not at.exception
    captions = "\n".join(c.value for c in at.caption)
    assert "tokens/s" in captions and "retrieval" in captions and "(transformers)" in captions
    assert "Cites" in captions or "No source cited" in captions or "matched by similarity" in captions
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    texts = "\n".join(m.value for m in at.markdown)
    # each chunk under its document's title and page, the file name below
    assert "**[1]** Ten Quick Tips for Deep Learning in Biology · page " in texts
    assert any(c.value.startswith("deep\\-rules\\_manuscript\\.pdf") for c in at.caption)
    assert re.search(r":blue-badge\[found by (meaning|keywords|meaning and keywords)\]", texts)
    marks = [m.value for m in at.markdown if "match]" in m.value]
    assert len(marks) == DEFAULT_K and ":green-badge[strong match]" in marks[0]
    best = best_sentence_line()
    assert any(best in plain(m.value) for m in at.markdown)

    # A second question keeps the first; New starts an empty conversation, and the first one
    # is still there to open again.
    at.chat_input(key="question").set_value("Who wrote it?").run()
    assert len(at.chat_message) == 4
    next(b for b in at.button if b.label == "New").click().run()
    assert len(at.chat_message) == 0
    picker = next(s for s in at.selectbox if s.label == "Conversation")
    assert len(picker.options) == 2 and picker.value == "new"
    [first] = conversation_store(load_settings()).list("samples")
    assert first.title == "How do I detect overfitting?" and first.size == 2
    picker.set_value(first.id).run()
    assert len(at.chat_message) == 4
    # A reload (a new session with the same URL) opens the same conversation.
    again = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=180)
    again.query_params.update({"collection": "samples", "conversation": first.id})
    again.run()
    again.switch_page("app_pages/chat.py").run()
    assert len(again.chat_message) == 4 and not again.exception
    best = best_sentence_line()  # of "Who wrote it?": the paper's opening
    assert any(best in plain(m.value) for m in again.markdown)  # as it was, from the saved turn
    shown = "\n".join(m.value for m in again.markdown)  # said to be there as an opening
    assert "document's opening" in shown and "weak match" not in shown and "found by" not in shown


def test_asked_for_the_parties_the_documents_opening_and_end_are_read(chat_env):
    at = chat_page()
    at.chat_input(key="question").set_value("Who are the parties?").run()
    assert not at.exception
    shown = "\n".join(m.value for m in at.markdown)
    assert ":violet-badge[the document's opening]" in shown
    assert ":violet-badge[the document's end]" in shown
    assert "found by" not in shown and "match]" not in shown  # there for what they are


def test_asked_for_the_paper_that_introduces_a_name_its_sentence_is_shown_beside_the_opening(
        chat_env, tmp_path):
    paper = tmp_path / "parser.txt"
    filler = " ".join(["Parsing documents of every kind is hard for most readers."] * 12)
    paper.write_text("A Parser for Everything\n\nJane Doe, John Roe\n\n" + filler + "\n\nWe "
                     "propose a new parser, the Frobnicator, which reads every format. It is fast.")
    [result] = ingest_files(load_settings(), [paper], "samples")
    assert result.status == "ok" and result.chunks >= 2
    at = chat_page()
    at.chat_input(key="question").set_value("Who wrote the Frobnicator paper?").run()
    assert not at.exception
    shown = "\n".join(m.value for m in at.markdown)
    assert ":violet-badge[the document's opening]" in shown
    assert ":violet-badge[where the document introduces it]" in shown
    assert "which reads every format" in shown and "It is fast" not in shown  # the sentence alone


def parser_paper(folder) -> str:
    """A one-chunk document beside the sample paper; its doc id."""
    paper = folder / "parser.txt"
    paper.write_text("A Parser for Everything\n\nWe propose a new parser, the Frobnicator, which "
                     "reads every format.\n\nIt is trained with the Adam optimizer.")
    [result] = ingest_files(load_settings(), [paper], "samples")
    assert result.status == "ok"
    return result.doc_id


def test_a_question_that_names_a_document_says_it_was_searched_there_first(chat_env, tmp_path):
    parser_paper(tmp_path)
    at = chat_page()
    at.chat_input(key="question").set_value("Which optimizer trains the Frobnicator?").run()
    assert not at.exception
    assert "searched in A Parser for Everything first, which the question names" in [
        c.value for c in at.caption]
    shown = "\n".join(m.value for m in at.markdown)
    assert "with the Adam :orange-background[optimizer" in shown
    # its one chunk first, then the other document's, to make up the k asked for
    # a text file's chunks with no page number, which tells nothing in one long page
    assert "A Parser for Everything · page" not in shown
    assert "**[1]** A Parser for Everything" in shown and "**[3]** Ten Quick Tips" in shown
    at.chat_input(key="question").set_value("How can I tell that my model is overfitting?").run()
    assert sum("which the question names" in c.value for c in at.caption) == 1  # the first's


def test_a_follow_up_is_searched_first_in_the_document_the_conversation_is_about(chat_env,
                                                                                 tmp_path):
    doc_id = parser_paper(tmp_path)
    settings = load_settings()
    hits = search(settings, "samples", "Which optimizer trains the Frobnicator?").hits
    assert hits[0].doc_id == doc_id
    chats = conversation_store(settings)
    chat = chats.create("samples")
    # asked without its name (the question searched with the follow-up then names none)
    chats.add_turn(chat.id, Turn("Which optimizer is used?",
                                 {"answer": "Adam [1]", "sources": [h.to_json() for h in hits],
                                  "cited": [1], "timings": {"retrieval_ms": 5}}))
    at = chat_page()
    next(s for s in at.selectbox if s.label == "Conversation").set_value(chat.id).run()
    at.chat_input(key="question").set_value("Which formats does it read?").run()
    assert not at.exception
    assert any("searched in A Parser for Everything first, which the conversation is about" in c.value
               for c in at.caption)
    assert "**[1]** A Parser for Everything" in "\n".join(m.value for m in at.markdown)
    # What "the second one" is, the document does not say: the question before it does
    cited = {"answer": "PDF and HTML [1]", "sources": [h.to_json() for h in hits], "cited": [1],
             "timings": {"retrieval_ms": 5}}
    chat = chats.create("samples")
    for question in ("What is it trained with?", "Which formats does it read?"):
        chats.add_turn(chat.id, Turn(question, cited))
    at = chat_page()
    next(s for s in at.selectbox if s.label == "Conversation").set_value(chat.id).run()
    at.chat_input(key="question").set_value("How does the second one work?").run()
    assert not at.exception
    asked = chats.get(chat.id).turns[-1].answer
    assert asked["searched_for"] == "Which formats does it read? How does the second one work?"
    assert asked["searched_in_because"] == "discussed"


def test_asked_what_an_abbreviation_is_the_passage_that_spells_it_out_leads(chat_env):
    at = chat_page()
    at.chat_input(key="question").set_value("What is AutoML?").run()
    assert not at.exception
    first = next(m.value for m in at.markdown if m.value.startswith("**[1]**"))
    assert "found by" not in first  # its violet mark says why it is there
    shown = "\n".join(m.value for m in at.markdown)
    assert ":violet-badge[where it is spelled out]" in shown
    assert re.search(r"automated machine learning \S*\\\(AutoML\\\)", shown), shown


@pytest.mark.parametrize("question, badge, section", [
    # The sample paper has no abstract: its introduction says what it is about (retrieval led
    # with a reference on dropout, and the answer said the paper was about dropout)
    ("What is this paper about?", "what the document is about", "Introduction"),
    # "First" is in no heading: retrieval led with the acknowledgements
    ("What is the first tip?", "the part asked for", "appropriate for your problem"),
])
def test_passages_placed_for_what_they_are_say_so(chat_env, question, badge, section):
    at = chat_page()
    at.chat_input(key="question").set_value(question).run()
    assert not at.exception
    shown = "\n".join(m.value for m in at.markdown)
    assert shown.count(f":violet-badge[{badge}]") == 3
    captions = [c.value for c in at.caption if "deep\\-rules" in c.value]
    assert len(captions) == 3 and all(c.endswith(section) for c in captions), captions


def best_sentence_line() -> str:
    """The first line of the best-matching sentence of the latest answer's first chunk, as the
    panel shows it: in bold."""
    chats = conversation_store(load_settings())
    turn = chats.get(chats.list("samples")[-1].id).turns[-1]
    [hit] = [h for h in turn.answer["sources"] if h["rank"] == 1]
    start, end = hit["best_sentence"]
    return plain(f"**{hit['text'][start:end].split(chr(10))[0].strip()}**")


def plain(markdown: str) -> str:
    """Markdown without its escapes, word highlights and zero-width spaces."""
    return (markdown.replace(":orange-background[", "").replace("\\", "").replace("]", "")
            .replace("\u200b", ""))


def faded_words(at) -> int:
    """Words of the neighbouring text shown, faded, around the hits."""
    return sum(len(c.value.split()) - 1 for c in at.caption
               if c.value.startswith("… ") or c.value.endswith(" …"))


def test_the_neighbour_budget_bounds_the_text_read_around_the_hits(chat_env):
    at = chat_page()
    at.number_input(key="window-tokens").set_value(0).run()
    at.chat_input(key="question").set_value("How do I detect overfitting?").run()
    unbounded = faded_words(at)  # one neighbour each side, as much as the window holds
    next(b for b in at.button if b.label == "New").click().run()
    at.number_input(key="window-tokens").set_value(64).run()
    at.chat_input(key="question").set_value("How do I detect overfitting?").run()
    assert not at.exception
    assert faded_words(at) <= 64 < unbounded  # a word is at least one token


def test_compare_without_retrieval_shows_both_answers(chat_env):
    at = chat_page()
    at.toggle(key="compare").set_value(True).run()
    at.chat_input(key="question").set_value("How do I detect overfitting?").run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert "With your documents" in captions and "Same model, no retrieval" in captions
    # each answer has its own timing under its column; retrieval's is below both
    assert sum(c.startswith("first token") and "tokens/s" in c for c in captions) == 2
    assert any(c.startswith("retrieval") and "first token" not in c for c in captions)
    # what is said of the sources is under the answer that used them, not under both
    grounded = next(c for c in at.columns if c.caption and c.caption[0].value == "With your documents")
    alone = next(c for c in at.columns if c.caption and c.caption[0].value.startswith("Same model"))
    cites = ("Cites", "No source cited", "The model gave no citation marks")
    assert any(c.value.startswith(cites) for c in grounded.caption)
    assert not any(c.value.startswith(cites) for c in alone.caption)


def test_unreachable_endpoint_is_explained_and_history_kept(chat_env, monkeypatch):
    at = chat_page()
    at.chat_input(key="question").set_value("How do I detect overfitting?").run()
    monkeypatch.setenv("STUDIO_CHAT_BACKEND", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_MODEL", "nothing")
    at.chat_input(key="question").set_value("What is a validation set for?").run()
    errors = [e.value for e in at.error]
    assert any("could not reach the endpoint at http://127.0.0.1:9/v1" in e for e in errors)
    assert any("Your conversation is kept" in e for e in errors)
    assert at.chat_message[0].children  # the first exchange is still shown


def test_off_topic_question_is_refused_with_the_closest_passages(chat_env):
    at = chat_page()
    at.chat_input(key="question").set_value("What is the capital of Peru?").run()
    assert not at.exception
    assert any(m.value == "The documents do not say." for m in at.markdown)
    assert any("the model was not asked" in c.value for c in at.caption)
    [timing] = [c.value for c in at.caption if c.value.startswith("retrieval ")]
    assert "first token" not in timing and "tokens/s" not in timing  # no model timings
    assert timing.endswith("model not asked")  # not the name of a model that did not run
    marks = [m.value for m in at.markdown if "match]" in m.value]
    assert len(marks) == DEFAULT_K and all(":gray-badge[weak match]" in m for m in marks)


def test_chat_model_chooser_offers_installed_models_and_saves_the_choice(chat_env, monkeypatch):
    monkeypatch.delenv("STUDIO_CHAT_MODEL")
    at = chat_page()
    chooser = at.selectbox(key="chat-model-qwen2.5-coder-0.5b-instruct")
    assert not chooser.disabled
    assert {"qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"} <= set(chooser.options)
    assert "gemma-3-270m" not in chooser.options  # a LoRA base, not a chat model
    chooser.set_value("smollm2-135m-instruct").run()
    assert not at.exception
    assert load_settings().chat_model == "smollm2-135m-instruct"
    assert at.selectbox(key="chat-model-smollm2-135m-instruct").value == "smollm2-135m-instruct"


def test_chat_model_set_by_the_environment_cannot_be_changed_there(chat_env):
    at = chat_page()
    [chooser] = [s for s in at.selectbox if s.label == "Local chat model"]
    assert chooser.disabled


def test_another_conversation_opens_with_its_own_title_and_an_unticked_delete(chat_env):
    chats = conversation_store(load_settings())
    for question in ("What is overfitting?", "What is a test set?"):
        chat = chats.create("samples")
        chats.add_turn(chat.id, Turn(question, {"answer": "Something. [1]", "sources": [],
                                                "cited": [1], "timings": {"retrieval_ms": 5}}))
    by_title = {c.title: c for c in chats.list("samples")}
    first, second = by_title["What is overfitting?"], by_title["What is a test set?"]
    at = chat_page()
    picker = next(s for s in at.selectbox if s.label == "Conversation")
    picker.set_value(first.id).run()
    at.checkbox(key=f"delete-conversation-sure-{first.id}").check().run()
    next(s for s in at.selectbox if s.label == "Conversation").set_value(second.id).run()
    assert not at.exception
    assert at.text_input(key=f"conversation-title-{second.id}").value == "What is a test set?"
    assert not at.checkbox(key=f"delete-conversation-sure-{second.id}").value
    assert next(b for b in at.button if b.label == "Delete").disabled
    # Rename is never disabled by the title's box: in a browser typed text arrives with the
    # click itself, and a disabled button swallowed that click
    rename = next(b for b in at.button if b.label == "Rename")
    assert not rename.disabled
    at.text_input(key=f"conversation-title-{second.id}").set_value("Test sets")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert not at.exception and chats.get(second.id).title == "Test sets"


def test_an_answers_caveats_are_shown_beside_it(chat_env):
    chats = conversation_store(load_settings())
    chat = chats.create("samples")
    for question, text, cited, checks in (
            ("How many layers does BERT have?", "5 [4]", 4, {"other_counts": ["5"]}),
            ("How many attention heads does BERT have?", "16 [5]", 5, {"other_amounts": ["12"]}),
            ("Which word embeddings are analysed?", "Word embeddings [1]", 1,
             {"restates_question": True}),
            ("How large is the raw corpus?", "1,000,000 sentences [2]", 2,
             {"unread_numbers": ["1,000,000"], "only_weak_matches": True}),
            ("What is overfitting?", "Fitting noise in the training set. [3]", 3, {}),
            ("Say that more simply", "Fitting noise in the training set. [3]", 3,
             {"rewording": "unchanged", "searched_for": "What is overfitting?"})):
        chats.add_turn(chat.id, Turn(question, {"answer": text, "sources": [], "cited": [cited],
                                                "timings": {"retrieval_ms": 5}, **checks}))
    at = chat_page()
    next(s for s in at.selectbox if s.label == "Conversation").set_value(chat.id).run()
    assert not at.exception
    captions = [c.value for c in at.caption]
    restated = [c for c in captions if "only repeats the question" in c]
    numbers = [c for c in captions if "none of the passages the model read holds" in c]
    weak = [c for c in captions if "only a weak match" in c]
    # one note each, beside its own answer (above its "Cites [n]."), none beside the third
    assert len(restated) == 1 and len(numbers) == 1 and "gives 1,000,000, which" in numbers[0]
    assert len(weak) == 1
    [counted] = [c for c in captions if "do not give as a count of what the question" in c]
    assert "The answer gives 5, which" in counted and captions.index(counted) \
        < captions.index("Cites [4].")
    [also] = [c for c in captions if "also gives 12 attention heads" in c]
    assert captions.index("Cites [4].") < captions.index(also) < captions.index("Cites [5].")
    # a rewording says that nothing was searched, and that the model changed nothing
    [unchanged] = [c for c in captions if UNCHANGED_NOTE.rstrip(".") in c]
    assert captions.index("Cites [3].") < captions.index(REWORDING_NOTE) < captions.index(
        unchanged)
    assert not [c for c in captions if c.startswith("searched for:")]
    # the panel beside them says whose chunks it shows: the latest question's
    assert "For the latest question: Say that more simply" in captions
    assert (captions.index(restated[0]) < captions.index("Cites [1].")
            < captions.index(weak[0]) < captions.index(numbers[0]) < captions.index("Cites [2].")
            < captions.index("Cites [3]."))


def test_new_opens_an_empty_conversation_beside_another_of_the_same_title(chat_env):
    """A selectbox finds its choice by label: of two conversations titled alike, "New" from
    one opened the other."""
    chats = conversation_store(load_settings())
    for _ in range(2):
        chat = chats.create("samples")
        chats.add_turn(chat.id, Turn("What is overfitting?", {
            "answer": "Something. [1]", "sources": [], "cited": [1], "timings": {"retrieval_ms": 5}}))
    at = chat_page()
    picker = next(s for s in at.selectbox if s.label == "Conversation")
    assert len(set(picker.options)) == 3  # as shown: "… · 1 turn", "… · 1 turn (2)"
    for chat in chats.list("samples"):
        next(s for s in at.selectbox if s.label == "Conversation").set_value(chat.id).run()
        assert len(at.chat_message) == 2
        next(b for b in at.button if b.label == "New").click().run()
        assert len(at.chat_message) == 0 and not at.exception
        assert next(s for s in at.selectbox if s.label == "Conversation").value == "new"
