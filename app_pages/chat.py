"""Chat: answers streamed on the left, the retrieved chunks and their scores on the right.
Conversations are saved (core.rag.conversations) and named in the URL with the collection, so
a reload, a restart or a shared link opens the same chat."""

import threading
from contextlib import nullcontext

import streamlit as st

from app_pages.chat_answers import COMPARED, COMPARED_CSS, compared, search_caption, show_answer
from app_pages.chat_scroll import show_latest_turn
from app_pages.chat_sources import PageSource, show_sources
from app_pages.shared import (
    chat_engine,
    chroma_client,
    install_buttons,
    settings,
    write_model_stream,
)
from core.rag import store
from core.rag.answers import (
    MAX_QUESTION_CHARS,
    Answer,
    RagTurn,
    no_context_stream,
)
from core.rag.conversations import (
    Conversation,
    ConversationError,
    Turn,
    conversation_store,
)
from core.rag.conversations import history as conversation_messages
from core.rag.export import to_markdown
from core.rag.llm import ChatError, StreamStats
from core.rag.retrieval import (
    DEFAULT_K,
    DEFAULT_WINDOW,
    DEFAULT_WINDOW_TOKENS,
    MAX_WINDOW,
    MAX_WINDOW_TOKENS,
    RetrievalOptions,
)
from core.registry import Registry
from core.settings import locked, model_choices, save_preferences
from core.text import clip, distinct
from core.uploads import safe_filename

TITLE_CHARS = 40  # of a conversation's title in the picker
CONVERSATION_PICKER_PX = 340  # the title and its count of turns
PANEL_TOP = "4rem"  # below Streamlit's header
PANEL_BELOW = "20rem"  # the panel's heading and caption above its chunks, the question box below

s = settings()
collection = st.session_state.get("collection")
st.title("Chat")
if not collection:
    # the sidebar's picker holds one wherever any exists: here there is none
    st.info("No collection yet: create one on the Documents page, and add documents to it.")
    st.page_link("app_pages/documents.py", label="Go to Documents", icon=":material/description:")
    st.stop()

chroma = chroma_client(s)
chunks_store = store.get_collection(chroma, collection)
page_source = PageSource(s.data_dir, chunks_store)
docs = store.documents(chunks_store)
chats = conversation_store(s)


def current_conversation() -> Conversation | None:
    """This session's choice, else the URL's (a reload or a shared link) when it belongs to
    this collection, else the collection's newest; None before a new one's first question."""
    wanted = st.session_state.get(f"chat-{collection}") or st.query_params.get("conversation")
    if wanted == "new":
        return None
    if wanted:
        try:
            found = chats.get(wanted)
            if found.collection == collection:
                return found
        except ConversationError:
            pass  # deleted since: fall back to the newest
    newest = chats.list(collection)
    return chats.get(newest[0].id) if newest else None


def open_conversation(conversation_id: str) -> None:
    st.session_state[f"chat-{collection}"] = conversation_id
    st.query_params["conversation"] = conversation_id


conversation = current_conversation()
st.query_params["conversation"] = conversation.id if conversation else "new"
history: list[Answer] = ([Answer.from_json(t.question, t.answer) for t in conversation.turns]
                         if conversation else [])


def save_turn(answer: Answer) -> None:
    """Store the turn in the open conversation, starting one on the first question."""
    global conversation
    if conversation is None:
        conversation = chats.create(collection)
        open_conversation(conversation.id)
    chats.add_turn(conversation.id, Turn(answer.question, answer.to_json()))

# Settings ----------------------------------------------------------------------------------
if s.chat_backend == "local":
    with st.expander(f"Chat model · {s.chat_model}", icon=":material/smart_toy:"):
        registry = Registry.load(s.registry_path, s.models_dir)
        models = model_choices(registry, "chat", s.chat_model)[0]
        # Keyed by the saved choice: the widget follows a change made on the Settings page.
        chosen = st.selectbox("Local chat model", models, index=models.index(s.chat_model),
                              key=f"chat-model-{s.chat_model}", disabled=locked(s, "chat_model"),
                              help="Saved as on the Settings page; installed models only.")
        if chosen != s.chat_model:
            save_preferences(s, {"chat_model": chosen})
            st.rerun()
        install_buttons(s, "chat")

with st.expander("Retrieval settings", icon=":material/tune:"):
    cols = st.columns(3)
    k = cols[0].slider("Chunks to retrieve (k)", 1, 15, DEFAULT_K, key="k")
    method = cols[1].radio("Method", ["hybrid", "dense", "bm25"], horizontal=True, key="method",
                           format_func={"hybrid": "Hybrid", "dense": "Dense",
                                        "bm25": "BM25 (keywords)"}.get,
                           help="Dense: meaning, via embeddings. BM25: shared keywords. Hybrid: "
                                "both, fused by reciprocal rank.")
    mmr = cols[2].toggle("Diversify (MMR)", key="mmr",
                         help="Prefer chunks that add something new over near-duplicates.")
    min_score = cols[0].slider("Minimum score", 0.0, 1.0, 0.0, 0.05, key="min-score")
    rerank = cols[2].toggle("Order by relevance", value=True, key="rerank",
                            help="Order the candidates by how likely each is to hold the "
                                 "answer (the match marks) rather than by the method's score.")
    names = {d["doc_id"]: d["file"] for d in docs}
    only = cols[1].multiselect("Only these documents", list(names), format_func=names.get,
                               key="only-docs")
    labels = store.collection_labels(docs)
    only_labels = cols[1].multiselect(
        "Only documents labelled", labels, key="only-labels",
        help=f"Labels given by {store.labelled_by(chunks_store)} (Documents page, Classify "
             "with an adapter).") if labels else []
    window = cols[2].slider("Neighbours each side", 0, MAX_WINDOW, DEFAULT_WINDOW, key="window",
                            help="The model also reads this many chunks before and after each "
                                 "retrieved chunk, within the budget below.")
    window_tokens = cols[2].number_input(
        "Neighbour text, at most (tokens)", 0, MAX_WINDOW_TOKENS, DEFAULT_WINDOW_TOKENS, step=64,
        key="window-tokens", disabled=not window,
        help="All neighbouring text together, best hits first; 0 for as much as the model's "
             "window holds. More text answers more, but the model reads it before its first "
             "word (about 200 tokens a second on 2 cores).")
    st.caption("Each chunk is marked a strong, partial or weak match: how likely it is to hold "
               "the answer, on the same scale for every method. The method's own score is in "
               "the mark's tooltip. In the leading chunks, the sentence closest in meaning to "
               "the question is in bold; the question's words are highlighted.")
options = RetrievalOptions(k=k, method=method, mmr=mmr, min_score=min_score,
                           doc_ids=tuple(only), labels=tuple(only_labels), window=window,
                           window_tokens=int(window_tokens),
                           rerank=rerank)

# One row that wraps where the page is narrow: in columns, at 1024 pixels with the sidebar
# open, "New" and "More" were cut to "N…" and "M".
bar = st.container(horizontal=True, vertical_alignment="center", key="chat-bar")
compare = bar.toggle("Compare without retrieval", key="compare", width="content",
                     help="Also ask the same model with no context, to see what retrieval "
                          "changes.")
saved = chats.list(collection)
# The title clipped so that the count stays in view ("… · 3 turn" was cut at the box's edge)
titles = dict(zip([c.id for c in saved],
                  distinct([f"{clip(c.title, TITLE_CHARS)} · {c.size} turn{'s' * (c.size != 1)}"
                            for c in saved])))
current = conversation.id if conversation else "new"
# Keyed by the open conversation and its title: a widget that starts afresh whenever the page
# opens another one (New, a first question, a link) instead of holding on to the previous
# choice, and whenever a turn renames it ("· 3 turns"). A keyed selectbox holds the label it
# showed, and a label no longer among the options came back as the choice itself: the page
# took it for a conversation, fell back to the open one and asked again, for minutes, losing
# the question that was sent.
picked = bar.selectbox("Conversation", ["new", *titles], label_visibility="collapsed",
                       width=CONVERSATION_PICKER_PX,
                       index=0 if conversation is None else 1 + list(titles).index(current),
                       format_func=lambda c: titles.get(c, "New conversation"),
                       key=f"conversation-{collection}-{current}-{titles.get(current)}")
if picked != current and (picked == "new" or picked in titles):
    open_conversation(picked)
    st.rerun()
if bar.button("New", icon=":material/add_comment:", disabled=conversation is None):
    open_conversation("new")
    st.rerun()
with bar.popover("More", icon=":material/more_horiz:", disabled=conversation is None):
    if conversation is not None:
        # Keyed by the conversation, as is the confirmation below: with one key for all, the
        # next conversation opened showed the previous one's title and a ticked confirmation.
        title = st.text_input("Title", conversation.title,
                              key=f"conversation-title-{conversation.id}")
        # never disabled by the box's text: typed text arrives with the click itself
        if st.button("Rename") and title.strip() not in ("", conversation.title):
            chats.rename(conversation.id, title)
            st.rerun()
        st.download_button("Export as Markdown",
                           to_markdown(collection, history, conversation.title),
                           file_name=safe_filename(f"{conversation.title}.md"),
                           mime="text/markdown",
                           icon=":material/download:")
        sure = st.checkbox("Yes, delete this conversation",
                           key=f"delete-conversation-sure-{conversation.id}")
        if st.button("Delete", type="primary", disabled=not sure, icon=":material/delete:"):
            chats.delete(conversation.id)
            open_conversation("new")
            st.rerun()

# A Stop click (or any other rerun while an answer streams) interrupts that run at its next
# output and starts this one at once: stop the model and keep what was written so far. The
# interrupted run may still come back from the model; finish() records the turn only once.
pending = st.session_state.pop("pending-turn", None)
if pending is not None and (stopped := pending.finish(stop=True)) is not None:
    save_turn(stopped)
    history.append(stopped)

left, right_column = st.columns([3, 2], gap="large")
# The sources stay in view beside the answer that the page scrolls to: their column sticks
# under the header and is never taller than the screen. They sat above the screen once the
# page scrolled to an answer.
right = right_column.container(key="sources-panel")
st.html(f"""<style>[data-testid=stColumn]:has(.st-key-sources-panel) {{
  position: sticky; top: {PANEL_TOP}; align-self: flex-start;}}
[class*=st-key-sources-scroller-],
[data-testid=stLayoutWrapper]:has(> [class*=st-key-sources-scroller-]) {{
  max-height: calc(100vh - {PANEL_TOP} - {PANEL_BELOW});}}
{COMPARED_CSS}</style>""")


def forget_pending(turn: RagTurn) -> None:
    """Only this run's own turn: a later run may have stored the next question's."""
    if st.session_state.get("pending-turn") is turn:
        del st.session_state["pending-turn"]


with left:
    for number, answer in enumerate(history):
        show_answer(answer, number, page_source)
    if not history:
        st.caption(f"Ask anything about the {len(docs)} document(s) in **{collection}**.")

# A question sent while an answer streams would stop that answer (the click reruns the page),
# so a sent question is answered in a run of its own, with the input shown busy meanwhile.
question = st.session_state.pop("asking", None)
sent = st.chat_input("Answering… press Stop to ask something else" if question
                     else f"Ask about {collection}", key="question",
                     max_chars=MAX_QUESTION_CHARS, disabled=question is not None)
if sent:
    st.session_state["asking"] = sent
    st.rerun()
if question:
    with left:
        # The question is on the page at once, loading the model and searching below it: on
        # a first question the page showed only "Loading the chat model…" for seconds.
        asked = st.chat_message("user")
        asked.text(question)
        try:
            engine = chat_engine(s)
            with st.spinner("Reading the conversation…") if history else nullcontext():
                turn = RagTurn(s, collection, question, engine, options, stop=threading.Event(),
                               chroma=chroma,
                               history=conversation_messages(conversation) if conversation else ())
        except (ChatError, ValueError, store.StoreError) as exc:
            st.error(str(exc), icon=":material/error:")
            st.stop()
    with right:
        show_sources(turn.search.hits, turn.searched_for, [], False, turn.plan.windows,
                     turn.search.method, page_source, question, len(history) + 1,
                     viewable=False)
        show_latest_turn(len(history) + 1, "asked")
    with left:
        with asked:
            search_caption(question, turn.searched_for, turn.searched_in,
                           turn.searched_in_because, turn.search.hits, turn.rewording is not None)
        with st.chat_message("assistant"):
            st.session_state["pending-turn"] = turn
            st.button("Stop", icon=":material/stop_circle:", key="stop")
            grounded, alone = (compared(len(history)) if compare else (st.container(), None))
            try:
                with grounded:
                    if compare:
                        st.caption(COMPARED[0])
                    write_model_stream(turn.stream())
                if alone is not None:
                    with alone:
                        st.caption(COMPARED[1])
                        stats = StreamStats()
                        turn.no_context = stats
                        write_model_stream(no_context_stream(engine, question, stats,
                                                             stop=turn.stop))
            except ChatError as exc:
                forget_pending(turn)
                st.error(f"{exc}. Your conversation is kept.", icon=":material/error:")
                st.stop()
    answer = turn.finish()
    if answer is None:  # stopped: the run that the click started has recorded it
        st.stop()
    forget_pending(turn)
    save_turn(answer)
    st.session_state["answer-written"] = True
    st.rerun()
elif history:
    latest = history[-1]
    with right:
        show_sources(latest.sources, latest.searched_for or latest.question, latest.cited,
                     latest.citations_inferred, latest.windows, latest.method, page_source,
                     latest.question, len(history))
        if st.session_state.pop("answer-written", False):
            show_latest_turn(len(history), "written")
