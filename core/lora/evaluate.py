"""Did the adapter earn its keep? The test split classified four ways — the adapter, the base
model alone (zero-shot, the same label scoring), and two quick baselines a user could build
without the Studio (sentence embeddings + logistic regression; TF-IDF + a linear SVM) — with
the same metrics for each, and the baselines' learning curve: would more examples help?"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from core.lora.data import LabelledData, subsample

Progress = Callable[[str, int, int], None]  # (what, done, total)
MISCLASSIFIED_CHARS = 400


def metrics(truth: list[str], predicted: list[str | None], labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix (rows: truth,
    columns: prediction). A missing prediction counts as wrong."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    shown = [p if p is not None else "(no label)" for p in predicted]
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, shown, labels=labels, zero_division=0)
    right = sum(t == p for t, p in zip(truth, shown))
    return {
        "accuracy": right / len(truth) if truth else 0.0,
        "macro_f1": float(f1.mean()) if len(labels) else 0.0,
        "per_class": {label: {"precision": float(p), "recall": float(r), "f1": float(f),
                              "support": int(s)}
                      for label, p, r, f, s in zip(labels, precision, recall, f1, support)},
        "labels": labels,
        "confusion": confusion_matrix(truth, shown, labels=labels).tolist(),
        "n": len(truth),
    }


def classify_split(classifier, data: LabelledData, use_adapter: bool = True,
                   on_progress: Progress | None = None, what: str = "adapter") -> dict:
    started = time.perf_counter()
    def progress(done: int, total: int) -> None:
        if on_progress:
            on_progress(what, done, total)

    predictions = classifier.score_many(data.texts, use_adapter=use_adapter, on_progress=progress)
    result = metrics(data.labels, [p.label for p in predictions], classifier.labels)
    result["misclassified"] = [
        {"text": text[:MISCLASSIFIED_CHARS], "truth": truth, "predicted": p.label,
         "confidence": p.scores.get(p.label)}
        for text, truth, p in zip(data.texts, data.labels, predictions) if p.label != truth]
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def embedding_baseline(train: LabelledData, test: LabelledData, embedder) -> dict:
    """Sentence embeddings + logistic regression: a minute's work any adapter should beat."""
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    model = LogisticRegression(max_iter=2000)
    model.fit(embedder.embed(train.texts), train.labels)
    predicted = list(model.predict(embedder.embed(test.texts)))
    result = metrics(test.labels, predicted, sorted(set(train.labels) | set(test.labels)))
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def tfidf_baseline(train: LabelledData, test: LabelledData) -> dict:
    """TF-IDF word uni- and bigrams + a linear SVM: the classic text classifier, in seconds."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    started = time.perf_counter()
    # a fixed seed for the solver's shuffling: the learning curve's last point refits this on
    # the same data and must agree with it
    model = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)),
                          LinearSVC(random_state=0))
    model.fit(train.texts, train.labels)
    result = metrics(test.labels, list(model.predict(test.texts)),
                     sorted(set(train.labels) | set(test.labels)))
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


BASELINES = {"baseline": "embeddings + logistic regression", "tfidf": "TF-IDF + linear SVM"}


def baseline_titles(evaluation: dict) -> dict[str, str]:
    """The baselines an evaluation holds, by key, named as a legend or a table row names them."""
    return {key: what[0].upper() + what[1:] for key, what in BASELINES.items()
            if key in evaluation}


CURVE_SIZES = (50, 100, 200)  # then all: each size is a refit of seconds, not a training run


class RememberingEmbedder:
    """Embeds each text once: a learning curve fits on subsets of texts already embedded, so
    its every size costs a fit, not another pass of the embedding model."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.model_name: str = getattr(embedder, "model_name", "")
        self.vectors: dict[str, list[float]] = {}

    @classmethod
    def of(cls, embedder) -> RememberingEmbedder:
        return embedder if isinstance(embedder, cls) else cls(embedder)

    def embed(self, texts: list[str]) -> list[list[float]]:
        new = [text for text in dict.fromkeys(texts) if text not in self.vectors]
        if new:
            self.vectors.update(zip(new, self.embedder.embed(new)))
        return [self.vectors[text] for text in texts]


def curve_sizes(sizes: Iterable[int], total: int) -> list[int]:
    """The sizes smaller than `total`, then `total`: a learning curve ends at all the data."""
    return sorted({n for n in sizes if n < total}) + [total]


def learning_curve(train: LabelledData, test: LabelledData, embedder,
                   sizes: Iterable[int] = CURVE_SIZES, seed: int = 42,
                   on_all: dict[str, float] | None = None) -> list[dict]:
    """Test accuracy of each baseline trained on stratified subsets of `train` (the same
    subsets for both), one row per size, the last on all of it: would more examples help?
    `on_all`: each baseline's accuracy on all of `train` when already measured."""
    embedder = RememberingEmbedder.of(embedder)
    rows = []
    for n in curve_sizes(sizes, len(train.texts)):
        if on_all and n == len(train.texts):
            rows.append({"train_examples": n, **on_all})
            continue
        part = subsample(train, n, seed)
        rows.append({"train_examples": n,
                     "baseline": embedding_baseline(part, test, embedder)["accuracy"],
                     "tfidf": tfidf_baseline(part, test)["accuracy"]})
    return rows


def compare(classifier, train: LabelledData, test: LabelledData, embedder,
            on_progress: Progress | None = None, zero_shot=None) -> dict:
    """The adapter, zero-shot (`zero_shot`'s base model, or the classifier with its adapter
    off) and both baselines on the same test split, with the baselines' learning curve.
    Pass a RememberingEmbedder to keep the documents' vectors (an adapter's profile)."""
    embedder = RememberingEmbedder.of(embedder)
    baselines = {"baseline": embedding_baseline(train, test, embedder),
                 "tfidf": tfidf_baseline(train, test)}
    on_all = {key: result["accuracy"] for key, result in baselines.items()}
    return {"adapter": classify_split(classifier, test, True, on_progress, "adapter"),
            "zero_shot": classify_split(zero_shot or classifier, test, False, on_progress,
                                        "zero-shot"),
            **baselines,
            "learning_curve": learning_curve(train, test, embedder, on_all=on_all),
            "test_size": len(test.texts)}


def baseline_verdict(evaluation: dict) -> str | None:
    """A plain sentence when a classic baseline beats or ties the adapter on the test split: a
    user who is not told would ship the slower classifier for nothing. Evaluations saved before
    the TF-IDF baseline existed are judged on the embeddings baseline alone."""
    adapter = evaluation["adapter"]["accuracy"]
    scores = {key: evaluation[key]["accuracy"] for key in BASELINES
              if isinstance(evaluation.get(key), dict) and "accuracy" in evaluation[key]}
    if not scores or max(scores.values()) < adapter:
        return None
    best = max(scores, key=lambda key: scores[key])
    if scores[best] == adapter:
        return (f"The {BASELINES[best]} baseline does as well as this adapter on the test split "
                f"({adapter:.0%} each), and it runs in a fraction of the time. More examples "
                "per label or the Balanced or Thorough preset may let the adapter pull ahead.")
    return (f"The {BASELINES[best]} baseline beats this adapter on the test split "
            f"({scores[best]:.0%} against {adapter:.0%}). For this data a simple classifier "
            "does better: try the Balanced or Thorough preset or more examples per label, or "
            "use the baseline.")
