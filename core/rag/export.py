"""A conversation as Markdown, for the Chat page's download and `conversations show`."""

from __future__ import annotations

from core.rag.answer_notes import caveats, search_notes
from core.rag.answers import Answer


def to_markdown(collection: str, answers: list[Answer], title: str = "") -> str:
    """A conversation as Markdown, under its `title`, each answer with what was searched and
    the sources it was given."""
    lines = [f"# {title}", "", f"*A chat with collection `{collection}`*", ""] if title else \
        [f"# Chat with collection `{collection}`", ""]
    for a in answers:
        lines += [f"## Q: {a.question}", ""]
        if notes := search_notes(a.question, a.searched_for, a.searched_in,
                                 a.searched_in_because, a.sources):
            lines += [f"*{notes}*", ""]
        lines += [a.text, ""]
        lines += [line for note in caveats(a) for line in (f"*{note}*", "")]
        if a.no_context is not None:
            lines += ["*The same model without retrieval:*", "", a.no_context, ""]
        if not a.answerable:
            lines += ["*No passage bore on the question; the closest ones:*", ""]
        else:
            how = "inferred by similarity" if a.citations_inferred else "cited by the model"
            lines += [f"*Sources ({how}: {', '.join(f'[{n}]' for n in a.cited) or 'none'}):*",
                      ""]
        for h in a.sources:
            mark = " (cited)" if h.rank in a.cited else ""
            snippet = " ".join(h.text.split())[:300]
            where = f"{h.document} ({h.doc})" if h.title else h.doc
            page = f", page {h.page}" if h.paged else ""
            lines.append(f"- [{h.rank}] {where}{page}, {h.match} match{mark}: {snippet}")
        lines.append("")
    return "\n".join(lines)
