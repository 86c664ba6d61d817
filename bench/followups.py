"""Follow-up questions (issue 13): short conversations over the seven shared papers, one
collection, each follow-up asked in its conversation as the Chat page asks it (the earlier
turns; the standalone query the model rewrites a follow-up into; the documents the previous
answer cites searched first) against the same question asked alone, as a chat that keeps no
conversation asks it (the reference notebook's). Both with the Studio's retrieval and the
default chat model, greedy, in one run.

Each conversation is about one paper; its first question names it, the follow-ups lean on
it ("How many layers does its encoder have?"). Measures, over the follow-ups: the share of the
passages the model read that come from the paper the conversation is about, and the answers
that hold the expected answer (every group of `expected`, any spelling of each, read from the
paper by hand). Prints a table, each answer, and JSON; `--rescore JSON` grades an earlier
run's answers (its JSON line) again, after a change to `expected`.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-followups-")

from bench.qa import QA
from core.rag.answers import RagTurn
from core.rag.citations import without_marks
from core.rag.conversations import Turn
from core.rag.ingest import ingest_files
from core.rag.llm import get_engine
from core.settings import load_settings

PAPERS = QA.parent / "papers"
COLLECTION = "papers"
MAX_NEW_TOKENS = 64
# (paper, [(question, expected)]): expected is a list of groups, each a list of spellings of
# which the answer must hold one; None for the opening question, which is not scored
CONVERSATIONS: list[tuple[str, list[tuple[str, list[list[str]] | None]]]] = [
    ("1706.03762_Attention_is_all_you_need.pdf", [
        ("What is the Transformer?", None),
        ("How many layers does its encoder have?", [["6", "six"]]),
        ("How many attention heads does it use?", [["8", "eight"]]),
        ("Which optimizer was it trained with?", [["Adam"]]),
        ("What BLEU score does it reach on English-to-German?", [["28.4"]])]),
    ("1810.04805_BERT.pdf", [
        ("What is BERT?", None),
        ("What are its two pre-training tasks?", [["mask"], ["next sentence"]]),
        ("How many layers does its large model have?", [["24"]])]),
    ("1406.2661_GAN.pdf", [
        ("What are generative adversarial nets?", None),
        ("Who proposed them?", [["Goodfellow"]]),
        ("What does their discriminator estimate?", [["probability"]])]),
    ("2106.09685v2.pdf", [
        ("What is LoRA?", None),
        ("By how much does it reduce the number of trainable parameters?",
         [["10,000", "10000", "ten thousand"]]),
        ("And the GPU memory requirement?", [["3 times", "three times", "3x", "by 3"]])]),
    ("2305.14314v1.pdf", [
        ("What is QLoRA?", None),
        ("Which new data type does it introduce?", [["NormalFloat", "NF4"]]),
        ("How large a model can it finetune on a single 48GB GPU?", [["65B", "65 billion"]])]),
    ("2005.11401v4.pdf", [
        ("What is retrieval-augmented generation?", None),
        ("Which retriever does it use?", [["DPR", "Dense Passage Retriever"]]),
        ("What is its generator?", [["BART"]])]),
    ("2505.23724v1.txt", [
        ("What is SC-LoRA?", None),
        ("What does it constrain?", [["subspace"]]),
        # its title's two: efficient fine-tuning and knowledge preservation
        ("Which two goals does it balance?", [["efficien"], ["preserv"]])]),
]
CONFIGS = ("in its conversation", "asked alone")


def right(answer: str, expected: list[list[str]]) -> bool:
    said = without_marks(answer).lower()
    return all(any(s.lower() in said for s in group) for group in expected)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--rescore":
        # an earlier run's answers (its JSON line) graded by today's `expected`
        run = json.loads(Path(sys.argv[2]).read_text().splitlines()[-1])
        expected = {q: e for _, turns in CONVERSATIONS for q, e in turns}
        for rows in run["rows"].values():
            for row in rows:
                row["right"] = right(row["answer"], expected[row["question"]])
        return report(run["engine"], run["rows"], run["minutes"], rescored=True)
    settings = load_settings()
    files = [PAPERS / paper for paper, _ in CONVERSATIONS]
    results = ingest_files(settings, files, COLLECTION)
    assert all(r.status == "ok" for r in results), [r.message for r in results]
    doc_id = {f.name: r.doc_id for f, r in zip(files, results)}
    engine = get_engine(settings)
    rows: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    started = time.perf_counter()
    for paper, turns in CONVERSATIONS:
        for config in CONFIGS:
            history: list[dict] = []
            for question, expected in turns:
                engine.llm.reset()
                turn = RagTurn(settings, COLLECTION, question, engine,
                               max_new_tokens=MAX_NEW_TOKENS,
                               history=history if config == "in its conversation" else ())
                for _ in turn.stream():
                    pass
                answer = turn.result()
                history += Turn(question, answer.to_json()).messages
                if expected is None:
                    continue
                read = [h for h in answer.sources if h.rank in answer.used]
                rows[config].append({
                    "paper": paper, "question": question, "answer": answer.text,
                    "searched_for": answer.searched_for, "searched_in": answer.searched_in,
                    "searched_in_because": answer.searched_in_because,
                    "right": right(answer.text, expected),
                    "from_the_paper": sum(h.doc_id == doc_id[paper] for h in read)
                    / max(len(read), 1),
                    "ttft_s": turn.stats.ttft_s})
                print(f"  {config}: {question!r} -> {answer.text[:80]!r}", flush=True)
    report(engine.name, rows, round((time.perf_counter() - started) / 60, 1))


def report(engine: str, rows: dict[str, list[dict]], minutes: float, rescored: bool = False
           ) -> None:
    summary = {c: {"follow_ups": len(r),
                   "right": sum(x["right"] for x in r),
                   "passages_from_the_paper": round(statistics.mean(x["from_the_paper"]
                                                                    for x in r), 3)}
               for c, r in rows.items()}
    print(f"\n{'configuration':<22}{'follow-ups':>11}{'right':>7}{'passages from the paper':>25}")
    for config, s in summary.items():
        print(f"{config:<22}{s['follow_ups']:>11}{s['right']:>7}"
              f"{s['passages_from_the_paper']:>25.2f}")
    print()
    for alone, kept in zip(rows["asked alone"], rows["in its conversation"]):
        print(f"{kept['question']}\n  in its conversation ({'right' if kept['right'] else 'wrong'},"
              f" searched for {kept['searched_for']!r}): {kept['answer']!r}\n"
              f"  asked alone ({'right' if alone['right'] else 'wrong'}): {alone['answer']!r}")
    print(json.dumps({"engine": engine, "max_new_tokens": MAX_NEW_TOKENS, "minutes": minutes,
                      "rescored": rescored, "summary": summary, "rows": rows}))


if __name__ == "__main__":
    main()
