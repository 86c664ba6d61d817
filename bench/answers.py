"""Grounded answers (issue 13): the Studio's defaults against the reference notebook's setup and
against the same model with no retrieval, in one run, on the same questions.

Data (../shared/data/qa): SQuAD 2.0's first dev article, its 39 passages stored as a collection
(one document each), and the QASPER sample, each paper's paragraphs joined into one document.
A fixed subset of questions (every n-th, answerable and unanswerable; sizes below and on the
command line) keeps one run near 15 minutes on 2 shared cores.

Configurations, with the default chat model (Qwen2.5-Coder-0.5B-Instruct through llama.cpp,
greedy, at most MAX_NEW_TOKENS) unless named:
- studio defaults: the Studio's chunking (500/50, title and section; the title not embedded),
  hybrid candidates ordered by relevance (core.rag.relevance), the top DEFAULT_K, a window of
  DEFAULT_WINDOW neighbours (at most DEFAULT_WINDOW_TOKENS), the Studio's prompt with the
  model's own passage marks (core.rag.citations.stream_marked), and the answerability check;
- studio 1.5B: the same with Qwen2.5-Coder-1.5B-Instruct, when it is installed
  (`python -m core models install qwen2.5-coder-1.5b-instruct`; skipped otherwise);
- reference: langchain's RecursiveCharacterTextSplitter(500, 50), dense top-3, the chunks
  numbered [1]–[3] in LangChain's "stuff" question-answering prompt;
- no retrieval: the question alone;
- studio FIELD=VALUE ... (with `--variants`): the defaults with those retrieval options changed
  (`--variants k=4,window=0` runs "studio k=4 window=0"), to choose k and the window by answer
  quality and time to first token together.
With `--qasper-by-paper`, every configuration that retrieves asks each QASPER question of its
own paper only (the Chat page's "Only these documents"): QASPER's questions were written by
readers of one paper and seldom name it ("Which baselines did they compare?").

Measures: token F1 (SQuAD's normalisation, best over the gold answers) and gold-word recall
(share of the gold answer's words found in the answer) on answerable questions, with [n] marks
removed; share of non-refusal answers with a valid [n] (a passage the model was given);
share of marked answers to answerable questions whose marks point at the answer ("[n] right":
a marked passage overlaps the gold paragraph; the Studio's configurations); refusals on
unanswerable questions; false refusals on answerable ones; answers to answerable questions
that only say the question back ("restated", core.rag.restatement); answers giving a number that
none of their passages holds, or holds only as a section, table or citation number ("unread #",
core.rag.grounding; the JSON has those answers' F1);
seconds per answer; median time to first token. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-answers-")

from bench.qa import QaSet, Question, overlaps, qasper_set, squad_set, store_documents
from core.rag import store
from core.rag.answers import RagTurn, no_context_stream
from core.rag.chunking import Chunk
from core.rag.citations import citation_marks, is_refusal
from core.rag.embeddings import get_embedder, query_embedder
from core.rag.evaluate import f1, words
from core.rag.grounding import reference_numbers, unread_numbers
from core.rag.llm import StreamStats, get_engine, timed
from core.rag.restatement import restates
from core.rag.retrieval import DEFAULT_K, DEFAULT_WINDOW, DEFAULT_WINDOW_TOKENS, RetrievalOptions
from core.registry import Registry
from core.settings import load_settings

MAX_NEW_TOKENS = 64
REFERENCE_K = 3
# LangChain's load_qa_chain("stuff") prompt, which the reference notebook used.
REFERENCE_PROMPT = ("Use the following pieces of context to answer the question at the end. If "
                    "you don't know the answer, just say that you don't know, don't try to make "
                    "up an answer.\n\n{context}\n\nQuestion: {question}\nHelpful Answer:")
CONFIGS = ("studio defaults", "studio 1.5B", "reference", "no retrieval")
LARGER_MODEL = "qwen2.5-coder-1.5b-instruct"


def reference_chunks(text: str, title: str) -> list[Chunk]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50,
                                              add_start_index=True)
    docs = splitter.create_documents([text])
    return [Chunk(d.page_content, 1, i, d.metadata["start_index"],
                  d.metadata["start_index"] + len(d.page_content), title)
            for i, d in enumerate(docs)]


def subset(qa: QaSet, answerable: int, unanswerable: int) -> list[Question]:
    """Every n-th question of each kind, so the subset spans the whole set."""
    out = []
    for want, count in ((True, answerable), (False, unanswerable)):
        pool = [q for _, q in qa.questions if q.answerable == want]
        step = max(1, len(pool) // max(count, 1))
        out += pool[::step][:count]
    return out


# Answer quality (token F1 and the normalisation: core.rag.evaluate) ----------------------
def recall(answer: str, golds: list[str]) -> float:
    said = set(words(answer))
    return max((len(set(words(g)) & said) / len(set(words(g))) for g in golds if words(g)),
               default=0.0)


# Running one configuration -----------------------------------------------------------------
def studio(settings, chroma, engine, name: str, question: str, within: tuple[str, ...] = (),
           options: RetrievalOptions = RetrievalOptions()) -> dict:
    started = time.perf_counter()
    turn = RagTurn(settings, name, question, engine, replace(options, doc_ids=within),
                   max_new_tokens=MAX_NEW_TOKENS, chroma=chroma)
    for _ in turn.stream():
        pass
    answer = turn.result()
    marked = [] if answer.citations_inferred else answer.cited
    return {"text": answer.text, "valid_citation": bool(marked), "ttft_s": turn.stats.ttft_s,
            "model_asked": answer.answerable, "unread_numbers": answer.unread_numbers + answer.reference_numbers,
            "seconds": time.perf_counter() - started,
            "cited_spans": [(h.doc_id, h.start, h.end) for h in answer.sources
                            if h.rank in marked],
            # the passages the model read (their neighbours aside): was the answer before it?
            "read_spans": [(h.doc_id, h.start, h.end) for h in answer.sources
                           if h.rank in answer.used]}


def reference_chunks_found(settings, chroma, name: str, question: str,
                           within: tuple[str, ...] = ()) -> list[str]:
    """What LangChain's similarity search gives the notebook: the REFERENCE_K chunks nearest the
    question's embedding, and nothing of the Studio's search (no keywords, no acronyms spelled
    out, no document openings or definitions put first). Until 2026-12-04 the reference went
    through the Studio's search with dense options, and so had those too."""
    collection = store.get_collection(chroma, f"{name}-ref")
    vector = query_embedder(settings, settings.embedding_model).embed([question])[0]
    got = collection.query(query_embeddings=[list(map(float, vector))], n_results=REFERENCE_K,
                           where={"doc_id": {"$in": list(within)}} if within else None,
                           include=["documents"])
    return got["documents"][0]


def reference(settings, chroma, engine, name: str, question: str,
              within: tuple[str, ...] = ()) -> dict:
    started = time.perf_counter()
    chunks = reference_chunks_found(settings, chroma, name, question, within)
    context = "\n\n".join(f"[{rank}] {text}" for rank, text in enumerate(chunks, 1))
    stats = StreamStats()
    messages = [{"role": "user",
                 "content": REFERENCE_PROMPT.format(context=context, question=question)}]
    for _ in timed(engine.stream(messages, MAX_NEW_TOKENS), stats):
        pass
    text = stats.text.strip()
    valid = {n for n in citation_marks(text) if 1 <= n <= len(chunks)}
    return {"text": text, "valid_citation": bool(valid),
            "ttft_s": stats.ttft_s, "model_asked": True,
            "unread_numbers": unread_numbers(text, read := messages[0]["content"])
            + reference_numbers(text, read),
            "seconds": time.perf_counter() - started}


def no_retrieval(settings, chroma, engine, name: str, question: str,
                 within: tuple[str, ...] = ()) -> dict:
    started = time.perf_counter()
    stats = StreamStats()
    for _ in no_context_stream(engine, question, stats, MAX_NEW_TOKENS):
        pass
    return {"text": stats.text.strip(), "valid_citation": False, "ttft_s": stats.ttft_s,
            "model_asked": True, "seconds": time.perf_counter() - started}


RUNNERS = {"studio defaults": studio, "studio 1.5B": studio, "reference": reference,
           "no retrieval": no_retrieval}


def cites_the_answer(cited_spans: list, gold_doc: str, gold: set[int],
                     paragraphs: list[tuple[int, int]]) -> bool:
    """Whether a passage the answer marks (or any of `cited_spans`) overlaps a paragraph that
    holds the gold answer (SQuAD: the question's passage; QASPER: its annotators' evidence)."""
    gold_spans = [paragraphs[p] for p in gold]
    return any(doc == gold_doc and overlaps(start, end, gold_spans)
               for doc, start, end in cited_spans)


def summarise(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in rows if not r["refused"]]
    asked = [r["ttft_s"] for r in rows if r["model_asked"] and r["ttft_s"] is not None]
    share = lambda part, whole: round(len(part) / len(whole), 3) if whole else None  # noqa: E731
    return {
        "answerable": len(answerable), "unanswerable": len(unanswerable),
        "f1": round(statistics.mean(r["f1"] for r in answerable), 3),
        "gold_recall": round(statistics.mean(r["recall"] for r in answerable), 3),
        "valid_citation": share([r for r in answered if r["valid_citation"]], answered),
        "cites_the_answer": share([r for r in marked if r["cites_the_answer"]], marked)
        if (marked := [r for r in answerable if r.get("cites_the_answer") is not None])
        else None,
        "read_the_answer": share([r for r in read if r["read_the_answer"]], read)
        if (read := [r for r in answerable if r.get("read_the_answer") is not None]) else None,
        "refused_unanswerable": share([r for r in unanswerable if r["refused"]], unanswerable),
        "false_refusals": share([r for r in answerable if r["refused"]], answerable),
        "restates_question": share([r for r in answerable
                                    if restates(r["question"], r["text"])], answerable),
        # answers giving a figure that none of their passages holds, and how right those were
        "unread_numbers": share([r for r in checked if r["unread_numbers"]], checked)
        if (checked := [r for r in answerable
                        if "unread_numbers" in r and not r["refused"]]) else None,
        "unread_numbers_f1": round(statistics.mean(r["f1"] for r in unread), 3)
        if (unread := [r for r in answerable if r.get("unread_numbers")]) else None,
        "seconds_per_answer": round(statistics.mean(r["seconds"] for r in rows), 2),
        "median_ttft_s": round(statistics.median(r["ttft_s"] or 0.0 for r in rows), 3),
        "median_ttft_model_asked_s": round(statistics.median(asked), 3) if asked else None,
    }


def run(settings, chroma, engines: dict, qa: QaSet, questions: list[Question],
        by_document: bool = False) -> dict[str, dict]:
    """`by_document`: each question asked of its own document only (the Chat page's "Only
    these documents"), by every configuration that retrieves."""
    embedder = get_embedder(settings)
    spans = store_documents(chroma, embedder, qa.name, qa.documents)
    doc_of = {id(q): doc_id for doc_id, q in qa.questions}
    store_documents(chroma, embedder, f"{qa.name}-ref", qa.documents, reference_chunks)
    rows: dict[str, list[dict]] = {c: [] for c in engines}
    for i, question in enumerate(questions, 1):
        for config, engine in engines.items():
            engine.llm.reset()  # no reuse of the previous prompt's cache across configurations
            doc = doc_of[id(question)]
            got = RUNNERS[config](settings, chroma, engine, qa.name, question.text,
                                  (doc,) if by_document else ())
            got.update(answerable=question.answerable, refused=is_refusal(got["text"]),
                       f1=f1(got["text"], question.answers) if question.answerable else None,
                       recall=recall(got["text"], question.answers)
                       if question.answerable else None, question=question.text)
            if question.answerable and got.get("cited_spans"):
                got["cites_the_answer"] = cites_the_answer(got["cited_spans"], doc,
                                                           question.gold, spans[doc])
            if question.answerable and "read_spans" in got:
                got["read_the_answer"] = cites_the_answer(got["read_spans"], doc,
                                                          question.gold, spans[doc])
            rows[config].append(got)
            print(f"  {qa.name} {i}/{len(questions)} {config}: {got['seconds']:.0f} s, "
                  f"{got['text'][:90]!r}", flush=True)
    return {c: {**summarise(r), "rows": r} for c, r in rows.items()}


def variant(spec: str) -> RetrievalOptions:
    """'k=4,window=0' as the default RetrievalOptions with those fields changed."""
    fields = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        fields[name.strip()] = int(value)
    return RetrievalOptions(**fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--squad", type=int, nargs=2, default=(10, 10),
                        metavar=("ANSWERABLE", "UNANSWERABLE"))
    parser.add_argument("--qasper", type=int, nargs=2, default=(8, 4),
                        metavar=("ANSWERABLE", "UNANSWERABLE"))
    parser.add_argument("--no-larger", action="store_true",
                        help="leave out the 1.5B configuration even when it is installed")
    parser.add_argument("--variants", default="",
                        help="also the defaults with other retrieval options: ';'-separated, "
                             "each a comma-separated list of RetrievalOptions fields, e.g. "
                             f"'window=0;k=4,window_tokens=0' (the defaults: k={DEFAULT_K}, "
                             f"window={DEFAULT_WINDOW}, window_tokens={DEFAULT_WINDOW_TOKENS})")
    parser.add_argument("--configs", default="",
                        help="only these configurations, comma-separated (e.g. 'studio "
                             "defaults'); the targets need the defaults, reference and no "
                             "retrieval")
    parser.add_argument("--qasper-by-paper", action="store_true",
                        help="ask each QASPER question of its own paper only, as a reader "
                             "of that paper picks it under 'Only these documents' (its "
                             "questions say 'they' and 'the paper', and name none)")
    parser.add_argument("--rescore", metavar="JSON",
                        help="score an earlier run's answers again (its JSON line) instead of "
                             "running, after a change to how refusals or marks are read")
    args = parser.parse_args()
    if args.rescore:
        return rescore(json.loads(Path(args.rescore).read_text().splitlines()[-1]))
    settings = load_settings()
    chroma = store.client(settings)
    engine = get_engine(settings)
    engines = {c: engine for c in CONFIGS}
    if args.no_larger or not Registry.load(settings.registry_path,
                                           settings.models_dir).available(LARGER_MODEL):
        del engines["studio 1.5B"]
    else:
        engines["studio 1.5B"] = get_engine(settings, model=LARGER_MODEL)
    variants = {"studio " + " ".join(spec.replace(",", " ").split()): variant(spec)
                for spec in args.variants.split(";") if spec.strip()}
    for config, options in variants.items():
        RUNNERS[config] = functools.partial(studio, options=options)
        engines[config] = engine
    if args.configs:
        wanted = {c.strip() for c in args.configs.split(",")}
        engines = {c: e for c, e in engines.items() if c in wanted}
    started = time.perf_counter()
    results = {}
    for qa, sizes in ((squad_set(), args.squad), (qasper_set(), args.qasper)):
        results[qa.name] = run(settings, chroma, engines, qa, subset(qa, *sizes),
                               by_document=args.qasper_by_paper and qa.name == "qasper")
    print_table(results, engine.name)
    targets = {name: targets_met(configs) for name, configs in results.items()
               if {"studio defaults", "reference", "no retrieval"} <= configs.keys()}
    print(json.dumps({"engine": engine.name, "max_new_tokens": MAX_NEW_TOKENS,
                      "subset": {"squad": args.squad, "qasper": args.qasper},
                      "qasper_by_paper": args.qasper_by_paper,
                      "default_window": DEFAULT_WINDOW,
                      "default_window_tokens": DEFAULT_WINDOW_TOKENS,
                      "minutes": round((time.perf_counter() - started) / 60, 1),
                      "targets": targets, "results": results}))


def print_table(results: dict, engine_name: str) -> None:
    header = (f"{'set':<8}{'configuration':<19}{'F1':>6}{'recall':>8}{'[n] ok':>8}"
              f"{'[n] right':>10}{'refused':>9}{'false ref':>10}{'restated':>10}{'unread #':>10}"
              f"{'s/answer':>10}"
              f"{'TTFT':>7}"
              f"{'TTFT asked':>11}")
    print(f"\n{engine_name} (studio 1.5B: {LARGER_MODEL}, when installed)\n{header}")
    for name, configs in results.items():
        for config, r in configs.items():
            cells = [r["f1"], r["gold_recall"], r["valid_citation"], r.get("cites_the_answer"),
                     r["refused_unanswerable"], r["false_refusals"], r.get("restates_question"),
                     r.get("unread_numbers")]
            print(f"{name:<8}{config:<19}" + "".join(
                f"{'-' if v is None else f'{v:.2f}':>{w}}"
                for v, w in zip(cells, (6, 8, 8, 10, 9, 10, 10, 10)))
                + f"{r['seconds_per_answer']:>10.1f}{r['median_ttft_s']:>7.2f}"
                + f"{r['median_ttft_model_asked_s'] or 0:>11.2f}")


def rescore(run: dict) -> None:
    """The earlier answers, their refusals and marks read by today's rules (a refusal carries
    no valid citation)."""
    results = {}
    for name, configs in run["results"].items():
        results[name] = {}
        for config, summary in configs.items():
            for row in summary["rows"]:
                row["refused"] = is_refusal(row["text"])
                row["valid_citation"] = row["valid_citation"] and not row["refused"]
            results[name][config] = {**summarise(summary["rows"]), "rows": summary["rows"]}
    print_table(results, run["engine"])
    print(json.dumps({**run, "rescored": True, "results": results,
                      "targets": {n: targets_met(c) for n, c in results.items()}}))


def targets_met(configs: dict) -> dict:
    d, ref, alone = configs["studio defaults"], configs["reference"], configs["no retrieval"]
    return {"f1_vs_reference": round(d["f1"] / ref["f1"], 2) if ref["f1"] else None,
            "f1_vs_no_retrieval": round(d["f1"] / alone["f1"], 2) if alone["f1"] else None,
            "refused_unanswerable>=0.6": (d["refused_unanswerable"] or 0) >= 0.6,
            "false_refusals<=0.15": (d["false_refusals"] or 0) <= 0.15,
            "valid_citation>=0.8": (d["valid_citation"] or 0) >= 0.8,
            "ttft_vs_reference": round(d["median_ttft_s"] / ref["median_ttft_s"], 2)
            if ref["median_ttft_s"] else None}


if __name__ == "__main__":
    main()
