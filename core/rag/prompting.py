"""The prompt of a retrieval-augmented answer: the retrieved chunks as numbered passages, whole,
in rank order while they fit the model's window, with their neighbouring chunks around them, and
a follow-up's earlier questions in the room that is left (core.rag.answers)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from core.rag import front_matter, naming, overview, parts, store
from core.rag.hits import Hit
from core.rag.llm import ChatEngine

# Measured with the default model (Qwen2.5-Coder-0.5B) on 8 answerable SQuAD 2.0 questions
# (work/scratch runs of issue 13): every prompt that asked it to write [n] marks itself, in the
# system prompt, repeated after the question, or with an example sentence, cost the answer: it
# wrote a bare "[1]", copied the passage's heading or the example, or refused answerable
# questions (token F1 0.00-0.17). LangChain's "stuff" prompt, which asks for nothing but the
# answer, gave 0.24 with three hits and a window of one neighbour. So the model answers in
# its own words, and the marks come from the model in a step of their own (stream_marked).
ANSWER_PROMPT = ("Use the following pieces of context to answer the question at the end. If "
                 "you don't know the answer, just say that you don't know, don't try to make "
                 "up an answer.\n\n{context}\n\nQuestion: {question}\n{style}Helpful Answer:")
# Asking for as few words as possible lifted SQuAD 2.0 F1 from 0.24 to 0.38 with the 0.5B (48
# answerable questions of the shared article; QASPER 0.12 -> 0.13 on all 45): the answers were
# as right, minus the restated question ("Rollo [1]" for "The Norse leader was Rollo. [1]").
# But asked for "a long essay about …" both small models then wrote one sentence, and every
# wording with an exception for such requests ("…, unless the question asks for more", "If the
# question asks for an essay, an explanation or a list, write it in full") took the gain back
# (F1 0.22-0.23). So the model is asked for brevity only when the user asks a question; a
# request ("Write…", "Explain…") is answered at the length it asks for.
BRIEF = "Answer in as few words as possible.\n"
REWORD_PROMPT = ("You reword your previous answer as the user asks. Keep its facts and its [n] "
                 "marks; add nothing.")
NO_CONTEXT_PROMPT = "Answer the question in at most three sentences."
TEMPLATE_OVERHEAD_TOKENS = 64  # role markers, separators and the template's default system line
TURN_TOKENS = 8  # role markers and separators around one earlier message


Key = tuple[str, int]  # (doc_id, chunk index): one chunk of one document


@dataclass
class PromptPlan:
    messages: list[dict]
    used: list[Hit]
    dropped: list[Hit]
    windows: dict[int, dict] = field(default_factory=dict)  # rank -> text "before"/"after" it


def _row(hit: Hit) -> dict:
    return {"doc_id": hit.doc_id, "chunk": hit.chunk, "page": hit.page, "start": hit.start,
            "end": hit.end, "text": hit.text}


def merged_text(rows: list[dict]) -> str:
    """Consecutive chunks of one document as one text: where chunks overlap on a page the
    overlap is written once (their spans say where); where text is left out, SKIPPED says so."""
    out, prev = "", None
    for row in rows:
        if prev is None:
            out = row["text"]
        elif row["chunk"] > prev["chunk"] + 1:  # a later item of a list (later_items)
            out += f"\n{SKIPPED}\n" + row["text"]
        elif row["page"] == prev["page"] and row["start"] < prev["end"]:
            out += row["text"][prev["end"] - row["start"]:]
        else:
            out += ("\n" if row["page"] == prev["page"] else "\n\n") + row["text"]
        prev = row
    return out


def _runs(chosen: dict[Key, dict], hits: list[Hit]) -> list[tuple[Hit, list[dict]]]:
    """Chosen chunks that follow each other in a document, as one passage led by the best hit
    inside it; passages in the order of their best hits."""
    runs: list[list[Key]] = []
    by_key = {(h.doc_id, h.chunk): h for h in hits}
    for key in sorted(chosen):
        if runs and runs[-1][-1] == (key[0], key[1] - 1):
            runs[-1].append(key)
        else:
            runs.append([key])
    passages: list[list[Key]] = []
    for run in runs:  # a list's later item (later_items) is read after the hit that opens it
        if passages and passages[-1][0][0] == run[0][0] and not any(k in by_key for k in run):
            passages[-1] += run
        else:
            passages.append(run)
    led = [(min((by_key[k] for k in run if k in by_key), key=lambda h: h.rank),
            [chosen[k] for k in run]) for run in passages]
    return sorted(led, key=lambda pair: pair[0].rank)


# A numbered list whose items open paragraphs far apart: BERT's section 3.1 says "we pre-train
# BERT using two unsupervised tasks, described in this section", then "Task #1: Masked LM …" in
# the same chunk and "Task #2: Next Sentence Prediction (NSP) …" five chunks later. Given that
# first chunk alone, the 0.5B answered "pre-training and fine-tuning"; given the later item's
# first sentence as well (and not asked for brevity: asks_for_several), "1. Masked LM … 2. Next
# Sentence Prediction". So a passage that holds an item is followed by the first sentence of
# each later item of its section (captions and cross-references, "Table 2:", are not items).
_ITEM = re.compile(r"^(?P<label>[A-Z][a-z]+) #?(?P<n>\d{1,2})[:.)] ", re.MULTILINE)
_NOT_ITEMS = frozenset("Table Figure Fig Section Appendix Algorithm Equation Eq Chapter Page "
                       "Listing Theorem Lemma Definition Proposition Corollary Remark Footnote "
                       "Exhibit Schedule Article Annex Part".split())
LATER_ITEMS_CHUNKS = 12  # how far into its section a hit's list is followed
MAX_ITEM_CHARS = 300
_FIRST_SENTENCE = re.compile(r".+?[.!?](?=\s|$)", re.DOTALL)
SKIPPED = "[…]"


def _items(text: str) -> Iterator[re.Match]:
    """The numbered items that open paragraphs of `text`, captions and cross-references left
    out."""
    return (m for m in _ITEM.finditer(text) if m.group("label") not in _NOT_ITEMS)


def list_items(text: str) -> dict[str, set[int]]:
    """The numbered items that open paragraphs of `text`, by label: {"Task": {1}}."""
    found: dict[str, set[int]] = {}
    for m in _items(text):
        found.setdefault(m.group("label"), set()).add(int(m.group("n")))
    return found


def _run_in_heading_end(text: str, at: int) -> int | None:
    """Where the run-in heading of the item that opens at `at` ends: its capitalised words
    ("Masked LM", "Next Sentence Prediction (NSP)") up to the one that begins the paragraph's
    sentence, which a lower-case word follows ("Intuitively, it is", "Many important")."""
    words = list(re.finditer(r"\S+", text[at:at + MAX_ITEM_CHARS]))
    last = None  # the end of the heading's last word so far
    for word, after in zip(words, words[1:]):
        if not word.group(0).lstrip("(")[:1].isupper():  # "(NSP)" is capitalised
            return None  # a lower-case word before any sentence began: no run-in heading
        if after.group(0)[:1].islower() or word.group(0).endswith(","):
            return at + last if last is not None else None
        last = word.end()
    return None


def with_run_in_headings_apart(text: str) -> str:
    """Each list item's run-in heading on a line of its own ("Task #1: Masked LM\nIntuitively,
    …"): run on, the 0.5B took the sentence's first word for part of the name ("1. Masked LM
    Intuitively"), and asked "What are the pre-training tasks of BERT?" copied the sentence."""
    ends = [end for m in _items(text) if (end := _run_in_heading_end(text, m.end()))]
    for end in reversed(ends):
        text = text[:end] + "\n" + text[end:].lstrip(" ")
    return text


def later_items(hit: Hit, rows: list[dict]) -> list[dict]:
    """Of `rows` (chunks after the hit in its document), those that open a later item of a list
    the hit holds, within its section, each cut to the item's first sentence."""
    items = list_items(hit.text)
    out = []
    for row in rows:
        if row["doc_id"] != hit.doc_id or row["chunk"] <= hit.chunk \
                or row.get("section", "") != hit.section:
            continue
        for m in _items(row["text"]):
            seen = items.get(m.group("label"), set())
            if seen and int(m.group("n")) > max(seen):
                seen.add(int(m.group("n")))
                rest = row["text"][m.start():]
                found = _FIRST_SENTENCE.match(rest)
                text = (found.group(0) if found else rest)[:MAX_ITEM_CHARS]
                out.append({**row, "text": text, "start": row["start"] + m.start(),
                            "end": row["start"] + m.start() + len(text)})
                break
    return out


def context_block(lead: Hit, rows: list[dict], where_they_work: bool = True) -> str:
    first, last = rows[0]["page"], rows[-1]["page"]
    pages = f"page {first}" if first == last else f"pages {first}–{last}"
    section = f" · {lead.section}" if lead.section else ""
    # The title, not the file name: a small model took the numbers of names such as
    # "1805.02400.pdf" for answers ("How many reviews…?" → "1805.02400").
    text = with_run_in_headings_apart(merged_text(rows))
    if lead.retriever == front_matter.RETRIEVER:
        text = front_matter.readable(text, lead.title, where_they_work)
    return f"Passage {lead.rank} ({lead.title or lead.doc}, {pages}{section}):\n{text}"


# Asked for brevity what an acronym stands for, the 0.5B wrote it back ("What does BERT stand
# for?" -> "Bert"); asked plainly, "BERT stands for Bidirectional Encoder Representations from
# Transformers". None of the shared QA sets' questions asks this way.
_SPELLED_OUT = re.compile(r"\bstands? for\b|\babbreviation\b|\bacronym\b", re.IGNORECASE)


# Asked for brevity for a number of things, the 0.5B gave their count back: "What are the two
# pre-training tasks of BERT?" -> "Two unsupervised tasks."; asked plainly, with the same
# passages, "1. Masked LM … 2. Next Sentence Prediction". Four questions of the shared QA sets
# ask this way ("Who were the two abbots at Fécamp Abbey?").
_SEVERAL = re.compile(r"\b(two|three|four|five|six|seven|eight|nine|ten|[2-9])\s+"
                      r"(?:[\w-]+\s+){0,2}?[\w-]+s\b", re.IGNORECASE)
_HOW_MANY = re.compile(r"\s*how (many|much)\b", re.IGNORECASE)


def asks_for_several(question: str) -> bool:
    """Whether the question asks for a number of things ("the two pre-training tasks"), not for
    a number ("How many layers…?")."""
    return bool(_SEVERAL.search(question)) and not _HOW_MANY.match(question)


def wants_brevity(message: str) -> bool:
    """A question, but not one for a document's authors or title (asked for brevity, the 0.5B
    gave one name of a list: "Who wrote the BERT paper?" -> "Jacob Devlin", of four), for
    what an acronym stands for, or for a number of things."""
    return (message.rstrip().endswith("?") and not front_matter.asks_about_document(message)
            and not _SPELLED_OUT.search(message) and not asks_for_several(message))


def _user_message(question: str, chosen: dict[Key, dict], hits: list[Hit]) -> str:
    where_they_work = front_matter.asks_where_authors_work(question)
    runs = _runs(chosen, hits)
    context = "\n\n".join(context_block(lead, rows, where_they_work) for lead, rows in runs)
    one_document = len({lead.title or lead.doc for lead, _ in runs}) == 1  # copies are one
    asked = (parts.as_the_model_reads_it(question) or overview.as_the_model_reads_it(question)
             or front_matter.as_the_model_reads_it(question, one_document))
    return ANSWER_PROMPT.format(context=context, question=asked,
                                style=BRIEF if wants_brevity(question) else "")


def echoes(used: list[Hit]) -> list[str]:
    """How the prompt's own lines begin, which an answer never does: one that reaches one has
    begun to copy the prompt. Over QASPER the 0.5B went on from "… was as follows:" into
    "Passage 2 (Is there Gender bias and stereotype in Portuguese Word Embeddings?, page 1):"
    and that passage's text."""
    return [*(f"\nPassage {h.rank} (" for h in used), "\nQuestion: "]


def build_prompt(question: str, hits: list[Hit], engine: ChatEngine, max_new_tokens: int,
                 nearby: dict[Key, dict] | None = None, window: int = 0,
                 window_tokens: int = 0) -> PromptPlan:
    """Whole chunks in rank order while they fit the model's window (a chunk that does not fit
    is dropped, never cut); then, one ring of `window` at a time, the neighbouring chunks of the
    same section from `nearby` around each hit, best hits first, the one after before the one
    before, while they fit and, with `window_tokens`, while the neighbours' text stays within
    that many tokens; then, while they fit, the rest of a list the hit begins: an opening's
    ORCID-marked authors, a list's later items. Chunks that meet are merged into one passage,
    so no text is given twice."""
    limit = engine.context_window - max_new_tokens - TEMPLATE_OVERHEAD_TOKENS
    chosen: dict[Key, dict] = {}

    def fits(key: Key, row: dict) -> bool:
        return engine.count_tokens(_user_message(question, {**chosen, key: row}, hits)) <= limit

    for hit in hits:
        key, row = (hit.doc_id, hit.chunk), _row(hit)
        if fits(key, row):
            chosen[key] = row
    nearby = nearby or {}
    spare = window_tokens or limit
    for distance in range(1, window + 1):
        for hit in hits:
            # The text after a hit first, and only within its section: a hit that ends
            # "…two unsupervised tasks, described in this section" goes on in the chunks after
            # it, while the chunk before a hit that opens a section is another section's end
            # (over BERT, the 0.5B answered from such a chunk: "natural language inference").
            for step in (1, -1):
                key, inner = ((hit.doc_id, hit.chunk + step * d) for d in (distance, distance - 1))
                if key in nearby and key not in chosen and inner in chosen \
                        and nearby[key].get("section", "") == hit.section:
                    cost = engine.count_tokens(nearby[key]["text"])
                    if cost <= spare and fits(key, nearby[key]):
                        chosen[key] = nearby[key]
                        spare -= cost
    in_order = sorted(nearby.values(), key=lambda r: r["chunk"])
    for hit in [h for h in hits if (h.doc_id, h.chunk) in chosen]:
        after = (naming.rest_of_author_list(_row(hit), in_order)
                 if hit.retriever == front_matter.RETRIEVER else [])
        for row in after + later_items(hit, in_order):
            key = (row["doc_id"], int(row["chunk"]))
            if key not in chosen and fits(key, row):
                chosen[key] = row
    used = [h for h in hits if (h.doc_id, h.chunk) in chosen]
    return PromptPlan([{"role": "user", "content": _user_message(question, chosen, hits)}],
                      used, [h for h in hits if h not in used], _windows(chosen, used))


def passage_texts(plan: PromptPlan) -> dict[int, str]:
    """Each hit given to the model, by rank: its text with the window the model read around
    it."""
    return {h.rank: "\n".join([plan.windows.get(h.rank, {}).get("before", ""), h.text,
                               plan.windows.get(h.rank, {}).get("after", "")])
            for h in plan.used}


def _windows(chosen: dict[Key, dict], used: list[Hit]) -> dict[int, dict]:
    """For each hit, the text the model read before and after it, up to the next hit of the
    same passage: that one is shown as itself, not again as the first one's surroundings. What
    a neighbour shares with the hit (chunks cut inside a paragraph overlap) is the hit's: the
    panel showed SC-LoRA's "information of preserved knowledge is least" twice, in the hit and
    again, faded, after it."""
    by_key = {(h.doc_id, h.chunk): h for h in used}
    windows = {}
    for _, rows in _runs(chosen, used):
        at = [i for i, row in enumerate(rows) if (row["doc_id"], row["chunk"]) in by_key]
        for n, i in enumerate(at):
            hit = by_key[(rows[i]["doc_id"], rows[i]["chunk"])]
            start = at[n - 1] + 1 if n else 0
            end = at[n + 1] if n + 1 < len(at) else len(rows)
            own = len(rows[i]["text"])
            up_to = merged_text(rows[start:i + 1])  # the hit whole at its end
            windows[hit.rank] = {"before": up_to[:len(up_to) - own].rstrip(),
                                 "after": merged_text(rows[i:end])[own:].lstrip()}
    return windows


def nearby_chunks(collection, hits: list[Hit], window: int) -> dict[Key, dict]:
    """The chunks within `window` of each hit, read from Chroma by doc id and chunk index; of a
    hit that holds a list's item, those within LATER_ITEMS_CHUNKS (later_items); of a
    document's opening that lists authors with ORCID iDs, those within AUTHOR_LIST_CHUNKS
    (naming.rest_of_author_list)."""
    rows = {}
    for hit in hits:
        radius = (naming.AUTHOR_LIST_CHUNKS if hit.retriever == front_matter.RETRIEVER
                  and naming.ORCID.search(hit.text)
                  else LATER_ITEMS_CHUNKS if list_items(hit.text) else window)
        for row in store.neighbours(collection, hit.doc_id, hit.chunk, radius) if radius else []:
            rows[(row["doc_id"], int(row["chunk"]))] = row
    return rows


def newest_that_fit(turns: Sequence[dict], engine: ChatEngine, budget: int) -> list[dict]:
    """The newest earlier messages whose tokens fit `budget`, oldest first."""
    kept: list[dict] = []
    for turn in reversed(turns):
        budget -= engine.count_tokens(turn["content"]) + TURN_TOKENS
        if budget < 0:
            break
        kept.append(turn)
    return kept[::-1]


def reword_messages(earlier: Sequence[dict], request: str) -> list[dict]:
    """The model's previous answer and the question it answered, then a request to word it
    another way (core.rag.followup.about_the_answer)."""
    answered = max(i for i, m in enumerate(earlier) if m["role"] == "assistant")
    asked = [m for m in earlier[:answered] if m["role"] == "user"][-1:]
    return [{"role": "system", "content": REWORD_PROMPT},
            *({"role": m["role"], "content": m["content"]} for m in (*asked, earlier[answered])),
            {"role": "user", "content": request}]
