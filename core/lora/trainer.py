"""LoRA fine-tuning with the HF Trainer and PEFT, computing the output layer only where the
loss is.

With 150k–260k-token vocabularies the output layer over every position is most of a step's time
and memory, yet a classifier's loss lives on a handful of answer tokens. Batches are padded on
the left, so every row's answer sits at the end, and the model is asked for the logits of the
last K positions only (`logits_to_keep`), K being the longest answer in the batch.

Progress goes to `<run>/metrics.jsonl` (one JSON object per log) and `<run>/status.json`,
never to stdout, so a page can follow a run it did not start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from core.lora.adapters import AdapterMeta, publish
from core.lora.config import TrainConfig, lora_config
from core.lora.data import DataError, LabelledData, Split, clean, load, split
from core.lora.prompts import answer_ids, encode
from core.lora.runs import Pace, RunFolder
from core.models import base_fingerprint, load_base


def encode_split(tokenizer, data: LabelledData, categories: list[str],
                 max_length: int) -> list[dict]:
    rows = []
    for text, label in zip(data.texts, data.labels):
        enc = encode(tokenizer, text, categories, label, max_length)
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
        if self.tails is not None:
            extra["label_index"] = torch.tensor([r["label_index"] for r in rows])
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


def objective(model, batch: dict, tails: list[list[int]] | None,
              label_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss and, per example, whether it was right. With `tails` it mixes
    label_set_loss (share `label_weight`) with the answer tokens' loss; without, the answer
    tokens' loss alone. Training, validation and federated evaluation all measure this."""
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
    if config.label_loss <= 0:
        return None
    return scoring_tails(tokenizer, categories)


class AnswerOnlyTrainer(Trainer):
    """The HF Trainer with the Studio's objective (see `objective`). Validation always scores
    every label as classification does, whatever the training loss: its loss is the run's
    objective (label_set_loss's `tokens` is the answer tokens' loss) and its accuracy is label
    scoring's, which early stopping and the best checkpoint follow."""

    tails: list[list[int]] | None = None
    label_weight: float = 1.0
    scoring: LeftPadCollator  # validation's collator, with every label's tail (set by build)

    def _loss(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        return objective(model, inputs, self.tails, self.label_weight)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, right = self._loss(model, inputs)
        return (loss, {"right": right}) if return_outputs else loss

    def get_eval_dataloader(self, eval_dataset=None):
        # HF has one collator for both: validation's is swapped in while its loader is built
        training, self.data_collator = self.data_collator, self.scoring
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = training

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss, right = objective(model, inputs, self.scoring.tails, self.label_weight)
        return loss.detach(), right, right


class RunLog(TrainerCallback):
    """metrics.jsonl and status.json in the run folder, for the page and `runs show`."""

    def __init__(self, run: RunFolder, total_tokens_per_step: float,
                 on_metrics: Callable[[dict], None] | None = None):
        self.run = run
        self.started = time.time()
        self.pace = Pace()
        self.tokens_per_step = total_tokens_per_step
        self.on_metrics = on_metrics
        self.main = True  # under DDP only the first process writes
        self.world_size = 1

    def status(self, **fields) -> None:
        if self.main:
            self.run.update_status(**fields)

    def on_train_begin(self, args, state, control, **kwargs):
        self.main = state.is_world_process_zero
        self.world_size = args.world_size  # every process trains its own share of a step
        self.started = time.time()
        self.pace = Pace(state.global_step)  # a resumed run's pace starts where it resumes
        self.status(state="running", max_steps=state.max_steps, step=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.run.stop_requested():
            # the adapter so far (with early stopping, the best one so far) is still saved
            control.should_training_stop = True
            control.should_save = True
            self.status(state="stopping")

    def on_save(self, args, state, control, **kwargs):
        # HF settles the best validation just before saving: the live chart marks it from here
        if args.load_best_model_at_end and state.best_global_step:
            self.status(best_step=state.best_global_step, best_metric=state.best_metric)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.main:
            return
        elapsed = time.time() - self.started
        step = state.global_step
        row = {"step": step, "epoch": round(state.epoch or 0, 3), "time": round(elapsed, 2)}
        tracked = {k: logs[k] for k in ("loss", "learning_rate", "grad_norm", "eval_loss",
                                        "eval_accuracy") if logs and k in logs}
        if not tracked:
            return  # the closing summary: nothing for the curves
        row.update(tracked)
        if step:
            row["tokens_per_s"] = round(step * self.tokens_per_step * self.world_size / elapsed, 1)
        self.pace.add(step, elapsed)
        eta = self.pace.eta(state.max_steps)
        if eta:
            row["eta_s"], row["eta_steps"] = eta
        self.run.append_metrics(row)
        if self.on_metrics:
            self.on_metrics(row)
        self.status(step=step, max_steps=state.max_steps, eta_s=row.get("eta_s"),
                    eta_steps=row.get("eta_steps"))


class StepTimer(TrainerCallback):
    """Seconds per optimiser step, for the calibration."""

    def __init__(self, times: list[float]):
        self.times = times
        self.last = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self.last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.last)


def _accuracy(eval_pred) -> dict:
    right = eval_pred.predictions
    return {"accuracy": float(right.mean())}


def prepare_data(config: TrainConfig) -> tuple[Split, list[str]]:
    data, findings = clean(load(Path(config.data), config.text_col, config.label_col))
    errors = [f.message for f in findings if f.level == "error"]
    if errors:
        raise DataError(f"{Path(config.data).name}: " + "; ".join(errors))
    train_share, validation_share, test_share = config.split
    parts = split(data, (train_share, validation_share, test_share), config.seed)
    return parts, data.label_set


@dataclass
class Session:
    """Everything a training run needs, built once: the calibration reuses it for a few steps."""
    trainer: AnswerOnlyTrainer
    model: Any
    tokenizer: Any
    parts: Split
    categories: list[str]
    log: RunLog


def build(config: TrainConfig, run_dir: Path, models_dir: Path,
          on_metrics: Callable[[dict], None] | None = None,
          data: tuple[Split, list[str]] | None = None) -> Session:
    """`data` (split, categories) replaces reading config.data: a federated client trains its
    own shard."""
    from peft import get_peft_model

    run = RunFolder(Path(run_dir))
    run.path.mkdir(parents=True, exist_ok=True)
    config.save(run.config_path)
    torch.manual_seed(config.seed)
    parts, categories = data or prepare_data(config)
    model, tokenizer = load_base(config.base, models_dir)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = get_peft_model(model, lora_config(config))
    train_rows = encode_split(tokenizer, parts.train, categories, config.max_length)
    val_rows = encode_split(tokenizer, parts.validation, categories, config.max_length)
    tokens_per_step = (sum(len(r["input_ids"]) for r in train_rows) / len(train_rows)
                       * config.batch_size * config.grad_accum)
    log = RunLog(run, tokens_per_step, on_metrics)
    callbacks: list[TrainerCallback] = [log]
    early = config.early_stopping_patience > 0
    if early:
        callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
    args = TrainingArguments(
        output_dir=str(run.checkpoints), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate, num_train_epochs=config.epochs,
        max_steps=config.max_steps, logging_steps=1,
        eval_strategy="steps" if config.eval_steps > 0 else "no", eval_steps=config.eval_steps or None,
        save_strategy="steps" if config.save_steps > 0 else "no", save_steps=config.save_steps or 500,
        save_total_limit=2, report_to=[], seed=config.seed, remove_unused_columns=False,
        # the best checkpoint outlives the rotation and is loaded at the end, to be published;
        # a resumed run keeps counting validations without improvement where it left off
        load_best_model_at_end=early, metric_for_best_model=config.best_metric if early else None,
        greater_is_better=config.best_metric == "accuracy" if early else None,
        restore_callback_states_from_checkpoint=early,
        train_sampling_strategy="group_by_length", disable_tqdm=True,
        bf16=model.dtype == torch.bfloat16, use_cpu=not torch.cuda.is_available())
    tails = objective_tails(tokenizer, categories, config)
    trainer = AnswerOnlyTrainer(model=model, args=args, train_dataset=train_rows,
                                eval_dataset=val_rows, data_collator=LeftPadCollator(
                                    tokenizer.pad_token_id, tails), compute_metrics=_accuracy,
                                callbacks=callbacks)
    trainer.tails, trainer.label_weight = tails, config.label_loss
    trainer.scoring = LeftPadCollator(tokenizer.pad_token_id,
                                      scoring_tails(tokenizer, categories))
    trainer.remove_callback(PrinterCallback)  # progress goes to the run folder, not stdout
    return Session(trainer, model, tokenizer, parts, categories, log)


def train(config: TrainConfig, run_dir: Path, models_dir: Path, resume: bool = False,
          on_metrics: Callable[[dict], None] | None = None) -> Path:
    """Train (evaluating on the validation split as it goes), save the adapter, then compare it
    on the test split with the base model alone and an embedding baseline, and publish it to
    `<models>/adapters/<name>`; return that path."""
    session = build(config, run_dir, models_dir, on_metrics)
    trainer, model, tokenizer = session.trainer, session.model, session.tokenizer
    parts, categories, log = session.parts, session.categories, session.log
    run = log.run
    started = time.time()
    checkpoint = run.last_checkpoint() if resume else None
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    training_seconds = round(time.time() - started, 1)
    stopped = run.stop_requested()
    if not trainer.is_world_process_zero():
        return run.adapter  # under DDP one process saves and evaluates
    # None when no validation came before the end (a stop request): then the last is published
    best_step = ((trainer.state.best_global_step or None)
                 if trainer.args.load_best_model_at_end else None)
    log.status(stop_reason=stop_reason(trainer, config, stopped), best_step=best_step)
    # With early stopping the Trainer has loaded the best checkpoint's weights: those are saved.
    # The tokenizer is the base model's: loaded from there.
    model.save_pretrained(run.adapter)
    meta = AdapterMeta(
        name=config.name, base=config.base, base_sha256=base_fingerprint(config.base, models_dir),
        labels=categories, dataset=parts.train.source, dataset_sha256=parts.fingerprint,
        split={"ratios": list(parts.ratios), "seed": parts.seed, "sizes": parts.sizes},
        config=asdict(config), training_seconds=training_seconds,
        steps=trainer.state.global_step, best_step=best_step, created=time.time())
    log.status(state="evaluating", evaluating="starting")
    meta.evaluation = evaluate_adapter(model, tokenizer, parts, categories, config, models_dir,
                                       log)
    run.write_evaluation(meta.evaluation)
    meta.write(run.adapter)
    published = publish(run.adapter, models_dir, config.name)
    # Last: whoever sees "finished" finds the adapter in the library.
    log.status(state="stopped" if stopped else "finished", adapter=str(published))
    return published


def stop_reason(trainer: Trainer, config: TrainConfig, stopped_by_user: bool) -> str:
    """Why training ended, in a sentence for the run's status and summary."""
    state = trainer.state
    best = (f"; best step {state.best_global_step}"
            if trainer.args.load_best_model_at_end and state.best_global_step else "")
    if stopped_by_user:
        return f"stopped on request at step {state.global_step}{best}"
    early = next((c for c in trainer.callback_handler.callbacks
                  if isinstance(c, EarlyStoppingCallback)), None)
    if early and early.early_stopping_patience_counter >= early.early_stopping_patience:
        return (f"early stopping: no improvement in validation {config.best_metric} for "
                f"{early.early_stopping_patience} evaluations at step {state.global_step}{best}")
    return f"finished all {state.global_step} steps{best}"


def evaluate_adapter(model, tokenizer, parts: Split, categories: list[str], config: TrainConfig,
                     models_dir: Path, log: RunLog) -> dict:
    from core.lora.classify import Classifier
    from core.lora.evaluate import compare
    from core.rag.embeddings import default_embedder

    def progress(what: str, done: int, total: int) -> None:
        log.status(evaluating=f"{what} {done}/{total}")

    model.eval()
    classifier = Classifier(model, tokenizer, categories, config.max_length, config.name)
    return compare(classifier, parts.train, parts.test, default_embedder(models_dir), progress)
