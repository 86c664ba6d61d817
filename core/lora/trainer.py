"""LoRA fine-tuning with the HF Trainer and PEFT, on the Studio's objective (core.lora.objective:
the output layer computed only where the loss is).

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
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from core.lora.adapters import AdapterMeta, publish
from core.lora.config import TrainConfig, lora_config
from core.lora.data import DataError, Split, clean, load, split
from core.lora.objective import (
    LeftPadCollator,
    encode_split,
    objective,
    objective_tails,
    scoring_tails,
)
from core.lora.runs import TIME_LIMIT, Cancelled, Pace, RunFolder
from core.models import base_fingerprint, load_base


class AnswerOnlyTrainer(Trainer):
    """The HF Trainer with the Studio's objective (see `objective`). Validation always scores
    every label as classification does, whatever the training loss: its loss is the run's
    objective (label_set_loss's `tokens` is the answer tokens' loss) and its accuracy is label
    scoring's, which early stopping and the best checkpoint follow."""

    tails: list[list[int]] | None = None
    label_weight: float = 1.0
    head: bool = False  # a classifier adapter: the head's loss (objective.head_loss)
    scoring: LeftPadCollator  # validation's collator, with every label's tail (set by build)

    def _loss(self, model, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        return objective(model, inputs, self.tails, self.label_weight, self.head)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, right = self._loss(model, inputs)
        return (loss, {"right": right}) if return_outputs else loss

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        # under a time limit the last step moves as the pace is measured: the learning rate
        # decays linearly (HF's default schedule) to zero at whatever state.max_steps says now
        if self.lr_scheduler is None and any(isinstance(c, TimeLimit)
                                             for c in self.callback_handler.callbacks):
            optimizer = optimizer or self.optimizer
            assert optimizer is not None  # HF makes it before the scheduler
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: max(0.0, 1.0 - step / max(1, self.state.max_steps)))
            self._created_lr_scheduler = True  # made anew by the next train(), as HF's is
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

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
            loss, right = objective(model, inputs, self.scoring.tails, self.label_weight,
                                    self.head)
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
        # planned_steps stays; max_steps may move under a time limit (TimeLimit)
        self.status(state="running", max_steps=state.max_steps, planned_steps=state.max_steps,
                    step=state.global_step)

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


class TimeLimit(TrainerCallback):
    """Ends training within `minutes` of its start (or of its resumption): after a few steps
    the pace so far, validations included, says how many steps fit, and the run's last step
    (state.max_steps, which the ETA and the learning-rate schedule read) moves there."""

    MEASURED_STEPS = 3  # the first step also warms up: a few make a fair pace

    def __init__(self, minutes: float, clock: Callable[[], float] = time.perf_counter):
        self.seconds, self.clock = minutes * 60, clock
        self.started, self.first, self.planned = 0.0, 0, 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started, self.first, self.planned = self.clock(), state.global_step, state.max_steps

    def on_step_end(self, args, state, control, **kwargs):
        done = state.global_step - self.first
        if done < self.MEASURED_STEPS:
            return
        elapsed = self.clock() - self.started
        fit = state.global_step + int((self.seconds - elapsed) / (elapsed / done))
        state.max_steps = max(state.global_step, min(self.planned, fit))
        if state.global_step >= state.max_steps:
            control.should_training_stop = True


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
    head = config.adapter_type == "classifier"
    model, tokenizer = load_base(config.base, models_dir, head_labels=categories if head else None)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = get_peft_model(model, lora_config(config))
    train_rows = encode_split(tokenizer, parts.train, categories, config.max_length, not head)
    val_rows = encode_split(tokenizer, parts.validation, categories, config.max_length, not head)
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
    if config.max_minutes and args.world_size == 1:  # ranks that planned apart would hang
        callbacks.append(TimeLimit(config.max_minutes))
    tails = objective_tails(tokenizer, categories, config)
    trainer = AnswerOnlyTrainer(model=model, args=args, train_dataset=train_rows,
                                eval_dataset=val_rows, data_collator=LeftPadCollator(
                                    tokenizer.pad_token_id, tails), compute_metrics=_accuracy,
                                callbacks=callbacks)
    trainer.tails, trainer.label_weight, trainer.head = tails, config.label_loss, head
    trainer.scoring = LeftPadCollator(tokenizer.pad_token_id,
                                      None if head else scoring_tails(tokenizer, categories))
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
    if run.stop_requested():  # while the model loaded: not worth a step, a save and a test
        raise Cancelled(f"run {config.name!r} was cancelled before its first step")
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
        steps=trainer.state.global_step, best_step=best_step, created=time.time(),
        adapter_type=config.adapter_type)
    log.status(state="evaluating", evaluating="starting")
    meta.evaluation = evaluate_adapter(model, tokenizer, parts, categories, config, models_dir,
                                       log, run.adapter)
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
    limit = next((c for c in trainer.callback_handler.callbacks if isinstance(c, TimeLimit)),
                 None)
    if limit and state.global_step < limit.planned:
        return (f"{TIME_LIMIT}{config.max_minutes:g} minutes allowed {state.global_step} of "
                f"{limit.planned} steps{best}")
    return f"finished all {state.global_step} steps{best}"


def trained_classifiers(model, tokenizer, categories: list[str], config: TrainConfig,
                        models_dir: Path):
    """(the trained adapter's classifier, the base model's zero-shot classifier). A classifier
    adapter's head is new, so without the adapter it knows nothing: zero-shot is the base
    model's own label scoring, loaded beside it."""
    from core.lora.classify import Classifier, HeadClassifier

    model.eval()
    if config.adapter_type != "classifier":
        classifier = Classifier(model, tokenizer, categories, config.max_length, config.name)
        return classifier, classifier
    base, _ = load_base(config.base, models_dir)
    return (HeadClassifier(model, tokenizer, categories, config.max_length, config.name),
            Classifier(base.eval(), tokenizer, categories, config.max_length, config.base))


def evaluate_adapter(model, tokenizer, parts: Split, categories: list[str], config: TrainConfig,
                     models_dir: Path, log: RunLog, folder: Path) -> dict:
    """The test-split comparison (core.lora.evaluate.compare); the documents' vectors it embeds
    for the baselines also become the adapter's profile in `folder` (core.lora.familiarity)."""
    from core.lora import familiarity
    from core.lora.evaluate import RememberingEmbedder, compare
    from core.rag.embeddings import default_embedder

    def progress(what: str, done: int, total: int) -> None:
        log.status(evaluating=f"{what} {done}/{total}")

    classifier, zero_shot = trained_classifiers(model, tokenizer, categories, config, models_dir)
    embedder = RememberingEmbedder(default_embedder(models_dir))
    evaluation = compare(classifier, parts.train, parts.test, embedder, progress, zero_shot)
    if len(parts.train.texts) >= familiarity.MIN_DOCUMENTS:
        log.status(evaluating="profiling the training documents")
        familiarity.save(familiarity.of_split(parts.train.texts,
                                              parts.validation.texts + parts.test.texts,
                                              embedder.embed, embedder.model_name), folder)
    return evaluation
