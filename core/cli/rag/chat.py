"""`search` and `ask`: retrieval from a collection, alone or under an answer."""

from __future__ import annotations

import argparse
import json
import sys

from core.settings import load_settings


def _retrieval_options(args: argparse.Namespace):
    from core.rag.retrieval import RetrievalOptions

    window = {} if args.window is None else {"window": args.window}  # else the default
    return RetrievalOptions(k=args.k, method=args.method, mmr=args.mmr,
                            min_score=args.min_score, **window)


def cmd_search(args: argparse.Namespace) -> int:
    from core.rag.retrieval import search

    result = search(load_settings(), args.collection, args.question, _retrieval_options(args))
    rows = [hit.to_json() for hit in result.hits]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{len(rows)} chunk(s), {result.seconds * 1000:.0f} ms; score = {result.score_meaning}")
    for row in rows:
        text = " ".join(row["text"].split())
        print(f"[{row['rank']}] {row['score']:.3f} {row['retriever']:<5} {row['doc']} "
              f"p.{row['page']}: {text[:160]}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from core.rag.answers import RagTurn
    from core.rag.llm import ChatError, get_engine

    settings = load_settings()
    try:
        engine = get_engine(settings, backend=args.engine, model=args.model)
        turn = RagTurn(settings, args.collection, args.question, engine,
                       _retrieval_options(args), max_new_tokens=args.max_tokens)
        for piece in turn.stream():
            if not args.json:
                print(piece, end="", flush=True)
    except ChatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    answer = turn.result()
    if args.json:
        print(json.dumps(answer.to_json()))
        return 0
    how = "inferred" if answer.citations_inferred else "cited"
    print(f"\n\n{how}: {answer.cited or 'none'}; {answer.timings}")
    for hit in answer.sources:
        mark = "*" if hit.rank in answer.cited else " "
        print(f"{mark}[{hit.rank}] {hit.score:.3f} {hit.doc} p.{hit.page}")
    return 0


def _add_retrieval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question")
    parser.add_argument("--collection", required=True)
    parser.add_argument("-k", type=int, default=5, help="how many chunks (default 5)")
    parser.add_argument("--method", choices=("dense", "bm25", "hybrid"), default="hybrid")
    parser.add_argument("--mmr", action="store_true", help="diversify with MMR")
    parser.add_argument("--min-score", type=float, default=0.0)
    parser.add_argument("--window", type=int,
                        help="neighbouring chunks each side of a hit that the model also reads "
                             "(default: core.retrieval.DEFAULT_WINDOW)")
    parser.add_argument("--json", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:
    find = sub.add_parser("search", help="the chunks of a collection that match a question")
    _add_retrieval_arguments(find)
    find.set_defaults(func=cmd_search)

    ask = sub.add_parser("ask", help="answer a question from a collection, with sources")
    _add_retrieval_arguments(ask)
    ask.add_argument("--engine", choices=("local", "openai"), help="default: from settings")
    ask.add_argument("--model", help="chat model (registry name or HF folder; endpoint model)")
    ask.add_argument("--max-tokens", type=int, default=256)
    ask.set_defaults(func=cmd_ask)
