"""The API under load: N concurrent clients (asyncio + httpx) on loopback against a real
`python -m core api`, mixing /v1/search, short RAG chats (/v1/chat/completions on rag:, streamed
and not, 16 new tokens) and /predict for D seconds; against the same clients sending only
/predict, the classification-only API as it was before the OpenAI-compatible face. Both phases
run in the same run, each on a fresh server over the same data.

Bar: no 5xx, every request answered or refused with 429 (each status is counted per endpoint).
Also p50/p95 latency of the answered requests, answers per second and the server's peak RSS
(VmHWM, Linux). The server is set up as tests/test_api_openai.py sets it up: a collection built
from one of the shared papers by the Studio's ingest, the tests' tiny adapter and a tiny random
chat model (tests/tiny.py), so the load measures the API, its queues, retrieval and embedding
rather than generation speed; --chat-model puts a real chat model behind rag: instead. For
/predict the table also gives the server's own scoring time (its latency_ms), without the queue.

A client refused with 429 waits --backoff seconds (not the 10 s of Retry-After, which would
leave the server idle) and sends its next request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.timing import percentiles
from core.lora.data import load
from core.rag.ingest import ingest_files
from core.samples import SAMPLE_DATASET
from core.settings import PROJECT_ROOT, load_settings
from tests.servers import OUTSIDE, free_port, running
from tests.tiny import tiny_adapter_library, tiny_causal_lm

PAPERS = PROJECT_ROOT.parent / "shared" / "data" / "papers"
KEY = "sk-bench-api-load"
COLLECTION = "paper"
ADAPTER = "tiny-cuad"
MAX_TOKENS = 16
TIMEOUT_S = 120  # a request still unanswered after this counts as "timeout", not as an answer
QUESTIONS = ("What does the discriminator estimate?", "How is the generator trained?",
             "What is the value function of the minimax game?",
             "Which datasets were the adversarial nets trained on?",
             "Why are Markov chains not needed?")
# Mixed: a third each for search, chat (half of it streamed) and predict.
MIXED = ("search", "chat", "predict", "search", "chat-stream", "predict")
CLASSIFICATION_ONLY = ("predict",)
NAMES = {"search": "/v1/search", "chat": "/v1/chat/completions",
         "chat-stream": "/v1/chat/completions stream", "predict": "/predict"}


def prepare(root: Path, paper: Path, chat_model: str | None) -> tuple[dict[str, str], int]:
    """The server's environment, and the chunks in its collection."""
    models = tiny_adapter_library(root / "library")
    env = {**{name: "" for name in OUTSIDE}, "STUDIO_DATA_DIR": str(root / "data"),
           "STUDIO_MODELS_DIR": str(models), "STUDIO_CHAT_BACKEND": "local",
           "STUDIO_CHAT_MODEL": chat_model or str(tiny_causal_lm(root / "tiny-chat")),
           "STUDIO_API_KEYS": KEY}
    [result] = ingest_files(load_settings(env={**os.environ, **env}), [paper], COLLECTION)
    if result.status != "ok":
        raise SystemExit(f"{paper.name}: {result.error}")
    return env, result.chunks


async def call(http: httpx.AsyncClient, kind: str, n: int, texts: list[str]) -> tuple[str, float | None]:
    """One request; its outcome (the status code, or what went wrong when there was none or a
    200 carried no answer) and, for /predict, the server's own scoring time in seconds, which
    leaves out the time spent waiting in the queue."""
    question = QUESTIONS[n % len(QUESTIONS)]
    chat = {"model": f"rag:{COLLECTION}", "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": question}]}
    try:
        if kind == "chat-stream":
            async with http.stream("POST", "/v1/chat/completions",
                                   json={**chat, "stream": True}) as response:
                if response.status_code != 200:
                    await response.aread()
                    return str(response.status_code), None
                # An error after the status line travels as an event; [DONE] ends every stream.
                events = [line.removeprefix("data: ") async for line in response.aiter_lines()
                          if line]
                failed = any("error" in json.loads(e) for e in events[:-1])
                return "200" if events[-1:] == ["[DONE]"] and not failed else "stream error", None
        if kind == "search":
            response = await http.post("/v1/search", json={"question": question,
                                                           "collection": COLLECTION, "k": 5})
            needed = "data"
        elif kind == "chat":
            response = await http.post("/v1/chat/completions", json=chat)
            needed = "choices"
        else:
            response = await http.post("/predict", json={"text": texts[n % len(texts)],
                                                         "adapter": ADAPTER})
            needed = "label"
    except httpx.TimeoutException:
        return "timeout", None
    except httpx.HTTPError as exc:
        return type(exc).__name__, None
    if response.status_code != 200:
        return str(response.status_code), None
    body = response.json()
    if not body.get(needed):
        return "empty answer", None
    return "200", body["latency_ms"] / 1000 if kind == "predict" else None


async def load_phase(url: str, mix: tuple[str, ...], clients: int, seconds: float,
                     backoff: float, texts: list[str]) -> tuple[list[tuple], float]:
    records: list[tuple[str, str, float, float | None]] = []
    rng = random.Random(0)

    def connect() -> httpx.AsyncClient:
        # A connection per client, as separate clients have: a shared pool hands a request a
        # connection that may have sat idle past uvicorn's keep-alive of 5 s and be closed under
        # it (httpx's ReadError, a request that never reached the server).
        return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"},
                                 timeout=TIMEOUT_S)

    async def client(first: int, deadline: float) -> None:
        n = first
        async with connect() as http:
            while time.monotonic() < deadline:
                kind = mix[n % len(mix)]
                started = time.perf_counter()
                outcome, server_s = await call(http, kind, n, texts)
                records.append((kind, outcome, time.perf_counter() - started, server_s))
                n += 1
                if outcome == "429":
                    await asyncio.sleep(backoff * rng.uniform(0.5, 1.5))

    # Warm-up, one request of each kind in turn: the first use of each model loads it, which
    # is start-up time, not latency under load.
    async with connect() as http:
        for n, kind in enumerate(dict.fromkeys(mix)):
            outcome, _ = await call(http, kind, n, texts)
            if outcome != "200":
                raise SystemExit(f"warm-up {NAMES[kind]} answered {outcome}")
    started = time.monotonic()
    await asyncio.gather(*(client(i, started + seconds) for i in range(clients)))
    return records, time.monotonic() - started


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc: peak RSS is read on Linux only")


def phase(name: str, env: dict[str, str], mix: tuple[str, ...], args, texts: list[str],
          logs: Path) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "core", "api", "--port", str(port)], url + "/health",
                 logs / f"{name}.log", 300, env=env, cwd=PROJECT_ROOT) as server:
        records, wall = asyncio.run(load_phase(url, mix, args.clients, args.seconds,
                                               args.backoff, texts))
        peak = peak_rss_mb(server.pid)
    endpoints = {}
    for kind in dict.fromkeys(mix):
        outcomes = Counter(outcome for k, outcome, _, _ in records if k == kind)
        answered = [s for k, outcome, s, _ in records if k == kind and outcome == "200"]
        scoring = [s for k, outcome, _, s in records if k == kind and s is not None]
        endpoints[NAMES[kind]] = {
            "requests": sum(outcomes.values()), "statuses": dict(outcomes.most_common()),
            "answered_per_s": len(answered) / wall,
            **(percentiles(answered) if answered else {"p50_ms": None, "p95_ms": None}),
            **({"server_" + k: v for k, v in percentiles(scoring).items()} if scoring else {})}
    outcomes = Counter(outcome for _, outcome, _, _ in records)
    return {"wall_s": wall, "peak_rss_mb": peak, "endpoints": endpoints,
            "no_5xx": not any(o.startswith("5") for o in outcomes),
            "all_answered_or_429": set(outcomes) <= {"200", "429"}}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def print_table(phases: dict) -> None:
    print(f"{'phase':<20}{'endpoint':<30}{'requests':>9}{'200':>7}{'429':>7}{'other':>7}"
          f"{'p50 ms':>9}{'p95 ms':>9}{'answers/s':>10}{'scoring p50 ms':>16}")
    for name, result in phases.items():
        for endpoint, row in result["endpoints"].items():
            statuses = row["statuses"]
            other = row["requests"] - statuses.get("200", 0) - statuses.get("429", 0)
            p50, p95, scoring = (f"{row[p]:>{w}.0f}" if row.get(p) is not None else f"{'-':>{w}}"
                                 for p, w in (("p50_ms", 9), ("p95_ms", 9), ("server_p50_ms", 16)))
            print(f"{name:<20}{endpoint:<30}{row['requests']:>9}{statuses.get('200', 0):>7}"
                  f"{statuses.get('429', 0):>7}{other:>7}{p50}{p95}{row['answered_per_s']:>10.1f}"
                  f"{scoring}")
    for name, result in phases.items():
        print(f"{name}: peak RSS {result['peak_rss_mb']:.0f} MB, no 5xx: {result['no_5xx']}, "
              f"all answered or 429: {result['all_answered_or_429']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="mean seconds a client waits after a 429 (default 1)")
    parser.add_argument("--paper", type=Path, default=PAPERS / "1406.2661_GAN.pdf",
                        help="the document of the collection (default: the GAN paper)")
    parser.add_argument("--chat-model", help="chat model behind rag: (a registry name or a "
                                             "folder); default: a tiny random one")
    parser.add_argument("--omp-threads", type=int,
                        help="OMP_NUM_THREADS for the server (default: unset, as the Studio "
                             "runs): torch's threads fight over a busy machine's cores")
    args = parser.parse_args()
    load_before = os.getloadavg()
    texts = load(SAMPLE_DATASET, "text", "label").texts
    logs = Path(tempfile.mkdtemp(prefix="bench-api-load-logs-"))  # kept: a 5xx's traceback
    with tempfile.TemporaryDirectory(prefix="bench-api-load-") as tmp:
        env, chunks = prepare(Path(tmp), args.paper, args.chat_model)
        if args.omp_threads:
            env["OMP_NUM_THREADS"] = str(args.omp_threads)
        settings = load_settings(env={**os.environ, **env})
        phases = {"classification-only": phase("classification-only", env,
                                               CLASSIFICATION_ONLY, args, texts, logs),
                  "mixed": phase("mixed", env, MIXED, args, texts, logs)}
    base, mixed = (phases[p]["endpoints"]["/predict"] for p in ("classification-only", "mixed"))
    ratios = {"predict_p50_mixed_over_alone": ratio(mixed["p50_ms"], base["p50_ms"]),
              "predict_p95_mixed_over_alone": ratio(mixed["p95_ms"], base["p95_ms"]),
              "predict_scoring_p50_mixed_over_alone": ratio(mixed.get("server_p50_ms"),
                                                            base.get("server_p50_ms")),
              "predict_answers_per_s_mixed_over_alone": ratio(mixed["answered_per_s"],
                                                              base["answered_per_s"]),
              "peak_rss_mixed_over_alone": ratio(phases["mixed"]["peak_rss_mb"],
                                                 phases["classification-only"]["peak_rss_mb"])}
    print_table(phases)
    print(json.dumps({"clients": args.clients, "seconds": args.seconds, "backoff_s": args.backoff,
                      "paper": args.paper.name, "chunks": chunks, "max_tokens": MAX_TOKENS,
                      "chat_model": args.chat_model or "tiny random (tests/tiny.py)",
                      "adapter": f"{ADAPTER} (tests/tiny.py)", "api_queue": settings.api_queue,
                      "omp_threads": args.omp_threads, "cpus": os.cpu_count(), "load_average_before": load_before,
                      "load_average_after": os.getloadavg(), "server_logs": str(logs),
                      "phases": phases,
                      "ratios": ratios,
                      "pass": all(p["no_5xx"] and p["all_answered_or_429"]
                                  for p in phases.values())}))


if __name__ == "__main__":
    main()
