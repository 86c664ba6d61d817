"""Follow-up questions: "How does RoBERTa change them?" means nothing to a search index. A
question that leans on earlier turns is rewritten by the chat model into a standalone search
query from the recent turns; a question that stands alone is searched as it is, without a
model call (most first questions, and every question in a new conversation)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.rag.citations import without_marks
from core.rag.llm import ChatEngine
from core.rag.naming import capitalised
from core.rag.terms import question_terms

RECENT_TURNS = 3
ANSWER_CHARS = 400  # of each earlier answer shown to the rewriter: its gist, not its length
MAX_QUERY_WORDS = 40
# A reply that ends in a full stop past this many words is a statement: asked "Why is it
# useful?" after masked language modelling, the 0.5B replied "Masked language modeling is
# useful for tasks like text summarization, translation, and question answering."
STATEMENT_WORDS = 8
# Words that point back at something said before. A very short question ("The second one?")
# usually does too, unless it names something ("What is LoRA?", asked after three questions
# about the Transformer, was searched with all four); five words can already stand alone
# ("What does the discriminator estimate?" was rewritten into the previous answer by a small
# model).
_ANAPHORA = re.compile(
    r"\b(it|its|they|them|their|theirs|this|that|these|those|he|she|his|her|former|latter|"
    r"above|previous|same|both|either|neither|instead|other)\b|"
    r"\b(first|second|third|last|next) ones?\b|\byour (last |previous )?answer\b|\byou said\b|"
    r"^(and|but|so|what about|how about|why|then)\b", re.IGNORECASE)
SHORT_QUESTION_WORDS = 3
_WORD = re.compile(r"[\w-]+")
# A request about how the previous answer is worded, not about the documents: "Can you say
# that in a full sentence?" was searched for "full sentence", and the 0.5B, shown only the
# earlier questions, had no answer to reword. Narrow on purpose: "Summarize it" after a
# question about a paper means the paper, so what it points at must be said, or the request
# must be about wording.
_ABOUT_THE_ANSWER = re.compile(
    r"\b(say|put|write|rephrase|reword|restate|repeat|simplify|shorten|translate) (that|this|it)\b|"
    r"\b(your|that|this) (last |previous )?(answer|reply)\b|\bwhat you (said|wrote)\b|"
    r"\bin (a|one|full|complete) (full |complete )?sentences?\b|\bin other words\b|"
    r"\bmore (simply|briefly|clearly)\b|\bin simpler (terms|words)\b", re.IGNORECASE)

# "And what about hyperparameters?" names what it asks about and asks of it what the question
# before asked: the earlier questions say what. Rewritten by the 0.5B, it carried an earlier
# wrong answer's words into the search ("random seeds, data augmentation, regularization,
# baseline, hyperparameters").
_WHAT_ABOUT = re.compile(r"^\s*(?:(?:and|but|so)\s+)?(?:what|how)\s+about\s+(?P<what>.+)",
                         re.IGNORECASE)

SYSTEM = ("You rewrite a follow-up question into one standalone search query. Use the "
          "conversation to replace words like 'it', 'they' or 'them' with what they refer to. "
          "Reply with the query only, on one line, without an answer.")


def needs_rewrite(question: str, history: Sequence[dict]) -> bool:
    """Whether `question` leans on the earlier turns (chat messages: role and content)."""
    return bool(history) and _leans(question)


def about_the_answer(question: str) -> bool:
    """Whether `question` asks for the previous answer again, worded another way ("Summarize
    BERT in one sentence" stands alone; "Summarize it in one sentence" is about the answer)."""
    return _leans(question) and bool(_ABOUT_THE_ANSWER.search(question))


def _leans(question: str) -> bool:
    return _refers_back(question) or (
        len(question.split()) <= SHORT_QUESTION_WORDS and not capitalised(question))


def _refers_back(text: str) -> bool:
    return any(_points_back(m.group(), text) for m in _ANAPHORA.finditer(text))


def _points_back(word: str, question: str) -> bool:
    """A word in capitals is a name, not a pronoun: "Which state's law governs the
    distributor agreement between ITS and Comware?" was rewritten as a follow-up, and the
    rewrite carried the previous answer's parties into the search."""
    return not (word.isupper() and len(word) > 1 and not question.isupper())


def rewrite(engine: ChatEngine, question: str, history: Sequence[dict],
            scoped: bool = False) -> str:
    """A standalone search query for `question`: `question` itself when it stands alone, the
    model's rewrite when it names something from the conversation, else the earlier questions
    and this one together; for a request about the previous answer, what that answer was
    searched for (its question, and those it leaned on). `scoped`: the documents the
    conversation is about are searched first, which say what "it" is: where the model replaced
    nothing, the question itself (`with_previous` where that finds nothing)."""
    if not needs_rewrite(question, history):
        return question
    said = {"user": "Q", "assistant": "A"}
    recent = _recent(history)
    if about_the_answer(question):
        return " ".join(_back_to_standalone(recent))
    if (about := _WHAT_ABOUT.match(question)) and question_terms(about["what"]) \
            and not _refers_back(about["what"]):
        return _with_earlier_questions(question, recent, scoped)
    turns = "\n".join(f"{said[m['role']]}: {' '.join(m['content'].split())[:ANSWER_CHARS]}"
                      for m in recent)
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Conversation:\n{turns}\n\nFollow-up question: "
                                            f"{question}\n\nStandalone search query:"}]
    reply = "".join(engine.stream(messages, max_new_tokens=64))
    query = clean_query(reply)
    if query and _repeats_an_answer(query, recent):
        # asked "Who wrote that paper?", the 0.5B gave back an earlier answer word for word
        query = ""
    asked, named = question_terms(question), question_terms(query)
    # A rewrite that is no question and keeps none of the question's words is a name or a term
    # from the conversation, not the question ("Who wrote that paper?" -> "Luke Zettlemoyer",
    # an earlier answer, after a question about GAN); a paraphrase ("Why is MLM important?"
    # for "Why does it matter?") is still a question
    if named - asked and (named & asked or query.endswith("?") or not asked) \
            and not _numbers(query) - _numbers(question):
        # with what it dropped of the question: the 0.5B rewrote "How many layers does its
        # encoder have?" (after "What is the Transformer?") as "Transformer layers", and the
        # encoder's "N = 6" went unread
        dropped = dict.fromkeys(w for w in _WORD.findall(question)
                                if question_terms(w) and not question_terms(w) <= named)
        return " ".join([query, *dropped])
    # The model replaced nothing (a small one, after a wrong answer, reduced "Which of them
    # does RoBERTa drop?" to "RoBERTa"): search the earlier questions and this one together,
    # back to one that stands alone, which keeps what "them" points at ("What is a GAN? Who
    # wrote that paper? How is it trained?"). Where the documents it is about are searched
    # first, the earlier questions drown this one: after three questions about the
    # Transformer, "What BLEU score does it reach on English-to-German?" searched with all four
    # was answered 41.8 (English-to-French), and "Which optimizer was it trained with?" with
    # the one before it read of the encoder's layers
    return _with_earlier_questions(question, recent, scoped)


def _with_earlier_questions(question: str, recent: Sequence[dict], scoped: bool) -> str:
    return question if scoped else " ".join([*_back_to_standalone(recent), question])


def with_previous(question: str, history: Sequence[dict]) -> str:
    """`question` with the question before it (and, where that one leaned too, the one it
    leaned on): for "How does the first one work?" after "Which tasks is BERT trained on?"."""
    return " ".join([*_back_to_standalone(_recent(history))[-1:], question])


def _recent(history: Sequence[dict]) -> list[dict]:
    return [m for m in history if m["role"] in ("user", "assistant")][-2 * RECENT_TURNS:]


def _numbers(text: str) -> set[str]:
    """A number in a rewrite that the question lacks comes from an earlier answer: "By how much
    does it reduce the number of trainable parameters?" became "LoRA reduces the number of
    trainable parameters by approximately 10%", and "What BLEU score does it reach?" held the
    layers and heads answered before ("encoder layers 6 attention heads Adam BLEU 3")."""
    return set(re.findall(r"\d+(?:[.,]\d+)*", text))


def _back_to_standalone(recent: Sequence[dict]) -> list[str]:
    """The earlier questions, newest last, back to one that stands alone."""
    earlier: list[str] = []
    for m in reversed(recent):
        if m["role"] == "user":
            earlier.insert(0, m["content"])
            if not _leans(m["content"]):  # a request about an answer leans too
                break
    return earlier


def _repeats_an_answer(query: str, recent: Sequence[dict]) -> bool:
    """A sentence of an earlier answer given back: a statement, or five words or more of it
    (a name or a term from it, "QLoRA", is what a rewrite is for)."""
    said = without_marks(query).lower()
    return (said.endswith(".") or len(said.split()) >= 5) and any(
        said.rstrip(".") in without_marks(m["content"]).lower()
        for m in recent if m["role"] == "assistant")


def clean_query(reply: str) -> str:
    """The model's first line without quotes or a 'Query:' prefix; empty when it is not a
    query (too long, or a long statement: the model answered instead)."""
    line = next((ln.strip() for ln in reply.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(standalone )?(search )?query\s*:\s*", "", line, flags=re.IGNORECASE)
    line = without_marks(line).strip("\"'`").strip()  # marks: copied from an answer
    words = len(line.split())
    if line.endswith(".") and words > STATEMENT_WORDS:
        return ""
    if words > STATEMENT_WORDS and len(set(line.lower().split())) * 2 < words:
        return ""  # the model went round in a loop: "… by Ian Goodfellow, Ian Goodfellow, …"
    return line if 0 < words <= MAX_QUERY_WORDS else ""
