"""The Studio's one error base. A `StudioError` is a problem the user can act on: its message is
one plain sentence naming the file, setting or thing at fault, so the CLI prints it as it is and
the pages show it in an error box. Anything else that escapes is a bug and is logged in full."""

from __future__ import annotations


class StudioError(Exception):
    pass


class InputError(StudioError, ValueError):
    """Bad input from a user: a name, a setting, a file's content. Also a ValueError, so code
    that checks values the standard way keeps catching it."""


class ServiceUnavailable(StudioError):
    """A server the Studio talks to (a Chroma server, an OpenAI-compatible endpoint) did not
    answer."""


def service_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The plain message for a connection that failed inside a client library (Chroma's and
    OpenAI's clients speak httpx), or None for any other exception. The clients keep no broken
    connection, so the next call works once the server is back: nothing needs restarting."""
    try:
        import httpx
    except ImportError:
        return None
    if not isinstance(exc, httpx.TransportError):
        return None
    try:
        where = f" at {exc.request.url.scheme}://{exc.request.url.netloc.decode()}"
    except RuntimeError:  # an error raised before its request was made has none
        where = ""
    return ServiceUnavailable(f"the server{where} did not answer ({exc or type(exc).__name__}); "
                              "nothing was lost: try again once it is back")
