"""Labelled data for classification: loading with column mapping, checks in plain words, and a
stratified train/validation/test split."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError

if TYPE_CHECKING:  # pandas loads on first use: the CLI builds its flags from settings here
    import pandas as pd


class DataError(InputError):
    """The data cannot be used, and why (naming the file and column)."""


@dataclass(frozen=True)
class DataLimits:
    max_labels: int = 50
    min_per_label: int = 3  # one each for train, validation and test
    max_rows: int = 100_000
    max_text_chars: int = 200_000
    max_zip_bytes: int = 1024 * 2**20  # a dataset ZIP unpacked, all its documents together


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

    def subset(self, indices: list[int]) -> LabelledData:
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
    import pandas as pd

    path = Path(path)
    try:
        try:
            return _read(path, "utf-8-sig")
        except UnicodeDecodeError:  # a spreadsheet's "CSV" on Windows is usually cp1252
            return _read(path, "cp1252")
    except DataError:
        raise
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path.name}: not a readable {path.suffix.lstrip('.').upper()} file "
                                        f"({exc})") from exc


def _read(path: Path, encoding: str) -> pd.DataFrame:
    import pandas as pd

    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True, encoding=encoding)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, encoding=encoding)
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
    # A label is one line: the prompt lists the labels one per line, and the model answers one.
    labels = [" ".join(label.split()) for label in data.labels]
    joined = sum(a != b for a, b in zip(labels, data.labels))
    if joined:
        findings.append(Finding("warning", f"{joined} label(s) held line breaks, tabs or repeated "
                                           "spaces; each was joined into one line"))
    data = LabelledData(data.texts, labels, data.source)
    keep = [i for i, (text, label) in enumerate(zip(data.texts, data.labels)) if text and label]
    if len(keep) < len(data.texts):
        findings.append(Finding("warning", f"{len(data.texts) - len(keep)} row(s) with an empty "
                                           "text or label were left out"))
    seen: dict[str, int] = {}
    unique: list[int] = []
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
    counts = Counter(out.labels)
    if not out.texts:
        findings.append(Finding("error", "no examples: no row has both a text and a label"))
        return out, findings
    if len(counts) < 2:
        findings.append(Finding("error", "at least two different labels are needed"))
    if len(counts) > limits.max_labels:
        findings.append(Finding("error", f"{len(counts)} labels is over the limit of "
                                         f"{limits.max_labels}"))
    rare = {label: n for label, n in counts.most_common() if n < limits.min_per_label}
    if rare:
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


def subsample(data: LabelledData, n: int, seed: int = 42) -> LabelledData:
    """A stratified `n` of `data` (all of it when `n` is not smaller), every label kept while
    `n` allows: a learning curve's small sizes must still know each label."""
    from sklearn.model_selection import train_test_split

    if n >= len(data.texts):
        return data
    indices = list(range(len(data.texts)))
    try:
        picked, _ = train_test_split(indices, train_size=n, random_state=seed,
                                     stratify=data.labels)
    except ValueError:  # sklearn will not stratify a label of one example, or more labels than
        # examples left out: one of each label, the rest at random
        random.Random(seed).shuffle(indices)
        first: dict[str, int] = {}
        for i in indices:
            first.setdefault(data.labels[i], i)
        picked = list(first.values())[:n]
        chosen = set(picked)
        picked += [i for i in indices if i not in chosen][:n - len(picked)]
    return data.subset(sorted(picked))


TEXT_COLUMN_HINTS = ("text", "document", "content", "body", "clause", "sentence")
LABEL_COLUMN_HINTS = ("label", "category", "class", "type", "target")


def guess_columns(frame: pd.DataFrame) -> tuple[str, str]:
    """The likeliest text and label columns: by name, else the longest and the least varied."""
    columns = [str(c) for c in frame.columns]
    if len(columns) < 2:
        raise DataError("the table needs a text column and a label column")

    def by_name(hints: tuple[str, ...]) -> str | None:
        return next((c for h in hints for c in columns if h in c.lower()), None)

    strings = frame.astype(str)
    text = by_name(TEXT_COLUMN_HINTS) or max(columns, key=lambda c: strings[c].str.len().mean())
    rest = [c for c in columns if c != text]
    label = by_name(LABEL_COLUMN_HINTS)
    if label in (None, text):
        label = min(rest, key=lambda c: strings[c].nunique())
    return text, label


def from_zip(path: Path, extract_file, limits: DataLimits = DataLimits()) -> tuple[pd.DataFrame, list[str]]:
    """A ZIP holding one folder per label, documents inside: a table of (text, label) and a
    message per file that could not be read. `extract_file(path) -> str` is the ingestion
    extractor. Member names are never used as paths: each file is written to a temporary name."""
    import tempfile
    from pathlib import PurePosixPath

    import pandas as pd

    from core.archives import ArchiveError, MemberError, SafeZip

    path = Path(path)
    try:
        archive = SafeZip(path, limits.max_text_chars * 50, limits.max_zip_bytes)
    except ArchiveError as exc:
        raise DataError(f"{path.name}: {exc}") from exc
    rows, problems = [], []
    with archive, tempfile.TemporaryDirectory() as tmp:
        members = [m for m in archive.members
                   if not PurePosixPath(m.filename).name.startswith(".")
                   and "__MACOSX" not in m.filename]
        if len(members) > limits.max_rows:
            raise DataError(f"{path.name}: {len(members):,} files is over the limit of "
                            f"{limits.max_rows:,}")
        for member in members:
            parts = PurePosixPath(member.filename).parts
            if len(parts) < 2:
                problems.append(f"{member.filename}: not inside a label folder, left out")
                continue
            target = Path(tmp) / f"member{PurePosixPath(parts[-1]).suffix.lower()}"
            try:
                archive.extract(member, target)
            except MemberError as exc:  # one bad file never stops the others
                problems.append(f"{exc}, left out")
                continue
            except ArchiveError as exc:
                raise DataError(f"{path.name}: {exc}") from exc
            try:
                text = extract_file(target)
            except Exception as exc:  # one unreadable file never stops the others
                problems.append(f"{member.filename}: {exc}")
                continue
            rows.append({"text": text, "label": parts[-2], "file": member.filename})
    if not rows:
        raise DataError(f"{path.name}: no readable documents in label folders"
                        + (f" ({problems[0]})" if problems else ""))
    return pd.DataFrame(rows), problems
