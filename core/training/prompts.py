"""The classification prompt: instruction, the list of valid categories, the document, and the
answer `{"label": "X"}`. The category list is always kept (without it the reference classifier
fell from 98% to ~20% accuracy); only the document is cut to fit the maximum length. Training
and classification build prompts with this one function, so they always agree."""

from __future__ import annotations

import json
from dataclasses import dataclass

INSTRUCTION = "Classify the document into exactly one of the valid categories."
DOC_MARK = "\x00DOCUMENT\x00"  # where the document goes; never occurs in real text
MIN_DOCUMENT_TOKENS = 16


class PromptError(Exception):
    pass


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # -100 everywhere but the answer: loss only on the answer tokens
    prompt_length: int  # tokens before the answer
    truncated: bool


def answer_text(label: str) -> str:
    return json.dumps({"label": label}, ensure_ascii=False)


def prompt_text(categories: list[str]) -> str:
    return (f"{INSTRUCTION}\nValid categories: {', '.join(categories)}\n\n"
            f"Document:\n{DOC_MARK}\n\nAnswer with JSON like {answer_text(categories[0])}.")


def _frame(tokenizer, categories: list[str]) -> tuple[str, str]:
    """The prompt around the document, in the model's chat template when it has one."""
    user = prompt_text(categories)
    if getattr(tokenizer, "chat_template", None):
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": user}],
                                                 tokenize=False, add_generation_prompt=True)
    else:
        rendered = f"{user}\nAnswer: "
    before, after = rendered.split(DOC_MARK)
    return before, after


def encode(tokenizer, text: str, categories: list[str], label: str | None,
           max_length: int) -> Encoded:
    """Token ids for one example; with `label`, the answer and an end token follow."""
    before, after = _frame(tokenizer, categories)
    ids_before = tokenizer(before, add_special_tokens=True)["input_ids"]
    ids_after = tokenizer(after, add_special_tokens=False)["input_ids"]
    answer = []
    if label is not None:
        answer = tokenizer(answer_text(label), add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            answer = answer + [tokenizer.eos_token_id]
    budget = max_length - len(ids_before) - len(ids_after) - len(answer)
    if budget < MIN_DOCUMENT_TOKENS:
        raise PromptError(f"a maximum length of {max_length} tokens leaves no room for the "
                          f"document after the {len(categories)} categories; raise it to at least "
                          f"{max_length - budget + MIN_DOCUMENT_TOKENS}")
    doc = tokenizer(text, add_special_tokens=False)["input_ids"]
    truncated = len(doc) > budget
    prompt = ids_before + doc[:budget] + ids_after
    return Encoded(prompt + answer, [-100] * len(prompt) + answer, len(prompt), truncated)
