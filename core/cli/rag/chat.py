"""`search` and `ask`: retrieval from a collection, alone or under an answer; one question, or
a file of them (`--questions`) answered with the models and indexes loaded once, one JSON
object per question."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import InputError, StudioError
from core.settings import load_settings


def _retrieval_options(args: argparse.Namespace):
    from core.rag.retrieval import RetrievalOptions

    given = {name: getattr(args, name) for name in ("k", "window", "window_tokens")
             if getattr(args, name) is not None}  # else RetrievalOptions' defaults
    return RetrievalOptions(method=args.method, mmr=args.mmr, min_score=args.min_score,
                            labels=tuple(args.label or ()), rerank=not args.no_rerank, **given)


def read_questions(path: Path) -> list[str]:
    """One question per line, or JSON Lines with a `question` field; blank lines skipped."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the questions file {path}: {exc}") from exc
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.startswith("{"):
            questions += [line] if line else []
            continue
        try:
            question = json.loads(line).get("question")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise InputError(f"{path}, line {number}: not a JSON object ({exc})") from exc
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{path}, line {number}: no \"question\" text")
        questions.append(question.strip())
    if not questions:
        raise InputError(f"the questions file {path} holds no question")
    return questions


def _batch(args: argparse.Namespace, answer_one) -> int:
    """Each question's JSON on its own line, in order, as soon as it is ready; a question that
    fails says why in its own line and the rest go on."""
    failed = 0
    for question in read_questions(Path(args.questions)):
        try:
            row = answer_one(question)
        except StudioError as exc:
            row, failed = {"question": question, "error": str(exc)}, failed + 1
        print(json.dumps(row), flush=True)
    return 1 if failed else 0


def _check_one_source(args: argparse.Namespace) -> None:
    if (args.question is None) == (args.questions is None):
        raise InputError("give either a QUESTION or --questions FILE")


def cmd_search(args: argparse.Namespace) -> int:
    from core.rag import store
    from core.rag.retrieval import search

    _check_one_source(args)
    settings, options = load_settings(), _retrieval_options(args)
    if args.questions:
        chroma = store.client(settings)
        return _batch(args, lambda q: {"question": q, "hits": [
            h.to_json() for h in search(settings, args.collection, q, options, chroma).hits]})
    result = search(settings, args.collection, args.question, options)
    rows = [hit.to_json() for hit in result.hits]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{len(rows)} chunk(s), {result.seconds * 1000:.0f} ms; score = {result.score_meaning}")
    for row in rows:
        text = " ".join(row["text"].split())
        print(f"[{row['rank']}] {row['match']:<7} {row['score']:.3f} {row['retriever']:<5} "
              f"{row['doc']} p.{row['page']}: {text[:160]}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from core.rag import store
    from core.rag.answer_notes import REWORDING_NOTE, caveats, searched_for_note, searched_in_note
    from core.rag.answers import RagTurn
    from core.rag.conversations import Turn, conversation_store, history
    from core.rag.llm import ChatError, get_engine

    _check_one_source(args)
    settings = load_settings()
    if args.questions:
        engine = get_engine(settings, backend=args.engine, model=args.model)
        chroma, options = store.client(settings), _retrieval_options(args)

        def answer_one(question: str) -> dict:
            turn = RagTurn(settings, args.collection, question, engine, options,
                           max_new_tokens=args.max_tokens, chroma=chroma)
            for _ in turn.stream():
                pass
            return {"question": question, **turn.result().to_json()}

        return _batch(args, answer_one)
    chats = conversation = None
    if args.conversation:
        chats = conversation_store(settings)
        conversation = chats.open(args.conversation, args.collection)
    try:
        engine = get_engine(settings, backend=args.engine, model=args.model)
        turn = RagTurn(settings, args.collection, args.question, engine,
                       _retrieval_options(args), max_new_tokens=args.max_tokens,
                       history=history(conversation) if conversation else ())
        for piece in turn.stream():
            if not args.json:
                print(piece, end="", flush=True)
    except ChatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    answer = turn.result()
    if chats and conversation:
        chats.add_turn(conversation.id, Turn(args.question, answer.to_json()))
    if args.json:
        print(json.dumps(answer.to_json()))
        return 0
    for note in caveats(answer):
        print(f"\n\n{note}", end="")
    if answer.rewording is not None:
        print(f"\n\n{REWORDING_NOTE}", end="")
    elif note := searched_for_note(args.question, answer.searched_for):
        print(f"\n\n{note}", end="")
    if answer.searched_in:
        print(f"\n\n{searched_in_note(answer.searched_in, answer.searched_in_because)}", end="")
    how = "inferred" if answer.citations_inferred else "cited"
    print(f"\n\n{how}: {answer.cited or 'none'}; {answer.timings}")
    for hit in answer.sources:
        mark = "*" if hit.rank in answer.cited else " "
        print(f"{mark}[{hit.rank}] {hit.match:<7} {hit.score:.3f} {hit.doc} p.{hit.page}")
    return 0


def _add_retrieval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", nargs="?")
    parser.add_argument("--questions", metavar="FILE",
                        help="a file of questions (one a line, or JSON Lines with a 'question' "
                             "field): one JSON object per question")
    parser.add_argument("--collection", required=True)
    parser.add_argument("-k", type=int,
                        help="how many chunks (default: core.rag.retrieval.DEFAULT_K)")
    parser.add_argument("--method", choices=("dense", "bm25", "hybrid"), default="hybrid")
    parser.add_argument("--mmr", action="store_true", help="diversify with MMR")
    parser.add_argument("--no-rerank", action="store_true",
                        help="keep the method's own order instead of ordering by relevance")
    parser.add_argument("--min-score", type=float, default=0.0)
    parser.add_argument("--label", action="append", metavar="LABEL",
                        help="only documents classified so (`classify --collection`); "
                             "repeat for any of several labels")
    parser.add_argument("--window", type=int,
                        help="neighbouring chunks each side of a hit that the model also reads "
                             "(default: core.rag.retrieval.DEFAULT_WINDOW)")
    parser.add_argument("--window-tokens", type=int,
                        help="at most this many tokens of neighbouring text in all, best hits "
                             "first; 0: as much as the model's window holds (default: "
                             "core.rag.retrieval.DEFAULT_WINDOW_TOKENS)")
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
    ask.add_argument("--conversation", metavar="ID",
                     help="continue this saved conversation (a new ID starts one); the turn is "
                          "saved, and a follow-up is searched as a standalone query")
    ask.set_defaults(func=cmd_ask)
