"""Classifying a document with a causal LM (an adapter, or the base model alone).

Label scoring, the default: one forward pass over the prompt, then every allowed label's answer
`{"label": "X"}<eos>` is scored on the cached prefix in one batch. The label is always one of the
set and the confidences are the softmax of the answers' log-likelihoods: real probabilities
over the labels. Generate-and-parse, the reference classifier's way, is kept for comparison;
output that does not parse into an allowed label is reported as such, never guessed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from core.errors import InputError
from core.lora.familiarity import Embed, Likeness, Profile
from core.lora.objective import LeftPadCollator
from core.lora.prompts import answer_ids, encode, render, shots_text

MODES = ("score", "generate")
MAX_GROUP = 8  # documents per forward pass: more gains nothing on a CPU
MAX_LABEL_POSITIONS = 192  # rows of vocabulary-wide logits in one label step (~200 MB for 262k)


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
    likeness: Likeness | None = None  # to the adapter's training documents, where it keeps them

    @property
    def unlike(self) -> bool:
        """Unlike the adapter's training documents, so its label is a guess (False where the
        adapter keeps none to compare with)."""
        return self.likeness is not None and not self.likeness.familiar

    def label_at(self, threshold: float) -> str | None:
        """The label, or None when its probability is under `threshold` (score mode; generate
        mode has no probabilities to hold it to)."""
        return label_or_none(self.scores, threshold) if self.scores else self.label

    def as_dict(self) -> dict:
        return {"label": self.label, "scores": self.scores, "seconds": round(self.seconds, 4),
                "truncated": self.truncated, "mode": self.mode, "output": self.output,
                "error": self.error,
                "likeness": self.likeness.as_dict() if self.likeness else None}


@dataclass
class Classifier:
    model: Any  # a transformers causal LM, with or without a PEFT adapter
    tokenizer: Any
    labels: list[str]
    max_length: int = 512
    name: str = "base model"
    meta: dict = field(default_factory=dict)
    profile: Profile | None = None  # its training documents (core.lora.familiarity)
    embed: Embed | None = None  # the embedding model that made the profile's vectors

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.model, "disable_adapter")

    def _with_likeness(self, texts: list[str], predictions: list[Prediction],
                       use_adapter: bool) -> list[Prediction]:
        """Each prediction told how like the adapter's training documents its text is (the
        base model alone has none to be like)."""
        if self.profile is None or self.embed is None or not use_adapter:
            return predictions
        for prediction, likeness in zip(predictions, self.profile.check(texts, self.embed)):
            prediction.likeness = likeness
        return predictions

    def _adapter(self, use_adapter: bool):
        if use_adapter or not self.has_adapter:
            return contextlib.nullcontext()
        return self.model.disable_adapter()

    def _answers(self, labels: list[str] | None, examples: Sequence[tuple[str, str]]
                 ) -> tuple[list[str], list[list[int]], int]:
        """The labels, each label's answer tokens, and the prompt's room in tokens."""
        labels = list(labels or self.labels)
        if len(labels) < 2:
            raise InputError("classification needs at least two labels")
        answers = [answer_ids(self.tokenizer, label) for label in labels]
        # Room is kept for the answer, as in training, so the document is cut where it was then;
        # few-shot examples get room of their own rather than taking the document's.
        room = self.max_length - max(len(a) for a in answers)
        if examples:
            room += len(self.tokenizer(shots_text(examples), add_special_tokens=False)["input_ids"])
        return labels, answers, room

    def score(self, text: str, labels: list[str] | None = None,
              examples: Sequence[tuple[str, str]] = (), use_adapter: bool = True) -> Prediction:
        return self.score_many([text], labels, examples, use_adapter)[0]

    @torch.inference_mode()
    def score_many(self, texts: list[str], labels: list[str] | None = None,
                   examples: Sequence[tuple[str, str]] = (), use_adapter: bool = True,
                   on_progress: Callable[[int, int], None] | None = None) -> list[Prediction]:
        """Label scoring for many documents. The prompt before the document (instruction,
        categories, examples) is the same for all, so it is computed once; documents of similar
        length share forward passes. `seconds` is each document's share of the time."""
        started = time.perf_counter()
        labels, answers, room = self._answers(labels, examples)
        encoded = [encode(self.tokenizer, text, labels, None, room, examples) for text in texts]
        if not encoded:
            return []
        # The answers' shared opening ('{"label": "') joins each document, so it is computed
        # once per document rather than once per label.
        shared = 0
        while all(len(a) > shared + 1 and a[shared] == answers[0][shared] for a in answers):
            shared += 1
        tails = [a[shared:] for a in answers]
        start = encoded[0].document_start
        suffixes = [e.input_ids[start:] + answers[0][:shared] for e in encoded]
        predictions: list[Prediction | None] = [None] * len(texts)
        with self._adapter(use_adapter):
            prefix = self.model.get_decoder()(
                input_ids=torch.tensor([encoded[0].input_ids[:start]], device=self.model.device),
                use_cache=True).past_key_values
            overhead = (time.perf_counter() - started) / len(texts)
            for group in self._groups(start, suffixes, tails):
                group_started = time.perf_counter()
                totals = self._score_group(copy.deepcopy(prefix), start,
                                           [suffixes[i] for i in group], tails)
                seconds = overhead + (time.perf_counter() - group_started) / len(group)
                for i, probs in zip(group, torch.softmax(totals, -1).tolist()):
                    scores = dict(zip(labels, probs))
                    predictions[i] = Prediction(
                        max(scores, key=lambda label: scores[label]), scores, seconds, encoded[i].truncated,
                        render(self.tokenizer, texts[i], labels, examples))
                if on_progress:
                    on_progress(sum(p is not None for p in predictions), len(texts))
        # every slot was filled
        return self._with_likeness(texts, [p for p in predictions if p is not None], use_adapter)

    def _groups(self, prefix: int, suffixes: list[list[int]], tails: list[list[int]]
                ) -> list[list[int]]:
        """Documents that share a forward pass: similar lengths (sorted), few enough that the
        label step's logits stay small. Padding sits between a document and its answer, which
        moves cache slots away from positions; sliding-window attention counts slots, so
        documents of different lengths share a pass only when everything fits in the window."""
        per_document = sum(len(t) - 1 for t in tails)
        size = max(1, min(MAX_GROUP, MAX_LABEL_POSITIONS // max(per_document, 1)))
        window = getattr(self.model.config, "sliding_window", None) or float("inf")
        tail_width = max(len(t) for t in tails)
        groups: list[list[int]] = []
        for i in sorted(range(len(suffixes)), key=lambda i: -len(suffixes[i])):
            group = groups[-1] if groups else []
            fits = bool(group) and len(group) < size and (
                len(suffixes[group[0]]) == len(suffixes[i])
                or prefix + len(suffixes[group[0]]) + tail_width <= window)
            if fits:
                group.append(i)
            else:
                groups.append([i])
        return groups

    def _score_group(self, cache, prefix: int, suffixes: list[list[int]],
                     tails: list[list[int]]) -> torch.Tensor:
        """Log-likelihood of every label's answer after each document: [documents, labels]."""
        device = self.model.device
        docs, n = len(suffixes), len(tails)
        lengths = [len(s) for s in suffixes]
        width = max(lengths)
        mask = [[1] * (prefix + length) + [0] * (width - length) for length in lengths]
        cache.batch_repeat_interleave(docs)
        out = self.model(
            input_ids=torch.tensor([s + [s[-1]] * (width - len(s)) for s in suffixes],
                                   device=device),
            attention_mask=torch.tensor(mask, device=device), past_key_values=cache,
            position_ids=torch.arange(prefix, prefix + width, device=device).expand(docs, -1),
            logits_to_keep=torch.tensor([[length - 1] for length in lengths], device=device))
        first = torch.log_softmax(out.logits[:, 0].float(), -1)
        # token 0 of a tail is predicted by the document's last position, token i by tail
        # position i-1: only those positions go through the output layer.
        firsts = first[torch.arange(docs, device=device).repeat_interleave(n),
                       torch.tensor([t[0] for t in tails] * docs, device=device)]
        rows = tails * docs  # document-major, as batch_repeat_interleave lays out the cache
        targets = [t[i + 1] for t in rows for i in range(len(t) - 1)]
        if not targets:
            return firsts.view(docs, n)
        cache = out.past_key_values
        cache.batch_repeat_interleave(n)
        tail_width = max(len(t) for t in tails)
        logits = self.model(
            input_ids=torch.tensor([t + [t[-1]] * (tail_width - len(t)) for t in rows],
                                   device=device),
            attention_mask=torch.tensor([mask[r // n] + [1] * len(t) + [0] * (tail_width - len(t))
                                         for r, t in enumerate(rows)], device=device),
            past_key_values=cache,
            position_ids=torch.tensor([[prefix + lengths[r // n] + i for i in range(tail_width)]
                                       for r in range(len(rows))], device=device),
            logits_to_keep=torch.tensor([[i < len(t) - 1 for i in range(tail_width)]
                                         for t in rows], device=device)).logits
        logits = logits.reshape(-1, logits.shape[-1]).float()
        picked = logits[torch.arange(len(targets), device=device),
                        torch.tensor(targets, device=device)]
        token_logp = picked - torch.logsumexp(logits, -1)
        owner = torch.tensor([r for r, t in enumerate(rows) for _ in range(len(t) - 1)],
                             device=device)
        totals = torch.zeros(len(rows), device=device).index_add_(0, owner, token_logp)
        return (totals + firsts).view(docs, n)

    @torch.inference_mode()
    def generate(self, text: str, labels: list[str] | None = None,
                 examples: Sequence[tuple[str, str]] = (), use_adapter: bool = True) -> Prediction:
        started = time.perf_counter()
        labels, answers, room = self._answers(labels, examples)
        encoded = encode(self.tokenizer, text, labels, None, room, examples)
        prompt = encoded.input_ids
        budget = max(len(a) for a in answers) + 8
        ids = torch.tensor([prompt], device=self.model.device)
        with self._adapter(use_adapter):
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                      max_new_tokens=budget, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        output = self.tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True).strip()
        label, error = parse_answer(output, labels)
        prediction = Prediction(label, {}, time.perf_counter() - started, encoded.truncated,
                                render(self.tokenizer, text, labels, examples), mode="generate",
                                output=output, error=error)
        return self._with_likeness([text], [prediction], use_adapter)[0]

    def classify(self, text: str, mode: str = "score", **kw) -> Prediction:
        return self.classify_many([text], mode, **kw)[0]

    def classify_many(self, texts: list[str], mode: str = "score",
                      on_progress: Callable[[int, int], None] | None = None,
                      **kw) -> list[Prediction]:
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "score":
            return self.score_many(texts, on_progress=on_progress, **kw)
        predictions = []
        for text in texts:
            predictions.append(self.generate(text, **kw))
            if on_progress:
                on_progress(len(predictions), len(texts))
        return predictions


class HeadClassifier(Classifier):
    """A classifier adapter (PEFT SEQ_CLS): the model reads the same prompt, and its head gives
    one logit per label at the prompt's last position; the probabilities are their softmax.
    Its labels are the ones it was trained on, so label subsets, few-shot examples, generate
    mode and "without the adapter" (a new head knows nothing) are refused, each with a message."""

    def _check(self, labels: list[str] | None, examples: Sequence[tuple[str, str]],
               use_adapter: bool) -> None:
        if examples:
            raise InputError(f"{self.name} is a classifier adapter: few-shot examples need a "
                             "generative adapter")
        if labels is not None and list(labels) != list(self.labels):
            raise InputError(f"{self.name} is a classifier adapter: it knows only the labels it "
                             f"was trained on ({', '.join(self.labels)})")
        if not use_adapter:
            raise InputError(f"{self.name} is a classifier adapter: its head is part of it, so "
                             "there is no reading without it (zero-shot is the base model's)")

    @torch.inference_mode()
    def score_many(self, texts: list[str], labels: list[str] | None = None,
                   examples: Sequence[tuple[str, str]] = (), use_adapter: bool = True,
                   on_progress: Callable[[int, int], None] | None = None) -> list[Prediction]:
        self._check(labels, examples, use_adapter)
        if len(self.labels) < 2:
            raise InputError("classification needs at least two labels")
        encoded = [encode(self.tokenizer, text, self.labels, None, self.max_length)
                   for text in texts]
        predictions: list[Prediction | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i].input_ids))
        pad = LeftPadCollator(self.tokenizer.pad_token_id)  # as the head was trained
        for start in range(0, len(order), MAX_GROUP):
            group_started = time.perf_counter()
            group = order[start:start + MAX_GROUP]
            batch = pad([{"input_ids": encoded[i].input_ids, "labels": encoded[i].labels}
                         for i in group])
            logits = self.model(**{key: batch[key].to(self.model.device) for key in
                                   ("input_ids", "attention_mask", "position_ids")}).logits
            seconds = (time.perf_counter() - group_started) / len(group)
            for i, probs in zip(group, torch.softmax(logits.float(), -1).tolist()):
                scores = dict(zip(self.labels, probs))
                predictions[i] = Prediction(
                    max(scores, key=lambda label: scores[label]), scores, seconds,
                    encoded[i].truncated, render(self.tokenizer, texts[i], self.labels))
            if on_progress:
                on_progress(sum(p is not None for p in predictions), len(texts))
        return self._with_likeness(texts, [p for p in predictions if p is not None], True)

    def generate(self, text: str, labels: list[str] | None = None,
                 examples: Sequence[tuple[str, str]] = (), use_adapter: bool = True) -> Prediction:
        raise InputError(f"{self.name} is a classifier adapter: it gives label probabilities, "
                         "it does not write; use score mode")


def label_or_none(scores: dict[str, float], threshold: float) -> str | None:
    """The likeliest label, or None ("none of these") when even it is less likely than
    `threshold`. Scoring always spreads the probability over the given labels, so a document
    that fits none of them still gets one; a low top probability is the sign of that."""
    if not scores:
        return None
    best = max(scores, key=lambda label: scores[label])
    return best if scores[best] >= threshold else None


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
