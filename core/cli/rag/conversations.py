"""`conversations list|show|delete`: the saved chats, as the Chat page keeps them."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from core.errors import InputError
from core.settings import load_settings


def cmd_conversations(args: argparse.Namespace) -> int:
    from core.rag.answers import Answer
    from core.rag.conversations import conversation_store
    from core.rag.export import to_markdown

    store = conversation_store(load_settings())
    if args.action == "list":
        for chat in store.list(args.collection):
            row = {"id": chat.id, "collection": chat.collection, "title": chat.title,
                   "turns": chat.size, "updated": chat.updated}
            print(json.dumps(row) if args.json else
                  f"{chat.id}  {chat.collection:<20} {chat.size:>3} turns  {chat.title}")
        return 0
    if not args.id:
        raise InputError(f"conversations {args.action} needs a conversation ID")
    if args.action == "show":
        chat = store.get(args.id)
        answers = [Answer.from_json(t.question, t.answer) for t in chat.turns]
        print(json.dumps(asdict(chat)) if args.json else to_markdown(chat.collection, answers, chat.title))
    else:
        store.delete(args.id)
        print(f"deleted conversation {args.id}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("conversations", help="saved chats: list, show, delete")
    parser.add_argument("action", choices=("list", "show", "delete"))
    parser.add_argument("id", nargs="?", help="a conversation ID (from `list`)")
    parser.add_argument("--collection", help="only this collection's conversations")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=cmd_conversations)
