"""Evaluating a collection against a file of questions with known answers: per retrieval method,
whether the named document was retrieved (hit), whether the answer's words appear in a retrieved
chunk (support) and, when answers are generated, their token F1 and refusals.

A run lives in <data>/evaluations/<id>/run.json, rewritten whole after each question, so a page
that is refreshed (or another process) reads its progress, and finished runs stay to be
compared after re-indexing or a settings change. The page runs it in a thread of the server
process (start_run); the CLI in the foreground (run_evaluation); both write the same file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import statistics
import string
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core import files
from core.errors import InputError
from core.settings import Settings

METHODS = ("dense", "bm25", "hybrid")
RUN_FILE = "run.json"
MAX_QUESTIONS = 2000  # a file beyond this is more likely a mistake than a test set


# Scoring (SQuAD's normalisation; bench/answers.py scores with these too) --------------------
_MARK = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")  # the answer's passage marks are not its words


def words(text: str) -> list[str]:
    text = _MARK.sub(" ", text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    return [w for w in text.split() if w not in ("a", "an", "the")]


def f1(answer: str, golds: list[str]) -> float:
    """Token F1 against the best of the gold answers."""
    best = 0.0
    for gold in golds:
        common = sum((Counter(words(answer)) & Counter(words(gold))).values())
        if common:
            p, r = common / len(words(answer)), common / len(words(gold))
            best = max(best, 2 * p * r / (p + r))
    return best


def supported(answer: str, chunks: Sequence[str]) -> bool:
    """The answer's normalised words appear, in order, in one of the chunks."""
    wanted = " ".join(words(answer))
    return bool(wanted) and any(f" {wanted} " in f" {' '.join(words(c))} " for c in chunks)


# The QA file ------------------------------------------------------------------------------
@dataclass(frozen=True)
class QaItem:
    question: str
    answer: str = ""  # empty: the collection does not answer it (SQuAD 2.0's unanswerable)
    document: str = ""  # the file name that holds the answer, when known


def parse_qa(text: str, name: str) -> list[QaItem]:
    """A CSV (header with `question`, `answer`, optional `document`) or JSON Lines (the same
    fields), told apart by the first non-blank character; `name` is only for messages."""
    stripped = text.lstrip("\ufeff").lstrip()
    rows = _jsonl_rows(stripped, name) if stripped.startswith("{") else _csv_rows(stripped, name)
    items = []
    for line, row in rows:
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{name}, line {line}: no question")
        answer, document = row.get("answer") or "", row.get("document") or ""
        if not isinstance(answer, str) or not isinstance(document, str):
            raise InputError(f"{name}, line {line}: answer and document must be text")
        items.append(QaItem(question.strip(), answer.strip(), document.strip()))
    if not items:
        raise InputError(f"{name} holds no question")
    if len(items) > MAX_QUESTIONS:
        raise InputError(f"{name} holds {len(items):,} questions; the limit is {MAX_QUESTIONS:,}")
    return items


def _jsonl_rows(text: str, name: str) -> list[tuple[int, dict]]:
    rows = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}, line {line}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise InputError(f"{name}, line {line}: not a JSON object")
        rows.append((line, row))
    return rows


def _csv_rows(text: str, name: str) -> list[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "question" not in header or "answer" not in header:
        raise InputError(f"{name}, line 1: the header needs 'question' and 'answer' columns "
                         f"(found: {', '.join(header) or 'none'}); or give JSON Lines")
    reader.fieldnames = header
    rows = []
    try:
        for row in reader:
            if None in row:  # more cells than the header names
                raise InputError(f"{name}, line {reader.line_num}: more cells than columns")
            if any((v or "").strip() for v in row.values()):
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise InputError(f"{name}, line {reader.line_num}: {exc}") from exc
    return rows


def read_qa(path: Path) -> list[QaItem]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the QA file {path}: {exc}") from exc
    return parse_qa(text, str(path))


# Running ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalConfig:
    collection: str
    methods: tuple[str, ...] = METHODS
    k: int | None = None  # None: the retrieval default
    answers: bool = False  # also generate answers with the chat model (slow)
    qa_name: str = ""

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise InputError(f"methods must be among {', '.join(METHODS)}, got "
                             f"{', '.join(self.methods) or 'none'}")


def runs_dir(settings: Settings) -> Path:
    return settings.data_dir / "evaluations"


def _same_document(retrieved: str, given: str) -> bool:
    """A document named with or without its extension, in any case."""
    a, b = retrieved.lower(), given.lower()
    return a == b or Path(a).stem == b


def score(item: QaItem, method: str, hits: list, answer: str | None, refused: bool | None,
          seconds: float) -> dict:
    """One question's row: `hits` are the retrieved chunks (core.rag.retrieval.Hit)."""
    docs = [h.doc for h in hits]
    rank = next((i for i, d in enumerate(docs, 1) if _same_document(d, item.document)), None)
    return {"question": item.question, "gold_answer": item.answer, "document": item.document,
            "method": method, "retrieved": docs,
            "hit_rank": rank if item.document else None,
            "hit": rank is not None if item.document else None,
            "support": supported(item.answer, [h.text for h in hits]) if item.answer else None,
            "answer": answer,
            "f1": round(f1(answer, [item.answer]), 3)
            if answer is not None and item.answer else None,
            "refused": refused, "seconds": round(seconds, 3)}


def summarise(rows: list[dict], k: int) -> dict:
    """One configuration's numbers; None where no question could say (no documents given, no
    answers generated)."""
    def share(flags: list) -> float | None:
        flags = [f for f in flags if f is not None]
        return round(sum(flags) / len(flags), 3) if flags else None

    f1s = [r["f1"] for r in rows if r["f1"] is not None]
    return {"questions": len(rows), "hit@1": share([r["hit_rank"] == 1 if r["hit"] is not None
                                                    else None for r in rows]),
            f"hit@{k}": share([r["hit"] for r in rows]),
            f"support@{k}": share([r["support"] for r in rows]),
            "answer_f1": round(statistics.mean(f1s), 3) if f1s else None,
            "refusal_rate": share([r["refused"] for r in rows]),
            "seconds": round(statistics.mean(r["seconds"] for r in rows), 3) if rows else None}


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]


def run_evaluation(settings: Settings, config: EvalConfig, items: list[QaItem], engine=None,
                   chroma=None,
                   progress: Callable[[int, int], None] = lambda done, total: None) -> dict:
    """Every question under every method, the run file rewritten after each; returns the
    finished run. A failure is recorded in the run file and raised."""
    run = begin_run(settings, config, items, chroma)
    return finish_run(settings, run, config, items, engine, chroma, progress)


def begin_run(settings: Settings, config: EvalConfig, items: list[QaItem], chroma=None,
              run_id: str | None = None) -> dict:
    """The run's file, written before any question is asked: whoever lists the runs next (the
    page, right after starting one) sees it running. Refuses a collection that does not exist."""
    from core.rag import store
    from core.rag.retrieval import DEFAULT_K

    chroma = chroma or store.client(settings)
    info = store.describe(store.get_collection(chroma, config.collection))
    run: dict[str, Any] = {
        "id": run_id or new_run_id(), "status": "running", "pid": os.getpid(), "started": time.time(),
        "config": {**asdict(config), "k": config.k or DEFAULT_K}, "collection": asdict(info),
        "chat_model": None, "done": 0, "total": len(items) * len(config.methods), "rows": [],
        "summary": {}, "error": None}
    files.write_json(_run_file(settings, run["id"]), run)
    return run


def finish_run(settings: Settings, run: dict, config: EvalConfig, items: list[QaItem],
               engine=None, chroma=None,
               progress: Callable[[int, int], None] = lambda done, total: None) -> dict:
    from core.rag import store
    from core.rag.retrieval import RetrievalOptions

    path, k = _run_file(settings, run["id"]), run["config"]["k"]
    chroma = chroma or store.client(settings)
    try:
        if config.answers and engine is None:
            from core.rag.llm import get_engine
            engine = get_engine(settings)
        run["chat_model"] = engine.name if config.answers else None
        for method in config.methods:
            options = RetrievalOptions(k=k, method=method)  # type: ignore[arg-type]
            rows = []
            for item in items:
                rows.append(_one(settings, config, item, options, engine, chroma))
                run["done"] += 1
                run["rows"] = _all_rows(run, method, rows)
                run["summary"][method] = summarise(rows, k)
                files.write_json(path, run)
                progress(run["done"], run["total"])
        run.update(status="done", finished=time.time())
    except Exception as exc:
        run.update(status="failed", error=str(exc), finished=time.time())
        raise
    finally:
        files.write_json(path, run)
    return run


def _run_file(settings: Settings, run_id: str) -> Path:
    return runs_dir(settings) / files.check_name(run_id, "evaluation") / RUN_FILE


def _all_rows(run: dict, method: str, rows: list[dict]) -> list[dict]:
    return [r for r in run["rows"] if r["method"] != method] + rows


def _one(settings: Settings, config: EvalConfig, item: QaItem, options, engine,
         chroma) -> dict:
    from core.rag.answers import RagTurn
    from core.rag.citations import is_refusal
    from core.rag.retrieval import search

    started = time.perf_counter()
    if not config.answers:
        hits = search(settings, config.collection, item.question, options, chroma).hits
        return score(item, options.method, hits, None, None, time.perf_counter() - started)
    turn = RagTurn(settings, config.collection, item.question, engine, options, chroma=chroma)
    for _ in turn.stream():
        pass
    answer = turn.result()
    return score(item, options.method, answer.sources, answer.text, is_refusal(answer.text),
                 time.perf_counter() - started)


# In the background, and the saved runs ---------------------------------------------------
_live: set[str] = set()  # the runs this process is working on


def start_run(settings: Settings, config: EvalConfig, items: list[QaItem], engine=None) -> str:
    """Begin here (so a missing collection is said at once) and go on in a thread of this
    process; returns the run's id, whose file says how far it has got."""
    run_id = new_run_id()
    _live.add(run_id)  # before its file says "running", so no reader takes it for dead
    try:
        run = begin_run(settings, config, items, run_id=run_id)
    except Exception:
        _live.discard(run_id)
        raise

    def work() -> None:
        try:
            finish_run(settings, run, config, items, engine)
        except Exception:  # noqa: BLE001 - recorded in the run file for the page to show
            pass
        finally:
            _live.discard(run["id"])

    threading.Thread(target=work, name=f"evaluation-{run['id']}", daemon=True).start()
    return run["id"]


def load_run(settings: Settings, run_id: str) -> dict | None:
    run = files.read_json(_run_file(settings, run_id))
    if not isinstance(run, dict):
        return None
    if run.get("status") == "running" and not _still_running(run):
        run.update(status="interrupted", error="the process running it stopped")
    return run


def _still_running(run: dict) -> bool:
    if run.get("pid") == os.getpid():
        return run["id"] in _live
    return files.process_alive(int(run.get("pid", -1)))


def list_runs(settings: Settings, collection: str | None = None) -> list[dict]:
    """Saved runs, newest first, without their per-question rows."""
    out = []
    for folder in sorted(runs_dir(settings).glob("*"), reverse=True):
        run = load_run(settings, folder.name) if files.NAME.fullmatch(folder.name) else None
        if run and (collection is None or run["config"]["collection"] == collection):
            out.append({k: v for k, v in run.items() if k != "rows"})
    return out


def summary_table(runs: list[dict]) -> list[dict]:
    """Each run's configurations side by side, one row each, labelled by run when several."""
    table = []
    for run in runs:
        for method, numbers in run["summary"].items():
            label = method if len(runs) == 1 else f"{run['id']} · {method}"
            table.append({"configuration": label, "method": method, "run": run["id"],
                          "chunks": run["collection"].get("chunks"),
                          "answers": run["config"]["answers"], **numbers})
    return table


def rows_csv(run: dict) -> str:
    out = io.StringIO()
    fields = ["method", "question", "gold_answer", "document", "retrieved", "hit_rank", "hit",
              "support", "answer", "f1", "refused", "seconds"]
    writer = csv.DictWriter(out, fields, extrasaction="ignore")
    writer.writeheader()
    for row in run["rows"]:
        writer.writerow({**row, "retrieved": "; ".join(row["retrieved"])})
    return out.getvalue()
