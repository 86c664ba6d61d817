"""Classifying a document with a causal LM (an adapter, or the base model alone).

Label scoring, the default: one forward pass over the prompt, then every allowed label's answer
`{"label": "X"}<eos>` is scored on the cached prefix in one batch. The label is always one of the
set and the confidences are the softmax of the answers' log-likelihoods: real probabilities
over the labels. Generate-and-parse, the reference classifier's way, is kept for comparison;
output that does not parse into an allowed label is reported as such, never guessed.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass, field

import torch

from core.training.prompts import answer_ids, encode, render, shots_text

MODES = ("score", "generate")


@dataclass
class Prediction:
    label: str | None  # None only when generate mode's output did not parse
    scores: dict[str, float]  # probability per label (score mode); empty in generate mode
    seconds: float
    truncated: bool  # the document was cut to fit the maximum length
    prompt: str  # what the model read (document uncut)
    mode: str = "score"
    output: str | None = None  # generate mode: the model's raw answer
    error: str | None = None

    def as_dict(self) -> dict:
        return {"label": self.label, "scores": self.scores, "seconds": round(self.seconds, 4),
                "truncated": self.truncated, "mode": self.mode, "output": self.output,
                "error": self.error}


@dataclass
class Classifier:
    model: object
    tokenizer: object
    labels: list[str]
    max_length: int = 512
    name: str = "base model"
    meta: dict = field(default_factory=dict)

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.model, "disable_adapter")

    def _adapter(self, use_adapter: bool):
        if use_adapter or not self.has_adapter:
            return contextlib.nullcontext()
        return self.model.disable_adapter()

    def _prepare(self, text: str, labels: list[str] | None, examples: list[tuple[str, str]]
                 ) -> tuple[list[str], list[list[int]], list[int], bool, str]:
        labels = list(labels or self.labels)
        if len(labels) < 2:
            raise ValueError("classification needs at least two labels")
        answers = [answer_ids(self.tokenizer, label) for label in labels]
        # Room is kept for the answer, as in training, so the document is cut where it was then;
        # few-shot examples get room of their own rather than taking the document's.
        room = self.max_length - max(len(a) for a in answers)
        if examples:
            room += len(self.tokenizer(shots_text(examples), add_special_tokens=False)["input_ids"])
        enc = encode(self.tokenizer, text, labels, None, room, examples)
        return (labels, answers, enc.input_ids, enc.truncated,
                render(self.tokenizer, text, labels, examples))

    @torch.inference_mode()
    def score(self, text: str, labels: list[str] | None = None,
              examples: list[tuple[str, str]] = (), use_adapter: bool = True) -> Prediction:
        started = time.perf_counter()
        labels, answers, prompt, truncated, shown = self._prepare(text, labels, examples)
        # The answers' shared opening ('{"label": "') joins the prompt, so it is computed once.
        shared = 0
        while all(len(a) > shared + 1 and a[shared] == answers[0][shared] for a in answers):
            shared += 1
        prefix = prompt + answers[0][:shared]
        tails = [a[shared:] for a in answers]
        device = self.model.device
        with self._adapter(use_adapter):
            out = self.model(input_ids=torch.tensor([prefix], device=device), use_cache=True,
                             logits_to_keep=1)
            first = torch.log_softmax(out.logits[0, -1].float(), -1)
            cache = out.past_key_values
            cache.batch_repeat_interleave(len(labels))
            width = max(len(t) for t in tails)
            ids = torch.tensor([t + [t[-1]] * (width - len(t)) for t in tails], device=device)
            mask = torch.tensor([[1] * (len(prefix) + len(t)) + [0] * (width - len(t))
                                 for t in tails], device=device)
            positions = torch.arange(len(prefix), len(prefix) + width, device=device)
            logits = self.model(input_ids=ids, attention_mask=mask, past_key_values=cache,
                                position_ids=positions.expand(len(labels), -1)).logits
        logp = torch.log_softmax(logits.float(), -1)
        totals = []
        for row, tail in enumerate(tails):
            # token 0 is predicted by the prefix's last position, token i by tail position i-1
            total = first[tail[0]] + sum(logp[row, i - 1, tail[i]] for i in range(1, len(tail)))
            totals.append(total)
        probs = torch.softmax(torch.stack(totals), 0).tolist()
        scores = dict(zip(labels, probs))
        best = max(scores, key=scores.get)
        return Prediction(best, scores, time.perf_counter() - started, truncated, shown)

    @torch.inference_mode()
    def generate(self, text: str, labels: list[str] | None = None,
                 examples: list[tuple[str, str]] = (), use_adapter: bool = True) -> Prediction:
        started = time.perf_counter()
        labels, answers, prompt, truncated, shown = self._prepare(text, labels, examples)
        budget = max(len(a) for a in answers) + 8
        ids = torch.tensor([prompt], device=self.model.device)
        with self._adapter(use_adapter):
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                      max_new_tokens=budget, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        output = self.tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True).strip()
        label, error = parse_answer(output, labels)
        return Prediction(label, {}, time.perf_counter() - started, truncated, shown,
                          mode="generate", output=output, error=error)

    def classify(self, text: str, mode: str = "score", **kw) -> Prediction:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        return self.score(text, **kw) if mode == "score" else self.generate(text, **kw)


def parse_answer(output: str, labels: list[str]) -> tuple[str | None, str | None]:
    """The label in `{"label": "X"}`, or why there is none. Nothing is guessed."""
    found = re.search(r"\{.*?\}", output, re.S)
    if not found:
        return None, f"the model's answer is not JSON: {output[:80]!r}"
    try:
        label = json.loads(found.group(0)).get("label")
    except (json.JSONDecodeError, AttributeError):
        return None, f"the model's answer does not parse: {found.group(0)[:80]!r}"
    if label not in labels:
        return None, f"the model answered {str(label)[:40]!r}, which is not one of the labels"
    return label, None
