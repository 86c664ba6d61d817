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
those contracts, flagged 94% and 90% (bench/README.md).

A floor alone serves documents of one narrow kind. News is broad: a news adapter's training
articles came as little as 0.26 close to each other, and contracts came 0.31 close to them, so
nearly all passed. So a profile also keeps documents of other kinds the Studio ships
(`BACKGROUND`: contracts, research papers, Wikipedia passages), less the kinds the adapter was
trained on, and a document must also lead the closest of them by as much as nearly all
documents like the training ones did (`lead_floor`). Over a 120-article news profile that
flagged 99% of contracts, where the floor alone flagged 5%, and no unseen article; over
contract profiles, whose own kind is not compared with, it flags what the floor did
(bench/README.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import StudioError
from core.samples import SAMPLE_QA_PASSAGES
from core.settings import PROJECT_ROOT
from core.text import listed

FILE = "training-documents.safetensors"
# Documents of other kinds ({"kind", "text"} a line; data/background/CREDITS.md), and the shipped
# SQuAD sample's Wikipedia passages
BACKGROUND = PROJECT_ROOT / "data" / "background" / "documents.jsonl"
ENCYCLOPEDIA = "Wikipedia articles"
# A kind of the background is one the adapter learnt from unless all but 5% of the documents
# like its training documents are closer to those than to any document of that kind. Held to
# what the training documents are close to, the rule wavered: contracts came 0.31 to a news
# adapter's articles, whose 5% quantile was 0.30 to 0.34 as the sample changed.
KIND_QUANTILE = 0.05
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


def background() -> list[tuple[str, str]]:
    """(kind, text) of each document of another kind the Studio ships."""
    rows = [json.loads(line) for line in BACKGROUND.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [(row["kind"], row["text"]) for row in rows] + [
        (ENCYCLOPEDIA, path.read_text(encoding="utf-8"))
        for path in sorted(SAMPLE_QA_PASSAGES.glob("*.txt"))]


@dataclass(frozen=True)
class Likeness:
    closest: float  # cosine similarity to the nearest training document
    floor: float  # the adapter's: documents of the kind it was trained on came this close
    other: float | None = None  # to the nearest document of another kind (`BACKGROUND`)
    other_kind: str = ""  # that document's kind
    lead_floor: float | None = None  # closest - other: documents like them led by this much

    @property
    def nearer_another_kind(self) -> bool:
        return (self.other is not None and self.lead_floor is not None
                and self.closest - self.other < self.lead_floor)

    @property
    def familiar(self) -> bool:
        return self.closest >= self.floor and not self.nearer_another_kind

    def as_dict(self) -> dict:
        return {"closest": self.closest, "floor": self.floor, "other": self.other,
                "other_kind": self.other_kind or None, "lead_floor": self.lead_floor,
                "familiar": self.familiar}

    def brief(self) -> str:
        """Why a document is unlike the training documents, in a table's few words."""
        if self.closest >= self.floor and self.nearer_another_kind:
            return f"more like {self.other_kind}"  # than the training documents, says the page
        return "unlike the training documents"

    # Three decimals: a paper at 0.2349 beside a floor of 0.2329 read "0.23 to the closest"
    # against "similarity under 0.23", one number passing and failing the same check.
    def sentence(self) -> str:
        """What a page or the CLI says about a document unlike the training documents."""
        if self.closest < self.floor:
            return (f"Unlike the documents this adapter was trained on: its similarity to the "
                    f"closest of them is {self.closest:.3f}, below the {self.floor:.3f} that "
                    f"nearly all documents like them reached when it was tested. Read the "
                    f"label as a guess.")
        kept = f"the {self.other_kind} the Studio keeps for comparison"
        other = self.other if self.other is not None else 0.0
        return ("Unlike the documents this adapter was trained on: it is "
                + (f"more like {kept} ({other:.3f} to the closest) than like them "
                   f"({self.closest:.3f})" if other >= self.closest else
                   f"almost as like {kept} ({other:.3f} to the closest) as like them "
                   f"({self.closest:.3f}), where nearly all documents like them were clearly "
                   f"nearer to them") + ". Read the label as a guess.")


@dataclass
class Profile:
    vectors: np.ndarray  # [training documents, dimensions], unit length
    floor: float
    embedder: str  # the registry name of the embedding model that made the vectors
    documents: int  # how many; also known when only the header was read (`load`)
    # documents of other kinds than the training documents' (`BACKGROUND`), unit length; none
    # for a profile made before they were kept
    others: np.ndarray | None = None
    other_kinds: list[str] = field(default_factory=list)  # the kind of each
    lead_floor: float | None = None

    @property
    def kinds(self) -> list[str]:
        """The other kinds compared with, each once, in the order they were kept."""
        return list(dict.fromkeys(self.other_kinds))

    def kinds_in_words(self) -> str:
        """"contracts, research papers or Wikipedia articles"; "" when none are kept."""
        return listed(self.kinds, "or")

    def likeness(self, vectors: Sequence[Sequence[float]]) -> list[Likeness]:
        found = np.asarray(vectors, dtype=np.float32)
        if found.ndim != 2 or found.shape[1] != self.vectors.shape[1]:
            raise ProfileError(f"{self.embedder} gave vectors of another size than the "
                               f"profile's {self.vectors.shape[1]}")
        closest = (found @ self.vectors.T).max(axis=1)
        if self.others is None or not len(self.others) or self.lead_floor is None:
            return [Likeness(round(float(c), 4), self.floor) for c in closest]
        to_others = found @ self.others.T
        nearest = to_others.argmax(axis=1)
        return [Likeness(round(float(c), 4), self.floor, round(float(to_others[i, j]), 4),
                         self.other_kinds[j], self.lead_floor)
                for i, (c, j) in enumerate(zip(closest, nearest))]

    def check(self, texts: list[str], embed: Embed) -> list[Likeness]:
        return self.likeness(embed(texts)) if texts else []


def build(train: Sequence[Sequence[float]], held_out: Sequence[Sequence[float]],
          embedder: str, others: Sequence[Sequence[float]] = (),
          other_kinds: Sequence[str] = ()) -> Profile:
    """The profile of a training split, its floor set on the documents held out from it and on
    each training document against all the others; with `others` (`background`'s documents,
    of `other_kinds`), those of the kinds unlike the training documents, and how far ahead of
    the closest of them nearly all documents like the training ones came."""
    vectors = np.asarray(train, dtype=np.float32)
    if len(vectors) < MIN_DOCUMENTS:
        raise ProfileError(f"a profile needs at least {MIN_DOCUMENTS} training documents, not "
                           f"{len(vectors)}")
    within = vectors @ vectors.T
    np.fill_diagonal(within, -1.0)
    seen_vectors, seen = [vectors], [within.max(axis=1)]
    if len(held_out):
        held = np.asarray(held_out, dtype=np.float32)
        seen_vectors.append(held)
        seen.append((held @ vectors.T).max(axis=1))
    closeness = np.concatenate(seen)
    floor = round(float(np.quantile(closeness, QUANTILE)) - MARGIN, 4)
    if not len(others):
        return Profile(vectors, floor, embedder, len(vectors))
    other = np.asarray(others, dtype=np.float32)
    kinds = np.asarray(other_kinds)
    to_others = np.concatenate(seen_vectors) @ other.T
    keep = np.isin(kinds, [k for k in dict.fromkeys(kinds) if np.quantile(
        closeness - to_others[:, kinds == k].max(axis=1), KIND_QUANTILE) > 0])
    if not keep.any():
        return Profile(vectors, floor, embedder, len(vectors))
    leads = closeness - to_others[:, keep].max(axis=1)
    lead_floor = round(float(np.quantile(leads, QUANTILE)) - MARGIN, 4)
    return Profile(vectors, floor, embedder, len(vectors), other[keep],
                   [str(k) for k in kinds[keep]], lead_floor)


def of_split(train: list[str], held_out: list[str], embed: Embed, embedder: str) -> Profile:
    """The profile of a training split's texts, as training builds it: embedded by `embed`
    (the model named `embedder`) and compared with `background`'s documents."""
    kinds, others = zip(*background())
    return build(embed(train), embed(held_out), embedder, embed(list(others)), kinds)


def merged(profiles: Sequence[Profile | None]) -> Profile | None:
    """The profile of an adapter combined from others: their training documents together, the
    lowest floors, and the documents of the kinds that every one of them tells apart; None
    unless every one has a profile from the same embedding model."""
    if not profiles or any(p is None for p in profiles):
        return None
    known = [p for p in profiles if p is not None]
    if len({(p.embedder, p.vectors.shape[1]) for p in known}) > 1:
        return None
    profile = Profile(np.concatenate([p.vectors for p in known]), min(p.floor for p in known),
                      known[0].embedder, sum(p.documents for p in known))
    first = known[0]
    if first.others is None or any(p.lead_floor is None for p in known):
        return profile
    kinds = set.intersection(*(set(p.other_kinds) for p in known))
    keep = np.isin(first.other_kinds, list(kinds))
    if keep.any():
        profile.others = first.others[keep]
        profile.other_kinds = [k for k, kept in zip(first.other_kinds, keep) if kept]
        profile.lead_floor = min(p.lead_floor for p in known if p.lead_floor is not None)
    return profile


def save(profile: Profile, folder: Path) -> None:
    from safetensors.numpy import save_file

    # float16 halves the file; the cosines move in the fourth decimal
    tensors = {"vectors": profile.vectors.astype(np.float16)}
    metadata = {"floor": str(profile.floor), "embedder": profile.embedder,
                "quantile": str(QUANTILE), "margin": str(MARGIN)}
    if profile.others is not None and len(profile.others) and profile.lead_floor is not None:
        names = profile.kinds
        tensors["others"] = profile.others.astype(np.float16)
        tensors["other_kinds"] = np.asarray([names.index(k) for k in profile.other_kinds],
                                            dtype=np.int32)
        metadata.update(kinds=json.dumps(names), lead_floor=str(profile.lead_floor))
    save_file(tensors, str(Path(folder) / FILE), metadata=metadata)


def load(folder: Path, vectors: bool = True) -> Profile | None:
    """The adapter's profile, None when it has none (trained by an older version, federated,
    imported without one). With `vectors` False only its header (and the kinds of the
    documents of other kinds) is read and checked, and the profile comes without vectors."""
    from safetensors import SafetensorError, safe_open

    path = Path(folder) / FILE
    if not path.exists():
        return None
    others, other_kinds, lead_floor = None, [], None
    try:
        with safe_open(str(path), "np") as handle:
            meta = handle.metadata() or {}
            shape = handle.get_slice("vectors").get_shape()
            found = handle.get_tensor("vectors").astype(np.float32) if vectors else None
            if "others" in handle.keys():
                names = json.loads(meta["kinds"])
                other_kinds = [names[i] for i in handle.get_tensor("other_kinds")]
                lead_floor = float(meta["lead_floor"])
                others = handle.get_tensor("others").astype(np.float32) if vectors else None
        floor, embedder = float(meta["floor"]), meta["embedder"]
    except (SafetensorError, OSError, KeyError, ValueError, TypeError, IndexError) as exc:
        raise ProfileError(f"{path.name} is unreadable ({exc or type(exc).__name__}); delete "
                           "it to classify without the check that a document is like the "
                           "training documents") from exc
    if len(shape) != 2 or not shape[0] or not -1.0 <= floor <= 1.0:
        raise ProfileError(f"{path.name} does not hold a profile of training documents")
    if others is not None and (others.shape[1:] != (shape[1],) or len(other_kinds) != len(others)):
        raise ProfileError(f"{path.name} does not hold a profile of training documents")
    return Profile(found if found is not None else np.empty((0, shape[1]), np.float32), floor,
                   embedder, shape[0], others, other_kinds, lead_floor)
