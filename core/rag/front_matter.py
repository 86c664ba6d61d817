"""Questions about a document itself (who wrote it, what it is called, where its authors work),
which its opening chunk answers (the title block of a paper, the heading of a letter) and no
retriever finds: the question shares no word with a list of names ("wrote", "paper"), and
MiniLM puts "Who wrote the BERT paper?" at cosine 0.32 to BERT's title block, 40th of its 153
chunks, so the 0.5B model read three passages about pre-training and answered "OpenAI"."""

from __future__ import annotations

import re

from core.rag.bm25 import Bm25Index
from core.rag.terms import question_terms

# Narrow on purpose: "What do the authors propose?" asks about the content, and QASPER asks it
# that way dozens of times; only asking *who* the authors are, or for the title, is about the
# document.
_ABOUT_DOCUMENT = re.compile(
    r"\bwho\b[^.?!]*\b(wrote|writes|written|authored|authors?)\b"
    r"|\b(names?|list) of (the|its) authors\b|\bauthors[’']? (names|affiliations?)\b"
    r"|\baffiliations?\b|\bwhere (are|were|do|did) the authors\b"
    r"|\btitle of (the|this|that) (paper|document|article|report|study|book)\b",
    re.IGNORECASE)
RETRIEVER = "front matter"  # how a hit added here says where it came from (Hit.retriever)
# A title is named with capitals ("the BERT paper", "QLoRA"); the question's other words ("Where
# do the authors of QLoRA work?") would pick "Square One Statement of Work" as well.
_NAME = re.compile(r"(?<!^)\b\w*[A-Z]\w*")


# A title block's footnote marks ("Pouget-Abadie∗", "Hu*") and e-mail addresses: given "Jean
# Pouget-Abadie∗, Mehdi Mirza, …" the 0.5B wrote "Pouget-Abadie*" and ended its answer there, two
# names of GAN's eight; without them it wrote all eight, and QLoRA's four instead of three.
_FOOTNOTE_MARK = re.compile(r"[∗†‡§¶]+|(?<=[^\W\d_])\*+"
                            # "?" where extraction lost a symbol font's star: "Perez?,", "; ?New"
                            r"|(?<=[^\W\d_])\?(?=,)|(?<=[\s;,])\?(?=[A-Z])")
_EMAIL = re.compile(r"\{[^{}]*\}@[\w.-]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def readable(text: str) -> str:
    """A title block as the model reads it: names, title and affiliations, without footnote
    marks and e-mail addresses (the Retrieved-chunks panel still shows the text as it is)."""
    text = _EMAIL.sub("", _FOOTNOTE_MARK.sub("", text))
    lines = [re.sub(r" +(?=,)", "", " ".join(line.split())) for line in text.split("\n")]
    # a list of names goes on past a line that ends with a comma: the 0.5B read RAG's last
    # line of authors as all of them
    return re.sub(r",\n+", ", ", re.sub(r"\n{3,}", "\n\n", "\n".join(lines))).strip()


def asks_about_document(question: str) -> bool:
    return bool(_ABOUT_DOCUMENT.search(question))


def opening_chunks(index: Bm25Index, question: str, ranked_docs: list[str],
                   doc_ids: tuple[str, ...], limit: int) -> list[int]:
    """Positions in `index` of the opening chunks of the documents the question is about: those
    whose title or file name shares most of the words it capitalises ("the BERT paper"), else
    those the retrieved chunks came from (`ranked_docs`, best first), at most `limit`."""
    openings = {m["doc_id"]: i for i, m in enumerate(index.metas)
                if int(m["chunk"]) == 0 and (not doc_ids or m["doc_id"] in doc_ids)}
    names = question_terms(" ".join(_NAME.findall(question.strip())))
    shared = {doc: len(names & question_terms(  # "the GAN paper" is 1406.2661_GAN.pdf
        f'{index.metas[i].get("title", "")} {index.metas[i]["file"].replace("_", " ")}'))
        for doc, i in openings.items()}
    most = max(shared.values(), default=0)
    if most:
        named = {doc for doc, n in shared.items() if n == most}
        ranked_docs = [d for d in ranked_docs if d in named] + sorted(named - set(ranked_docs))
    ranked_docs = list(dict.fromkeys(d for d in ranked_docs if d in openings))
    return [openings[doc] for doc in ranked_docs[:limit]]
