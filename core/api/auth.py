"""Bearer API keys (STUDIO_API_KEYS), and the rule that an API without keys serves this
machine only: bound to any other address it would hand the models and documents to anyone
who can reach the port."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from fastapi import HTTPException, Request

from core.errors import StudioError

# Docs and the health check say nothing about the documents or the models' answers; a load
# balancer and a browser reach them without a key.
OPEN_PATHS = ("/health", "/docs", "/openapi.json", "/static/")


def key_hashes(raw: str | None) -> tuple[bytes, ...]:
    """Only digests are kept: a key never sits in the app's memory, logs or errors."""
    return tuple(hashlib.sha256(key.strip().encode()).digest()
                 for key in (raw or "").split(",") if key.strip())


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(host: str, hashes: tuple[bytes, ...]) -> None:
    if not hashes and not is_loopback(host):
        raise StudioError(f"refusing to serve the API on {host} without API keys: set "
                          "STUDIO_API_KEYS (comma-separated) or serve on 127.0.0.1")


def key_checker(hashes: tuple[bytes, ...]):
    """A FastAPI dependency: with keys set, every request outside OPEN_PATHS needs one."""

    async def check(request: Request) -> None:
        if not hashes or request.url.path.startswith(OPEN_PATHS):
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        digest = hashlib.sha256(token.strip().encode()).digest()
        # Every key is compared, each in constant time, so timing tells nothing about which
        # key came close.
        matched = False
        for known in hashes:
            matched |= hmac.compare_digest(digest, known)
        if scheme.lower() != "bearer" or not token.strip() or not matched:
            raise HTTPException(401, "a valid API key is needed: send the header "
                                     "'Authorization: Bearer KEY'",
                                headers={"WWW-Authenticate": "Bearer"})

    return check
