"""The shipped sample data: one CC BY paper into a collection, one labelled dataset, and a
question-answering set (SQuAD 2.0 passages and questions, CC BY-SA) to evaluate retrieval on."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import files
from core.settings import PROJECT_ROOT, Settings

SAMPLES_DIR = PROJECT_ROOT / "data" / "samples"
SAMPLE_PAPER = SAMPLES_DIR / "deep-rules_manuscript.pdf"
SAMPLE_DATASET = SAMPLES_DIR / "cuad_contract_types_sample.csv"
SAMPLE_COLLECTION = "samples"
SAMPLE_QA_PASSAGES = SAMPLES_DIR / "squad"  # one SQuAD passage per text file
SAMPLE_QA = SAMPLES_DIR / "squad_normans_qa.jsonl"  # questions about those passages
SAMPLE_QA_COLLECTION = "squad-sample"


@dataclass
class SampleLoadResult:
    ok: bool
    messages: list[str] = field(default_factory=list)


def _marker(settings: Settings):
    return settings.data_dir / "samples-loaded.json"


def samples_loaded(settings: Settings) -> bool:
    return _marker(settings).is_file()


def load_samples(settings: Settings,
                 progress: Callable[[float, str], None] = lambda f, m: None) -> SampleLoadResult:
    from core.rag.ingest import STAGE_START, ingest_files, stage_label

    datasets = settings.data_dir / "datasets"
    datasets.mkdir(parents=True, exist_ok=True)
    progress(0.05, "Copying the contracts dataset")
    shutil.copyfile(SAMPLE_DATASET, datasets / SAMPLE_DATASET.name)
    messages = [f"Dataset: {SAMPLE_DATASET.name} (60 contracts, 5 types) in your datasets."]
    progress(0.1, "Loading the embedding model")
    [result] = ingest_files(settings, [_kept(settings, SAMPLE_PAPER, SAMPLE_COLLECTION)],
                            SAMPLE_COLLECTION,
                            on_stage=lambda path, stage: progress(
                                0.1 + 0.9 * STAGE_START[stage], stage_label(stage)))
    if result.status != "ok":
        return SampleLoadResult(False, messages + [f"Paper failed: {result.error}"])
    messages.append(f"Paper: {result.file}, {result.pages} pages → {result.chunks} chunks in "
                    f"collection '{SAMPLE_COLLECTION}' ({result.seconds:.1f} s).")
    files.write_json(_marker(settings), {"collection": SAMPLE_COLLECTION,
                                         "doc_id": result.doc_id})
    progress(1.0, "Done")
    return SampleLoadResult(True, messages)


def _kept(settings: Settings, sample: Path, collection: str) -> Path:
    """The sample kept among the collection's originals, as an upload is: the page viewer
    shows its pages and a re-index rebuilds it from there (with neither, the sample paper's
    passages could not be shown on their page)."""
    from core.uploads import keep_copy, upload_folder

    folder = upload_folder(settings.data_dir, collection)
    folder.mkdir(parents=True, exist_ok=True)
    return keep_copy(folder, sample.name, sample)


def load_qa_sample(settings: Settings,
                   progress: Callable[[float, str], None] = lambda f, m: None) -> SampleLoadResult:
    """The SQuAD passages into their own collection (again: a re-run replaces each passage),
    ready for the questions in SAMPLE_QA."""
    from core.rag.ingest import ingest_files

    passages = [_kept(settings, path, SAMPLE_QA_COLLECTION)
                for path in sorted(SAMPLE_QA_PASSAGES.glob("*.txt"))]
    progress(0.1, "Loading the embedding model")
    results = ingest_files(settings, passages, SAMPLE_QA_COLLECTION,
                           on_stage=lambda path, stage: progress(
                               0.1 + 0.9 * passages.index(path) / len(passages), path.name))
    failed = [r.error or r.file for r in results if r.status != "ok"]
    progress(1.0, "Done")
    if failed:
        return SampleLoadResult(False, failed)
    return SampleLoadResult(True, [f"{len(results)} SQuAD passages in collection "
                                   f"'{SAMPLE_QA_COLLECTION}'; questions: {SAMPLE_QA.name}."])
