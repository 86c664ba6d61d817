"""`python -m tests.killpoint METHOD N ARGS...`: the Studio's CLI with ARGS, killed by SIGKILL
just before its Nth call of a Chroma collection's METHOD (add, delete, modify), so a test can
stop a real ingestion at an exact point of its writes; N = 0 never kills. Chroma batches are
cut to BATCH rows so that one document takes several writes, as a long one does."""

import os
import signal
import sys

from chromadb.api.client import Client
from chromadb.api.models.Collection import Collection

BATCH = 8


def main() -> int:
    method, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    original = getattr(Collection, method)
    calls = 0

    def counted(self, *a, **kw):
        nonlocal calls
        calls += 1
        if calls == n:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *a, **kw)

    setattr(Collection, method, counted)
    Client.get_max_batch_size = lambda self: BATCH

    from core.cli import main as cli

    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
