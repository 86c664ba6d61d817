"""A bounded queue in front of a model: one request uses it at a time, a few wait (in the event
loop, holding no thread), and the next is told to come back later (HTTP 429) rather than
piling up threads and memory until the server falls over."""

from __future__ import annotations

import asyncio

from fastapi import HTTPException

from core.errors import InputError

RETRY_AFTER_S = 10  # about one answer of the default chat model on a laptop CPU


class Gate:
    def __init__(self, what: str, waiting: int, running: int = 1):
        if waiting < 0:
            raise InputError(f"STUDIO_API_QUEUE must be 0 or more, got {waiting}")
        self.what, self.limit = what, running + waiting
        self.inside = 0
        self.running = asyncio.Semaphore(running)

    def admit(self) -> Ticket:
        """A place in the queue, or 429 at once when there is none."""
        if self.inside >= self.limit:
            raise HTTPException(429, f"the {self.what} is busy ({self.inside} "
                                     f"request{'s' * (self.inside != 1)} running or waiting); "
                                     f"try again in {RETRY_AFTER_S} s",
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        self.inside += 1
        return Ticket(self)

    def status(self) -> dict:
        return {"inside": self.inside, "limit": self.limit}


class Ticket:
    """`async with ticket:` waits for the model and lets go of it; `release()` gives the place
    back when the ticket was never used (a client gone before its stream began)."""

    def __init__(self, gate: Gate):
        self.gate = gate
        self.released = False

    async def __aenter__(self) -> Ticket:
        try:
            await self.gate.running.acquire()
        except BaseException:  # cancelled while waiting: the client went away
            self.release()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        self.gate.running.release()
        self.release()

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.gate.inside -= 1
