"""The classification prompt: instruction, the list of valid categories, the document, and the
answer `{"label": "X"}`. The category list is always kept (without it the reference classifier
fell from 98% to ~20% accuracy); only the document is cut to fit the maximum length. Training
and classification build prompts with this one function, so they always agree."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import InputError

INSTRUCTION = "Classify the document into exactly one of the valid categories."
DOC_MARK = "\x00DOCUMENT\x00"  # where the document goes; never occurs in real text
MIN_DOCUMENT_TOKENS = 16
EXAMPLE_CHARS = 600  # each few-shot example's document is cut to this, so several fit


class PromptError(InputError):
    pass


_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def plain(text: str) -> str:
    """The document as the model reads it: runs of spaces and tabs as one space, lines
    stripped, never more than one blank line. The same article pasted and uploaded got two
    labels: BBC's texts keep double spaces where punctuation was, which extraction collapses,
    and the tokenizer reads each space."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # -100 everywhere but the answer: loss only on the answer tokens
    prompt_length: int  # tokens before the answer
    truncated: bool
    document_start: int  # tokens before the document: the same for every document of a label set


def answer_text(label: str) -> str:
    return json.dumps({"label": label}, ensure_ascii=False)


def shots_text(examples: Sequence[tuple[str, str]]) -> str:
    if not examples:
        return ""
    shown = "\n\n".join(f"Document:\n{plain(text)[:EXAMPLE_CHARS]}\nAnswer: {answer_text(label)}"
                         for text, label in examples)
    return f"Examples:\n\n{shown}\n\nNow the document to classify.\n"


def answer_ids(tokenizer, label: str) -> list[int]:
    """The answer's tokens and an end token: what training teaches and label scoring scores."""
    ids = tokenizer(answer_text(label), add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else ids


def prompt_text(categories: list[str], examples: Sequence[tuple[str, str]] = ()) -> str:
    return (f"{INSTRUCTION}\nValid categories: {', '.join(categories)}\n\n{shots_text(examples)}"
            f"Document:\n{DOC_MARK}\n\nAnswer with JSON like {answer_text(categories[0])}.")


def render(tokenizer, text: str, categories: list[str],
           examples: Sequence[tuple[str, str]] = ()) -> str:
    """The whole prompt as text (the document uncut), to show a user what the model reads."""
    before, after = _frame(tokenizer, categories, examples)
    return before + plain(text) + after


def _frame(tokenizer, categories: list[str],
           examples: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
    """The prompt around the document, in the model's chat template when it has one."""
    user = prompt_text(categories, examples)
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": user}],
                                                 tokenize=False, add_generation_prompt=True)
    else:
        rendered = f"{user}\nAnswer: "
    before, after = rendered.split(DOC_MARK)
    return before, after


def encode(tokenizer, text: str, categories: list[str], label: str | None,
           max_length: int, examples: Sequence[tuple[str, str]] = ()) -> Encoded:
    """Token ids for one example; with `label`, the answer and an end token follow. Few-shot
    `examples` (text, label) are shown before the document."""
    before, after = _frame(tokenizer, categories, examples)
    ids_before = tokenizer(before, add_special_tokens=True)["input_ids"]
    ids_after = tokenizer(after, add_special_tokens=False)["input_ids"]
    answer = answer_ids(tokenizer, label) if label is not None else []
    budget = max_length - len(ids_before) - len(ids_after) - len(answer)
    if budget < MIN_DOCUMENT_TOKENS:
        raise PromptError(f"a maximum length of {max_length} tokens leaves no room for the "
                          f"document after the {len(categories)} categories"
                          f"{f' and {len(examples)} examples' if examples else ''}; raise it to at least "
                          f"{max_length - budget + MIN_DOCUMENT_TOKENS}")
    doc = tokenizer(plain(text), add_special_tokens=False)["input_ids"]
    truncated = len(doc) > budget
    prompt = ids_before + doc[:budget] + ids_after
    return Encoded(prompt + answer, [-100] * len(prompt) + answer, len(prompt), truncated,
                   len(ids_before))


def document_budget(tokenizer, categories: list[str], max_length: int) -> int:
    """Tokens left for the document once the prompt and the longest answer are in."""
    longest = max(categories, key=lambda c: len(answer_ids(tokenizer, c)))
    frame = encode(tokenizer, "", categories, longest, max_length)
    return max_length - len(frame.input_ids)


def count_truncated(tokenizer, texts: list[str], categories: list[str], max_length: int) -> int:
    """How many texts will be cut to fit `max_length` (the category list never is)."""
    budget = document_budget(tokenizer, categories, max_length)
    lengths = tokenizer([plain(t) for t in texts], add_special_tokens=False)["input_ids"]
    return sum(len(ids) > budget for ids in lengths)
