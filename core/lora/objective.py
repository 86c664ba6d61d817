"""The training objective, computing the output layer only where the loss is.

With 150k–260k-token vocabularies the output layer over every position is most of a step's time
and memory, yet a classifier's loss lives on a handful of answer tokens. Batches are padded on
the left, so every row's answer sits at the end, and the model is asked for the logits of the
last K positions only (`logits_to_keep`), K being the longest answer in the batch. The loss is
the answer tokens' cross-entropy, or with the label-set loss a classification loss over every
label's whole answer, as label scoring reads them (`objective`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.lora.config import TrainConfig
from core.lora.data import LabelledData
from core.lora.prompts import answer_ids, encode


def encode_split(tokenizer, data: LabelledData, categories: list[str],
                 max_length: int, answers: bool = True) -> list[dict]:
    """Each example as the prompt and its answer; without `answers` (a classification head
    reads the prompt alone) the prompt only, with the whole length for the document."""
    rows = []
    for text, label in zip(data.texts, data.labels):
        enc = encode(tokenizer, text, categories, label if answers else None, max_length)
        rows.append({"input_ids": enc.input_ids, "labels": enc.labels,
                     "truncated": enc.truncated, "label_index": categories.index(label)})
    return rows


def label_tails(answers: list[list[int]]) -> tuple[int, list[list[int]]]:
    """The labels' answers split as classification scores them: the opening they all share
    ('{"label": "') and each label's own tail (its tokens, the closing and the end token)."""
    shared = 0
    while all(len(a) > shared + 1 and a[shared] == answers[0][shared] for a in answers):
        shared += 1
    return shared, [a[shared:] for a in answers]


class LeftPadCollator:
    """Dynamic padding on the left: the answers of a batch all end at its last position.

    With `tails` (each label's answer tail, from label_tails) every row is cut before its own
    tail, so all rows end with the shared opening, and `label_index` names each row's label:
    the batch label_set_loss scores every label's tail after."""

    def __init__(self, pad_id: int, tails: list[list[int]] | None = None):
        self.pad_id = pad_id
        self.tails = tails

    def __call__(self, rows: list[dict]) -> dict:
        extra = {}
        if "label_index" in rows[0]:
            extra["label_index"] = torch.tensor([r["label_index"] for r in rows])
        if self.tails is not None:
            cut = [len(r["input_ids"]) - len(self.tails[r["label_index"]]) for r in rows]
            rows = [{"input_ids": r["input_ids"][:n], "labels": r["labels"][:n]}
                    for r, n in zip(rows, cut)]
        width = max(len(r["input_ids"]) for r in rows)
        ids, labels, mask = [], [], []
        for r in rows:
            pad = width - len(r["input_ids"])
            ids.append([self.pad_id] * pad + r["input_ids"])
            labels.append([-100] * pad + r["labels"])
            mask.append([0] * pad + [1] * len(r["input_ids"]))
        mask_t = torch.tensor(mask)
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "attention_mask": mask_t,
                "position_ids": (mask_t.cumsum(-1) - 1).clamp(min=0), **extra}


def answer_only_loss(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss over the answer tokens, with logits for the positions that predict them only.
    Returns the loss and, per example, whether every answer token was the model's first
    choice (for accuracy)."""
    labels = batch["labels"]
    # position t predicts token t+1. The positions go to the output layer as one flat batch: a
    # [batch, positions, hidden] input made autograd copy the (frozen) output matrix per example.
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != -100
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], logits_to_keep=keep).logits
    logits = logits.reshape(-1, logits.size(-1))
    targets = labels[:, 1:][keep[:, :-1]]
    loss = F.cross_entropy(logits.float(), targets)
    wrong = (logits.argmax(-1) != targets).float()
    example = keep.nonzero()[:, 0]
    right = torch.zeros(len(labels), device=wrong.device).index_add_(0, example, wrong) == 0
    return loss, right.float()


@dataclass
class LabelLoss:
    label: torch.Tensor  # cross-entropy over the label set (mean over the batch)
    tokens: torch.Tensor  # the true answer's tokens, over the whole vocabulary (mean per token)
    scores: torch.Tensor  # [batch, labels]: each label's answer log-likelihood
    predicted: torch.Tensor  # [batch]: the best-scoring label


def label_set_loss(model, batch: dict, tails: list[list[int]]) -> LabelLoss:
    """Classification's own objective. Label scoring (core.lora.classify) picks the label whose whole
    answer is likeliest; here every label's answer is scored the same way after each row, and
    the loss is the cross-entropy of those scores over the label set. The answer-token loss
    spreads over `{"label": "…"}<eos>`, mostly framing the model predicts anyway; this one is
    all about the choice.

    One pass over the rows (which end with the answers' shared opening) keeps their key/value
    cache; the label tails then run as a batch of rows × labels on that cache, gradients
    flowing through it. Only positions that predict an answer token reach the output layer."""
    labels, mask = batch["labels"], batch["attention_mask"]
    rows, n = len(labels), len(tails)
    device = labels.device
    # position t predicts t+1: the shared opening's tokens, and (last position) each tail's first.
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != -100
    keep[:, -1] = True
    out = model(input_ids=batch["input_ids"], attention_mask=mask,
                position_ids=batch["position_ids"], logits_to_keep=keep, use_cache=True)
    logits = out.logits.reshape(rows, -1, out.logits.size(-1)).float()
    opening = logits[:, :-1]
    opening_targets = labels[:, 1:][keep[:, :-1]].view(rows, -1)
    opening_nll = F.cross_entropy(opening.reshape(-1, opening.size(-1)),
                                  opening_targets.reshape(-1), reduction="none").view(rows, -1)
    first = torch.log_softmax(logits[:, -1], -1)[:, [t[0] for t in tails]]  # [rows, labels]
    scores = first
    width = max(len(t) for t in tails) - 1
    if width:
        cache = out.past_key_values
        cache.batch_repeat_interleave(n)  # row-major: row r, label c at r * n + c
        fed = torch.tensor([t[:-1] + [t[0]] * (width + 1 - len(t)) for t in tails],
                           device=device).repeat(rows, 1)
        real = torch.tensor([[i < len(t) - 1 for i in range(width)] for t in tails],
                            device=device).repeat(rows, 1)
        start = mask.sum(-1).repeat_interleave(n)[:, None]
        tail_logits = model(
            input_ids=fed, past_key_values=cache,
            attention_mask=torch.cat([mask.repeat_interleave(n, 0), real.long()], -1),
            position_ids=start + torch.arange(width, device=device),
            logits_to_keep=real).logits
        tail_logits = tail_logits.reshape(-1, tail_logits.size(-1)).float()
        targets = torch.tensor([t[i + 1] for t in tails for i in range(len(t) - 1)],
                               device=device).repeat(rows)
        logp = -F.cross_entropy(tail_logits, targets, reduction="none")
        owner = torch.arange(rows * n, device=device).repeat_interleave(
            real.sum(-1))
        scores = scores + torch.zeros(rows * n, device=device).index_add(
            0, owner, logp).view(rows, n)
    index = batch["label_index"]
    truth = scores[torch.arange(rows, device=device), index]
    answer_tokens = opening_nll.size(1) + torch.tensor([len(tails[i]) for i in index.tolist()],
                                                       device=device)
    tokens = (opening_nll.sum() - truth.sum()) / answer_tokens.sum()
    return LabelLoss(F.cross_entropy(scores, index), tokens, scores.detach(),
                     scores.detach().argmax(-1))


def head_loss(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A classifier adapter's loss: cross-entropy of the head's label logits, read at the
    prompt's last position (the rows are padded on the left, so that is the last column)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"]).logits.float()
    index = batch["label_index"]
    return F.cross_entropy(logits, index), (logits.argmax(-1) == index).float()


def objective(model, batch: dict, tails: list[list[int]] | None,
              label_weight: float, head: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss and, per example, whether it was right. A classifier adapter (`head`)
    has head_loss. Otherwise with `tails` it mixes label_set_loss (share `label_weight`) with
    the answer tokens' loss; without, the answer tokens' loss alone. Training, validation and
    federated evaluation all measure this."""
    if head:
        return head_loss(model, batch)
    if tails is None or "label_index" not in batch:
        return answer_only_loss(model, batch)
    out = label_set_loss(model, batch, tails)
    w = label_weight
    loss = w * out.label + (1 - w) * out.tokens if w < 1 else out.label
    return loss, (out.predicted == batch["label_index"]).float()


def scoring_tails(tokenizer, categories: list[str]) -> list[list[int]]:
    """Each label's answer tail, as label scoring scores them (see label_tails)."""
    return label_tails([answer_ids(tokenizer, c) for c in categories])[1]


def objective_tails(tokenizer, categories: list[str], config: TrainConfig):
    """The labels' answer tails when the run's loss includes the label-set loss, else None."""
    if config.label_loss <= 0 or config.adapter_type == "classifier":
        return None
    return scoring_tails(tokenizer, categories)

