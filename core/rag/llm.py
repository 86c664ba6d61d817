"""Chat engines behind one interface: llama.cpp on the packaged GGUF (fast on CPUs),
transformers on the converted HF folder (the fallback, and any HF model), and any
OpenAI-compatible endpoint. Each streams text and can be stopped between tokens.

A local model generates in a thread of its own, one generation at a time per engine. Streamlit
interrupts a script at its next output when the user clicks Stop (or anything else) and starts
the next run in a new thread while the old one may still be inside the model: a llama.cpp
context used by two threads at once aborts the whole process (GGML_ASSERT), and a reader that
is interrupted never closes its generator. So the generation holds the engine's lock, not the
reader; it ends at the next token once `stop` is set, and a second question waits for it."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from core.errors import StudioError
from core.registry import Registry, prepare_command
from core.settings import Settings

WORKING_CONTEXT = 4096  # tokens; more is slow on a laptop CPU and small models don't use it well


class ChatError(StudioError):
    """A plain-words reason the engine could not answer."""


class ChatEngine(Protocol):
    name: str
    context_window: int

    def count_tokens(self, text: str) -> int: ...

    def stream(self, messages: list[dict], max_new_tokens: int,
               stop: threading.Event | None = None) -> Iterator[str]: ...


@dataclass
class StreamStats:
    """Filled in while a stream is consumed: time to first token and decode speed."""

    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    finished_at: float | None = None
    pieces: int = 0
    text: str = ""

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    def tokens_per_s(self, engine: ChatEngine) -> float | None:
        if self.first_token_at is None or self.finished_at is None:
            return None
        decode = self.finished_at - self.first_token_at
        tokens = engine.count_tokens(self.text)
        return (tokens - 1) / decode if decode > 0 and tokens > 1 else None


def timed(pieces: Iterator[str], stats: StreamStats) -> Iterator[str]:
    for piece in pieces:
        if not piece:
            continue
        if stats.first_token_at is None:
            stats.first_token_at = time.perf_counter()
        stats.pieces += 1
        stats.text += piece
        yield piece
    stats.finished_at = time.perf_counter()


_END = object()


def generate_in_thread(lock: threading.Lock, pieces, stop: threading.Event | None,
                       name: str) -> Iterator[str]:
    """Run `pieces(should_stop)` (an iterator of text) in a daemon thread that holds `lock`, and
    yield what it produces. The thread stops at its next piece once `stop` is set or this
    generator is closed, so an abandoned reader never holds the model."""
    stop = stop or threading.Event()
    abandoned = threading.Event()
    out: queue.SimpleQueue = queue.SimpleQueue()

    def should_stop() -> bool:
        return stop.is_set() or abandoned.is_set()

    def run() -> None:
        try:
            with lock:
                if should_stop():  # stopped while an earlier generation held the model
                    return
                produced = pieces(should_stop)
                try:
                    for piece in produced:
                        if should_stop():
                            break
                        out.put(piece)
                finally:
                    produced.close()
        except BaseException as exc:  # surfaced to the reader below
            out.put(exc)
        finally:
            out.put(_END)

    threading.Thread(target=run, daemon=True, name=f"generate {name}").start()
    try:
        while (item := out.get()) is not _END:
            if isinstance(item, BaseException):
                raise ChatError(f"the local model failed: {item}") from item
            yield item
    finally:
        abandoned.set()


# llama.cpp -----------------------------------------------------------------------------------
class LlamaCppEngine:
    def __init__(self, name: str, gguf: Path):
        # llama.cpp's OpenMP threads spin while they wait. On a CPU shared with other work
        # (2 cores, load 7) a spinning thread starves its partner: 190 prompt tokens and 30
        # new ones took ~60 s with the default policy and ~8 s with PASSIVE. Read once, when
        # the library loads; a value set by the user wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from llama_cpp import Llama

        self.name = f"{name} (llama.cpp)"
        self.llm = Llama(model_path=str(gguf), n_ctx=WORKING_CONTEXT,
                         n_threads=os.cpu_count() or 2, verbose=False)
        self.context_window = WORKING_CONTEXT
        self.lock = threading.Lock()  # one llama.cpp context: one generation at a time
        self._formatter: Any = None

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def stream(self, messages, max_new_tokens, stop=None):
        return self.continue_reply(messages, "", max_new_tokens, stop)

    def _prompt(self, messages: list[dict], reply: str) -> tuple[str, list[str]]:
        """The chat template's prompt (the one create_chat_completion would build) followed by
        the start of the assistant's reply, and the template's stop strings."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if self._formatter is None:
            token_text = self.llm._model.token_get_text
            self._formatter = Jinja2ChatFormatter(
                self.llm.metadata["tokenizer.chat_template"],
                eos_token=token_text(self.llm.token_eos()),
                bos_token=token_text(self.llm.token_bos()))
        formatted = self._formatter(messages=messages)
        ends = formatted.stop or []
        return formatted.prompt + reply, [ends] if isinstance(ends, str) else list(ends)

    def continue_reply(self, messages, reply: str, max_new_tokens: int,
                       stop: threading.Event | None = None,
                       stop_at: Sequence[str] = ()) -> Iterator[str]:
        """The reply to `messages` from `reply` on, as if the model had written `reply` itself,
        ended before any of `stop_at`. llama.cpp keeps the tokens it has read and reads only
        what follows them, so carrying on from a reply it has just written costs only the new
        text."""
        prompt, ends = self._prompt(messages, reply)

        def pieces(should_stop):
            # Checked between tokens only: the prompt is read to its end first (seconds).
            for chunk in self.llm.create_completion(prompt, max_tokens=max_new_tokens,
                                                    temperature=0.0, stop=[*ends, *stop_at],
                                                    stream=True):
                if should_stop():
                    break
                yield chunk["choices"][0]["text"]

        return generate_in_thread(self.lock, pieces, stop, self.name)

    def choose(self, messages, reply: str, choices: list[str]) -> str:
        """The model's own pick among `choices` as the next words of `reply`: a grammar lets
        it write nothing else, and greedy decoding takes the likeliest."""
        from llama_cpp import LlamaGrammar

        grammar = LlamaGrammar.from_string(
            "root ::= " + " | ".join(json.dumps(c) for c in choices), verbose=False)
        prompt, _ = self._prompt(messages, reply)
        with self.lock:
            out: Any = self.llm.create_completion(prompt, temperature=0.0,
                                             max_tokens=max(map(self.count_tokens, choices)) + 1,
                                             grammar=grammar)
        return out["choices"][0]["text"]


# transformers --------------------------------------------------------------------------------
class TransformersEngine:
    def __init__(self, name: str, path: Path):
        """`path`: an HF model folder, or a GGUF file (dequantized as it loads: slower to start,
        for machines without llama.cpp)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from core.models import compute_device, compute_dtype

        self.name = f"{name} (transformers)"
        where: dict[str, Any] = ({"pretrained_model_name_or_path": path.parent,
                                  "gguf_file": path.name} if path.is_file()
                                 else {"pretrained_model_name_or_path": path})
        self.tokenizer = AutoTokenizer.from_pretrained(**where)
        model: Any = AutoModelForCausalLM.from_pretrained(**where, dtype=compute_dtype())
        self.model = model.to(compute_device())
        self.model.eval()
        limit = getattr(self.model.config, "max_position_embeddings", WORKING_CONTEXT)
        self.context_window = min(limit, WORKING_CONTEXT)
        self.lock = threading.Lock()  # one generation at a time, as for llama.cpp

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt_ids(self, messages):
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                      return_tensors="pt", return_dict=True)
        # Base models without a template: a plain transcript that ends where the answer begins.
        text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
        return self.tokenizer(text + "\n\nAssistant:", return_tensors="pt")

    def stream(self, messages, max_new_tokens, stop=None):
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        def pieces(should_stop):
            inputs = self._prompt_ids(messages).to(self.model.device)
            inputs.pop("token_type_ids", None)  # BERT-style tokenizers add it; decoders refuse

            class StopWhenAsked(StoppingCriteria):
                def __call__(self, input_ids, scores, **kwargs):
                    return should_stop()

            streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True,
                                            skip_special_tokens=True)
            errors: list[BaseException] = []

            def run() -> None:  # generate() feeds the streamer from a thread of its own
                try:
                    # The penalty matches llama.cpp's default; greedy small models loop
                    # without it.
                    self.model.generate(**inputs, max_new_tokens=max_new_tokens,
                                        do_sample=False, repetition_penalty=1.1,
                                        streamer=streamer,
                                        stopping_criteria=StoppingCriteriaList([StopWhenAsked()]),
                                        pad_token_id=self.tokenizer.pad_token_id
                                        or self.tokenizer.eos_token_id)
                except BaseException as exc:
                    errors.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            try:
                yield from streamer
            finally:  # also when stopped: generate() ends at its next token
                worker.join()
            if errors:
                raise errors[0]

        return generate_in_thread(self.lock, pieces, stop, self.name)


# OpenAI-compatible ---------------------------------------------------------------------------
class OpenAIEngine:
    def __init__(self, base_url: str, model: str, api_key: str | None):
        from openai import OpenAI

        self.name = f"{model} at {base_url}"
        self.base_url, self.model = base_url, model
        self.client = OpenAI(base_url=base_url, api_key=api_key or "none", timeout=60,
                             max_retries=0)
        self.context_window = WORKING_CONTEXT
        self._model_checked = False

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 3)  # no tokenizer for a remote model: err on the long side

    def _check_model(self) -> None:
        """Some servers (llama.cpp's among them) answer with whatever model they hold, whatever
        name is asked for; say so plainly when the endpoint lists models and ours is not one."""
        import openai

        if self._model_checked:
            return
        try:
            served = [m.id for m in self.client.models.list()]
        except openai.NotFoundError:
            served = []  # the endpoint does not list models
        if served and self.model not in served:
            raise ChatError(f"the endpoint at {self.base_url} does not serve the model "
                            f"{self.model!r} (it serves: {', '.join(served)}); check OPENAI_MODEL")
        self._model_checked = True

    def stream(self, messages, max_new_tokens, stop=None):
        import openai

        started = False
        try:
            self._check_model()
            chunks = self.client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=max_new_tokens,
                temperature=0.0, stream=True)
            for chunk in chunks:
                if stop is not None and stop.is_set():
                    chunks.close()
                    break
                if chunk.choices:
                    started = True
                    yield chunk.choices[0].delta.content or ""
        except openai.AuthenticationError as exc:
            raise ChatError(f"the endpoint at {self.base_url} refused the API key "
                            f"(HTTP {exc.status_code}); check OPENAI_API_KEY") from exc
        except openai.NotFoundError as exc:
            raise ChatError(f"the endpoint at {self.base_url} does not know the model "
                            f"{self.model!r} (HTTP 404); check OPENAI_MODEL") from exc
        except openai.APIConnectionError as exc:
            if started:  # the pieces shown so far stay on the page; say why no more came
                raise ChatError(f"the endpoint at {self.base_url} stopped answering in the "
                                f"middle of the answer ({exc.__cause__ or exc})") from exc
            raise ChatError(f"could not reach the endpoint at {self.base_url} "
                            f"({exc.__cause__ or exc})") from exc
        except openai.APIStatusError as exc:
            raise ChatError(f"the endpoint at {self.base_url} answered HTTP "
                            f"{exc.status_code}: {exc.message}") from exc


# Choosing one --------------------------------------------------------------------------------
def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def get_engine(settings: Settings, backend: str | None = None,
               model: str | None = None) -> ChatEngine:
    backend = backend or settings.chat_backend
    if backend == "openai":
        if not settings.openai_base_url or not (model or settings.openai_model):
            raise ChatError("the OpenAI-compatible backend needs OPENAI_BASE_URL and "
                            "OPENAI_MODEL (Settings page or environment)")
        return _openai_engine(settings.openai_base_url, model or settings.openai_model,
                              settings.openai_api_key)
    return _local_engine(str(settings.models_dir), model or settings.chat_model,
                         llama_cpp_available())


@lru_cache(maxsize=4)
def _openai_engine(base_url: str, model: str, api_key: str | None) -> OpenAIEngine:
    return OpenAIEngine(base_url, model, api_key)


@lru_cache(maxsize=2)
def _local_engine(models_dir: str, model: str, use_llama_cpp: bool) -> ChatEngine:
    """A registry model by name, or a folder holding an HF model."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return TransformersEngine(folder.name, folder)
    registry = Registry.load(Path(models_dir) / "registry.toml", Path(models_dir))
    spec = registry.get(model)
    state = registry.state(spec)
    if state.status != "ready":
        raise ChatError(f"chat model {model} is {state.status}: run "
                        f"`{prepare_command(spec)}`")
    if use_llama_cpp and spec.format == "gguf":
        return LlamaCppEngine(spec.name, registry.weights_path(spec))
    return TransformersEngine(spec.name, registry.load_path(spec))
