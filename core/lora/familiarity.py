"""Is a document like the ones an adapter was trained on? Label scoring spreads all of the
probability over the adapter's labels, so a document that fits none of them still gets one, and
often confidently: an adapter trained on contracts gave research papers 94–98%. So each adapter
keeps its training documents' embeddings beside it (`FILE`, safetensors) with a floor: how
close nearly all documents it had not trained on came to their nearest training document. A
document further than that from every training document is said to be unlike them, and its
label to be a guess.

Measured with bench/familiarity.py on a Quick adapter of the shipped sample (48 training
contracts): the check flagged every one of 100 BBC news articles and 10 papers and 5% of 80
unseen contracts of the adapter's types; the adapter's own confidence, held to flag as many of
those contracts, flagged 94% and 90% (bench/README.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import StudioError

FILE = "training-documents.safetensors"
# The floor is this quantile of the held-out documents' (and each training document's own
# leave-one-out) nearest-training-document cosines, less MARGIN. The quantile alone promises
# 1 false warning in 100, but over a small training set it is optimistic: the sample dataset's
# 48 training contracts put 91% of 80 unseen contracts of the same five types over it, 95% with
# the margin, and no BBC article either way; over 300 training contracts the margin moved the
# held-out contracts from 98% to 100% and BBC articles from 1% to 2% (bench/README.md).
QUANTILE = 0.01
MARGIN = 0.03
# Under this many training documents the floor is the least close of a handful, and says more
# about the sample than about documents of its kind: such an adapter keeps no profile.
MIN_DOCUMENTS = 20

Embed = Callable[[list[str]], list[list[float]]]


class ProfileError(StudioError):
    pass


@dataclass(frozen=True)
class Likeness:
    closest: float  # cosine similarity to the nearest training document
    floor: float  # the adapter's: documents of the kind it was trained on came this close

    @property
    def familiar(self) -> bool:
        return self.closest >= self.floor

    def as_dict(self) -> dict:
        return {"closest": self.closest, "floor": self.floor, "familiar": self.familiar}

    # Three decimals: a paper at 0.2349 beside a floor of 0.2329 read "0.23 to the closest"
    # against "similarity under 0.23", one number passing and failing the same check.
    def sentence(self) -> str:
        """What a page or the CLI says about a document unlike the training documents."""
        return (f"Unlike the documents this adapter was trained on: its similarity to the "
                f"closest of them is {self.closest:.3f}, below the {self.floor:.3f} that nearly "
                f"all documents like them reached when it was tested. Read the label as a "
                f"guess.")


@dataclass
class Profile:
    vectors: np.ndarray  # [training documents, dimensions], unit length
    floor: float
    embedder: str  # the registry name of the embedding model that made the vectors
    documents: int  # how many; also known when only the header was read (`load`)

    def likeness(self, vectors: Sequence[Sequence[float]]) -> list[Likeness]:
        found = np.asarray(vectors, dtype=np.float32)
        if found.ndim != 2 or found.shape[1] != self.vectors.shape[1]:
            raise ProfileError(f"{self.embedder} gave vectors of another size than the "
                               f"profile's {self.vectors.shape[1]}")
        closest = (found @ self.vectors.T).max(axis=1)
        return [Likeness(round(float(c), 4), self.floor) for c in closest]

    def check(self, texts: list[str], embed: Embed) -> list[Likeness]:
        return self.likeness(embed(texts)) if texts else []


def build(train: Sequence[Sequence[float]], held_out: Sequence[Sequence[float]],
          embedder: str) -> Profile:
    """The profile of a training split, its floor set on the documents held out from it and on
    each training document against all the others."""
    vectors = np.asarray(train, dtype=np.float32)
    if len(vectors) < MIN_DOCUMENTS:
        raise ProfileError(f"a profile needs at least {MIN_DOCUMENTS} training documents, not "
                           f"{len(vectors)}")
    within = vectors @ vectors.T
    np.fill_diagonal(within, -1.0)
    seen = [within.max(axis=1)]
    if len(held_out):
        seen.append((np.asarray(held_out, dtype=np.float32) @ vectors.T).max(axis=1))
    floor = float(np.quantile(np.concatenate(seen), QUANTILE)) - MARGIN
    return Profile(vectors, round(floor, 4), embedder, len(vectors))


def merged(profiles: Sequence[Profile | None]) -> Profile | None:
    """The profile of an adapter combined from others: their training documents together, the
    lowest floor; None unless every one has a profile from the same embedding model."""
    if not profiles or any(p is None for p in profiles):
        return None
    known = [p for p in profiles if p is not None]
    if len({(p.embedder, p.vectors.shape[1]) for p in known}) > 1:
        return None
    return Profile(np.concatenate([p.vectors for p in known]), min(p.floor for p in known),
                   known[0].embedder, sum(p.documents for p in known))


def save(profile: Profile, folder: Path) -> None:
    from safetensors.numpy import save_file

    # float16 halves the file; the cosines move in the fourth decimal
    save_file({"vectors": profile.vectors.astype(np.float16)}, str(Path(folder) / FILE),
              metadata={"floor": str(profile.floor), "embedder": profile.embedder,
                        "quantile": str(QUANTILE), "margin": str(MARGIN)})


def load(folder: Path, vectors: bool = True) -> Profile | None:
    """The adapter's profile, None when it has none (trained by an older version, federated,
    imported without one). With `vectors` False only its header is read and checked, and the
    profile comes without its vectors."""
    from safetensors import SafetensorError, safe_open

    path = Path(folder) / FILE
    if not path.exists():
        return None
    try:
        with safe_open(str(path), "np") as handle:
            meta = handle.metadata() or {}
            shape = handle.get_slice("vectors").get_shape()
            found = handle.get_tensor("vectors").astype(np.float32) if vectors else None
        floor, embedder = float(meta["floor"]), meta["embedder"]
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as exc:
        raise ProfileError(f"{path.name} is unreadable ({exc or type(exc).__name__}); delete "
                           "it to classify without the check that a document is like the "
                           "training documents") from exc
    if len(shape) != 2 or not shape[0] or not -1.0 <= floor <= 1.0:
        raise ProfileError(f"{path.name} does not hold a profile of training documents")
    return Profile(found if found is not None else np.empty((0, shape[1]), np.float32), floor,
                   embedder, shape[0])
