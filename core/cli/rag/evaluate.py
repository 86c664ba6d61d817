"""`evaluate`: a collection against a QA file, each retrieval method side by side; the run is
saved beside the Evaluate page's, to compare after re-indexing or a settings change."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import InputError
from core.settings import load_settings


def _methods(text: str) -> tuple[str, ...]:
    from core.rag.evaluate import METHODS

    methods = tuple(m.strip() for m in text.split(",") if m.strip())
    if not methods or any(m not in METHODS for m in methods):
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(METHODS)}")
    return methods


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.rag.evaluate import EvalConfig, read_qa, run_evaluation

    settings = load_settings()
    if not Path(args.qa).is_file():
        raise InputError(f"no QA file at {args.qa}")
    items = read_qa(Path(args.qa))
    config = EvalConfig(args.collection, args.methods, args.k, args.answers, Path(args.qa).name)

    def show(done: int, total: int) -> None:  # stderr, so --json output stays one object
        print(f"\r{done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    run = run_evaluation(settings, config, items, progress=show)
    if args.json:
        print(json.dumps({"run": run["id"], "summary": run["summary"], "rows": run["rows"]}))
        return 0
    k = run["config"]["k"]
    columns = ["hit@1", f"hit@{k}", f"support@{k}", "answer_f1", "refusal_rate", "seconds"]
    print(f"run {run['id']}: {len(items)} questions on '{args.collection}' "
          f"({run['collection']['chunks']} chunks)")
    print(f"{'method':<8}" + "".join(f"{c:>14}" for c in columns))
    for method, numbers in run["summary"].items():
        print(f"{method:<8}" + "".join(
            f"{'-' if numbers[c] is None else format(numbers[c], '.3f'):>14}" for c in columns))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from core.rag.evaluate import METHODS

    parser = sub.add_parser("evaluate", help="evaluate a collection against questions with "
                                             "known answers (and documents)")
    parser.add_argument("--collection", required=True)
    parser.add_argument("--qa", required=True, metavar="FILE",
                        help="CSV with a header, or JSON Lines: question, answer (empty: not "
                             "answerable), optional document (the file name holding it)")
    parser.add_argument("--methods", type=_methods, default=METHODS,
                        help="comma-separated retrieval methods (default: dense,bm25,hybrid)")
    parser.add_argument("-k", type=int,
                        help="chunks retrieved (default: core.rag.retrieval.DEFAULT_K)")
    parser.add_argument("--answers", action="store_true",
                        help="also answer with the chat model: answer F1 and refusals (slow)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=cmd_evaluate)
