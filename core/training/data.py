"""Labelled data for classification: loading with column mapping, checks in plain words, and a
stratified train/validation/test split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


class DataError(Exception):
    """The data cannot be used, and why (naming the file and column)."""


@dataclass(frozen=True)
class DataLimits:
    max_labels: int = 50
    min_per_label: int = 3  # one each for train, validation and test
    max_rows: int = 100_000
    max_text_chars: int = 200_000


@dataclass
class LabelledData:
    texts: list[str]
    labels: list[str]
    source: str = ""

    @property
    def label_set(self) -> list[str]:
        return sorted(set(self.labels))

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for text, label in zip(self.texts, self.labels):
            h.update(label.encode() + b"\x1f" + text.encode() + b"\x1e")
        return h.hexdigest()

    def subset(self, indices: list[int]) -> "LabelledData":
        return LabelledData([self.texts[i] for i in indices], [self.labels[i] for i in indices],
                            self.source)


@dataclass
class Finding:
    level: str  # "error" stops training; "warning" is worth knowing
    message: str


@dataclass
class Split:
    train: LabelledData
    validation: LabelledData
    test: LabelledData
    ratios: tuple[float, float, float]
    seed: int
    sizes: dict = field(default_factory=dict)
    fingerprint: str = ""  # of the whole cleaned dataset, before splitting


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: not a readable {path.suffix.lstrip('.').upper()} file "
                        f"({exc})") from exc
    raise DataError(f"{path.name}: use a .csv or .jsonl file")


def from_table(frame: pd.DataFrame, text_col: str, label_col: str, source: str,
               limits: DataLimits = DataLimits()) -> LabelledData:
    for col in (text_col, label_col):
        if col not in frame.columns:
            raise DataError(f"{source}: no column {col!r} (columns: {', '.join(map(str, frame.columns))})")
    if len(frame) > limits.max_rows:
        raise DataError(f"{source}: {len(frame):,} rows is over the limit of {limits.max_rows:,}")
    texts = frame[text_col].fillna("").astype(str).str.strip().tolist()
    labels = frame[label_col].fillna("").astype(str).str.strip().tolist()
    return LabelledData(texts, labels, source)


def load(path: Path, text_col: str, label_col: str,
         limits: DataLimits = DataLimits()) -> LabelledData:
    return from_table(read_table(path), text_col, label_col, Path(path).name, limits)


def clean(data: LabelledData, limits: DataLimits = DataLimits()) -> tuple[LabelledData, list[Finding]]:
    """Drop what cannot be trained on, say what was dropped, and refuse what cannot work."""
    findings: list[Finding] = []
    keep = [i for i, (t, l) in enumerate(zip(data.texts, data.labels)) if t and l]
    if len(keep) < len(data.texts):
        findings.append(Finding("warning", f"{len(data.texts) - len(keep)} row(s) with an empty "
                                           "text or label were left out"))
    seen, unique = {}, []
    conflicts = 0
    for i in keep:
        text = data.texts[i]
        if text in seen:
            conflicts += data.labels[seen[text]] != data.labels[i]
            continue
        seen[text] = i
        unique.append(i)
    if len(unique) < len(keep):
        findings.append(Finding("warning", f"{len(keep) - len(unique)} duplicate text(s) were left "
                                           f"out" + (f", {conflicts} of them with a different label"
                                                     if conflicts else "")))
    long = sum(1 for i in unique if len(data.texts[i]) > limits.max_text_chars)
    if long:
        findings.append(Finding("warning", f"{long} text(s) are longer than "
                                           f"{limits.max_text_chars:,} characters and were cut"))
    out = LabelledData([data.texts[i][:limits.max_text_chars] for i in unique],
                       [data.labels[i] for i in unique], data.source)
    counts = pd.Series(out.labels).value_counts()
    if len(counts) < 2:
        findings.append(Finding("error", "at least two different labels are needed"))
    if len(counts) > limits.max_labels:
        findings.append(Finding("error", f"{len(counts)} labels is over the limit of "
                                         f"{limits.max_labels}"))
    rare = counts[counts < limits.min_per_label]
    if len(rare):
        names = ", ".join(f"{k} ({v})" for k, v in rare.items())
        findings.append(Finding("error", f"labels with fewer than {limits.min_per_label} examples "
                                         f"cannot be split for training and testing: {names}"))
    return out, findings


def split(data: LabelledData, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
          seed: int = 42) -> Split:
    """Stratified: every label keeps its share in each part, and has at least one example in
    each."""
    from sklearn.model_selection import train_test_split

    if abs(sum(ratios) - 1) > 1e-6 or min(ratios) <= 0:
        raise DataError(f"split ratios must be positive and add up to 1, got {ratios}")
    indices = list(range(len(data.texts)))
    n_labels = len(data.label_set)
    held = max(round(len(indices) * (ratios[1] + ratios[2])), 2 * n_labels)
    if held >= len(indices):
        raise DataError(f"{len(indices)} examples are too few to split {n_labels} labels "
                        "three ways")
    try:
        train, rest = train_test_split(indices, test_size=held, random_state=seed,
                                       stratify=data.labels)
        test_share = ratios[2] / (ratios[1] + ratios[2])
        rest_labels = [data.labels[i] for i in rest]
        n_test = min(max(round(len(rest) * test_share), n_labels), len(rest) - n_labels)
        validation, test = train_test_split(rest, test_size=n_test, random_state=seed,
                                            stratify=rest_labels)
    except ValueError as exc:  # a label too rare to appear in every part
        raise DataError(f"cannot split so that every label is in train, validation and test "
                        f"({exc}); add examples of the rarest labels or give the held-out "
                        "parts a larger share") from exc
    parts = Split(data.subset(sorted(train)), data.subset(sorted(validation)),
                  data.subset(sorted(test)), ratios, seed, fingerprint=data.fingerprint())
    parts.sizes = {"train": len(train), "validation": len(validation), "test": len(test)}
    return parts
