"""The Studio's one error base. A `StudioError` is a problem the user can act on: its message is
one plain sentence naming the file, setting or thing at fault, so the CLI prints it as it is and
the pages show it in an error box. Anything else that escapes is a bug and is logged in full."""

from __future__ import annotations


class StudioError(Exception):
    pass


class InputError(StudioError, ValueError):
    """Bad input from a user: a name, a setting, a file's content. Also a ValueError, so code
    that checks values the standard way keeps catching it."""
