"""Chat speed: time to first token and decode tokens/s for each local engine and model, with 5
chunks of context from the sample paper, against llama.cpp's own rate on the same GGUF.

Baseline: llama-cpp-python's `Llama.create_chat_completion` called directly, with the same
messages. Studio: `core.rag.llm` engines (llama.cpp and transformers) as the app uses them.
Each row: median of 3 runs after a warm-up, each with the prompt evaluated afresh (llama.cpp
would otherwise reuse the identical prompt from the run before). Prints a table, then JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ["STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="bench-chat-")

from core.rag.ingest import ingest_files
from core.rag.llm import LlamaCppEngine, StreamStats, TransformersEngine, timed
from core.rag.prompting import build_prompt
from core.rag.retrieval import RetrievalOptions, search
from core.registry import Registry
from core.samples import SAMPLE_PAPER
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]

MODELS = ["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct"]
QUESTION = "How can I tell that my model is overfitting, and what can I do about it?"
NEW_TOKENS = 96
RUNS = 3


def measure(engine, messages) -> dict:
    rows = []
    for i in range(RUNS + 1):
        if hasattr(engine, "llm"):
            engine.llm.reset()  # llama.cpp would reuse the repeated prompt: measure a cold one
        stats = StreamStats()
        for _ in timed(engine.stream(messages, NEW_TOKENS), stats):
            pass
        if i:  # the first run warms caches
            rows.append((stats.ttft_s, stats.tokens_per_s(engine)))
    return {"ttft_s": statistics.median(r[0] for r in rows),
            "decode_tokens_per_s": statistics.median(r[1] for r in rows)}


class RawLlamaCpp:
    """llama.cpp with nothing of the Studio's around it: the baseline."""

    def __init__(self, engine: LlamaCppEngine):
        self.llm, self.name, self.context_window = engine.llm, "llama.cpp direct", 4096
        self.count_tokens = engine.count_tokens

    def stream(self, messages, max_new_tokens, stop=None):
        for chunk in self.llm.create_chat_completion(messages=messages, max_tokens=max_new_tokens,
                                                     temperature=0.0, stream=True):
            yield chunk["choices"][0]["delta"].get("content") or ""


def main() -> None:
    settings = load_settings()
    ingest_files(settings, [SAMPLE_PAPER], "bench")
    hits = search(settings, "bench", QUESTION, RetrievalOptions(k=5)).hits
    registry = Registry.load(settings.registry_path, settings.models_dir)
    results = []
    for name in MODELS:
        spec = registry.get(name)
        llama = LlamaCppEngine(name, registry.weights_path(spec))
        messages = build_prompt(QUESTION, hits, llama, NEW_TOKENS).messages
        engines = [("llama.cpp direct (baseline)", RawLlamaCpp(llama)),
                   ("studio llama.cpp", llama),
                   ("studio transformers", TransformersEngine(name, registry.load_path(spec)))]
        for label, engine in engines:
            started = time.perf_counter()
            row = {"model": name, "engine": label, **measure(engine, messages)}
            row["seconds"] = time.perf_counter() - started
            results.append(row)
        base = results[-3]["decode_tokens_per_s"]
        for row in results[-3:]:
            row["decode_vs_llama_cpp"] = row["decode_tokens_per_s"] / base
    print(f"{'model':<30}{'engine':<30}{'TTFT s':>8}{'tok/s':>8}{'vs llama.cpp':>14}")
    for r in results:
        print(f"{r['model']:<30}{r['engine']:<30}{r['ttft_s']:>8.2f}"
              f"{r['decode_tokens_per_s']:>8.1f}{r['decode_vs_llama_cpp']:>13.2f}x")
    print(json.dumps({"context_chunks": len(hits), "new_tokens": NEW_TOKENS, "rows": results}))


if __name__ == "__main__":
    main()
