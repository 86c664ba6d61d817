"""AppTest for the Chat page's sources: each passage and citation opened in its page, and
what the match marks and bold sentences say (tiny random chat model, real retrieval)."""

import pytest

from core.rag.conversations import conversation_store
from core.rag.ingest import ingest_files
from core.samples import SAMPLE_PAPER
from core.settings import load_settings
from tests.conftest import chat_page, shared
from tests.tiny import tiny_causal_lm

pytestmark = pytest.mark.slow


@pytest.fixture
def kept_paper_env(studio_env, tmp_path, monkeypatch):
    """As chat_env, the sample paper kept in the collection's upload folder as the Documents
    page keeps it, so its pages can be rendered."""
    from shutil import copyfile

    from core.uploads import upload_folder

    model = tiny_causal_lm(tmp_path / "tiny-chat")
    monkeypatch.setenv("STUDIO_CHAT_MODEL", str(model))
    kept = upload_folder(load_settings().data_dir, "samples") / SAMPLE_PAPER.name
    kept.parent.mkdir(parents=True)
    copyfile(SAMPLE_PAPER, kept)
    [result] = ingest_files(load_settings(), [kept], "samples")
    assert result.status == "ok"
    return studio_env


def test_a_source_and_a_citation_open_in_their_page(kept_paper_env):
    at = chat_page()
    at.chat_input(key="question").set_value("How do I detect overfitting?").run()
    at.button(key="view-1").click().run()
    assert not at.exception
    [image] = at.get("image")
    assert "highlighted" in image.proto.imgs[0].alt
    [where] = [m.value for m in at.markdown if " of " in m.value and "· page" in m.value]
    page = int(where.split("· page ")[1].split()[0])
    # AppTest reruns the whole page where a browser reruns the dialog alone (the browser
    # test sees the next page); here the click only turns the page to be shown.
    at.button(key="page-next").click().run()
    assert not at.exception and at.session_state["page-shown"] == page + 1
    cites = [b for b in at.button if (b.key or "").startswith("cite-0-")]
    if cites:  # the tiny model may cite nothing
        cites[0].click().run()
        assert not at.exception and "highlighted" in at.get("image")[0].proto.imgs[0].alt


def test_a_source_whose_original_is_not_kept_opens_as_text(chat_env):
    at = chat_page()
    at.chat_input(key="question").set_value("How do I detect overfitting?").run()
    at.button(key="view-1").click().run()
    assert not at.exception and not at.get("image")
    assert any("original PDF is not kept" in c.value for c in at.caption)
    chats = conversation_store(load_settings())
    [hit] = [h for h in chats.get(chats.list("samples")[0].id).turns[0].answer["sources"]
             if h["rank"] == 1]
    first_line = hit["text"].split("\n")[0]  # the span is marked line by line
    assert any(f":orange-background[{first_line}]" in m.value.replace("\\", "")
               for m in at.markdown)


def test_a_match_found_by_meaning_names_the_words_in_its_tooltip(studio_env, tmp_path,
                                                                 monkeypatch):
    """The offer letter says "Compensation … Pay {$123,456 per year}": spelled, "salary" is in
    no chunk and every hit was a weak match; read by meaning, the first is a strong one, and
    its tooltip says which word stood for which."""
    monkeypatch.setenv("STUDIO_CHAT_MODEL", str(tiny_causal_lm(tmp_path / "tiny-chat")))
    [result] = ingest_files(load_settings(), [shared("documents", "square-one_offer-letter.docx")],
                            "letter")
    assert result.status == "ok"
    at = chat_page()
    at.chat_input(key="question").set_value("What is the salary?").run()
    assert not at.exception
    assert not any(m.value == "The documents do not say." for m in at.markdown)
    [first, *_] = [m for m in at.markdown if "match]" in m.value]
    assert ":green-badge[strong match]" in first.value
    assert "“compensation” counted for “salary”" in first.proto.help, first.proto.help
    assert "one time in three or more" in first.proto.help


def test_the_best_sentence_is_bold_unless_it_is_most_of_the_chunk():
    from app_pages.chat_sources import chunk_markdown
    from core.rag.hits import Hit

    text = "Pay is monthly. Position {Engineering Manager} Supervisor {Janet Duncan}"
    hit = Hit(rank=1, score=1.0, doc="letter.docx", page=1, chunk_id="c", text=text,
              retriever="both", best_sentence=(0, 15))
    assert "is monthly\\.**" in chunk_markdown(hit, "When is pay made?")
    hit.best_sentence = (16, len(text))
    assert "**" not in chunk_markdown(hit, "Who is the supervisor?")
