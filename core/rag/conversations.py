"""Saved conversations: every turn of a chat (question, the query actually searched, answer,
sources with their scores and spans, citations, timings: the answer's own JSON) in one SQLite
file under the data dir, per collection, so a reload, a restart or a second tab finds the same
chat.

SQLite because it is in the standard library, survives `kill -9` (a turn is one transaction:
there or not) and serialises writers: two tabs adding a turn at once both land, in order."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.errors import StudioError
from core.settings import Settings

TITLE_CHARS = 60
NEW_TITLE = "New conversation"
ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, collection TEXT NOT NULL, title TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS by_collection ON conversations (collection, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    position INTEGER NOT NULL, turn TEXT NOT NULL, PRIMARY KEY (conversation, position));
"""


class ConversationError(StudioError):
    pass


@dataclass
class Turn:
    question: str
    answer: dict[str, Any]  # core.rag.answers.Answer.to_json(): text, searched_for, sources…
    created: float = field(default_factory=time.time)

    @classmethod
    def from_dict(cls, raw: dict) -> Turn:
        return cls(raw.get("question", ""), raw.get("answer") or {}, raw.get("created", 0.0))

    @property
    def messages(self) -> list[dict]:
        """The turn as chat messages, for the next question's prompt and follow-up rewriting;
        the assistant's also holds the whole answer (its sources), which no prompt reads."""
        return [{"role": "user", "content": self.question},
                {"role": "assistant", "content": self.answer.get("answer", ""),
                 "answer": self.answer}]


@dataclass
class Conversation:
    id: str
    collection: str
    title: str
    created: float
    updated: float
    turns: list[Turn] = field(default_factory=list)
    size: int = 0  # turns, also when they are not loaded


class ConversationStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """One connection per call: pages run in several threads, and a short-lived connection
        never holds a lock while a page waits on the model."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    def create(self, collection: str, title: str = "",
               conversation_id: str | None = None) -> Conversation:
        """A new conversation; `conversation_id` lets a script choose its own (`ask
        --conversation ID` starts one under an ID it does not know yet)."""
        if conversation_id is not None and not ID.fullmatch(conversation_id):
            raise ConversationError(f"{conversation_id[:40]!r} cannot be a conversation ID: use "
                                    "up to 64 letters, digits, '_' or '-'")
        now = time.time()
        conversation = Conversation(conversation_id or uuid.uuid4().hex[:12], collection,
                                    title or NEW_TITLE, now, now)
        with self._db() as db:
            db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)",
                       (conversation.id, collection, conversation.title, now, now))
        return conversation

    def list(self, collection: str | None = None) -> list[Conversation]:
        """Newest first, without their turns."""
        query = ("SELECT c.id, c.collection, c.title, c.created, c.updated, COUNT(t.position) "
                 "FROM conversations c LEFT JOIN turns t ON t.conversation = c.id "
                 + ("WHERE c.collection = ? " if collection else "")
                 + "GROUP BY c.id ORDER BY c.updated DESC")
        with self._db() as db:
            rows = db.execute(query, (collection,) if collection else ()).fetchall()
        return [Conversation(id, collection_, title, created, updated, size=size)
                for id, collection_, title, created, updated, size in rows]

    def open(self, conversation_id: str, collection: str) -> Conversation:
        """The conversation with this ID, started when new; it must belong to `collection`."""
        try:
            conversation = self.get(conversation_id)
        except ConversationError:
            return self.create(collection, conversation_id=conversation_id)
        if conversation.collection != collection:
            raise ConversationError(f"conversation {conversation_id} is about collection "
                                    f"{conversation.collection!r}, not {collection!r}")
        return conversation

    def get(self, conversation_id: str) -> Conversation:
        with self._db() as db:
            row = db.execute("SELECT id, collection, title, created, updated FROM conversations "
                             "WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                raise ConversationError(f"no conversation {conversation_id[:40]!r}")
            turns = [Turn.from_dict(json.loads(t)) for (t,) in db.execute(
                "SELECT turn FROM turns WHERE conversation = ? ORDER BY position",
                (conversation_id,))]
        id_, collection, title, created, updated = row
        return Conversation(id_, collection, title, created, updated, turns, len(turns))

    def add_turn(self, conversation_id: str, turn: Turn) -> int:
        """Append a turn; its position, counted inside the write lock so that two writers at
        once each get their own."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                found = db.execute("SELECT title, (SELECT COUNT(*) FROM turns WHERE "
                                   "conversation = ?) FROM conversations WHERE id = ?",
                                   (conversation_id, conversation_id)).fetchone()
                if found is None:
                    raise ConversationError(f"no conversation {conversation_id[:40]!r}")
                title, position = found
                db.execute("INSERT INTO turns VALUES (?, ?, ?)",
                           (conversation_id, position, json.dumps(asdict(turn))))
                if position == 0 and title == NEW_TITLE:  # named by its first question
                    title = " ".join(turn.question.split())[:TITLE_CHARS] or title
                db.execute("UPDATE conversations SET updated = ?, title = ? WHERE id = ?",
                           (time.time(), title, conversation_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return position

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())[:200]
        if not title:
            raise ConversationError("a conversation needs a title")
        self._change("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def delete(self, conversation_id: str) -> None:
        self._change("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def _change(self, sql: str, params: tuple) -> None:
        with self._db() as db:
            if db.execute(sql, params).rowcount == 0:
                raise ConversationError(f"no conversation {params[-1][:40]!r}")


_stores: dict[Path, ConversationStore] = {}


def conversation_store(settings: Settings) -> ConversationStore:
    """One store per database file, made (and its schema checked) once per process: the Chat
    page asks for it on every rerun. A file deleted since is made again."""
    path = settings.data_dir / "conversations.sqlite3"
    if path not in _stores or not path.exists():
        _stores[path] = ConversationStore(path)
    return _stores[path]


def history(conversation: Conversation) -> list[dict]:
    return [m for turn in conversation.turns for m in turn.messages]
