"""The API fuzzed from its own OpenAPI schema (schemathesis), in-process: every operation gets
the schema's boundary values (its coverage cases: lengths at and past each limit, wrong types,
missing fields), then random requests that fit the schema and random ones that break it, and
none may answer 5xx or show a Python traceback. /predict classifies with the tiny adapter of the
test library, and /v1/search and /v1/embeddings search and embed for real in a one-document
collection: some of the requests that fit the schema name it (`rag:tiny`) or the embedding model,
since random names only ever find a 404. The chat endpoint's deeper path (a model answering)
is not fuzzed: its random model names get 404."""

import json
import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from core.settings import load_settings

# (method, path): every operation of the schema, checked against it below.
OPERATIONS = [("GET", "/health"), ("GET", "/adapters"), ("POST", "/predict"),
              ("POST", "/predict_fewshot"), ("GET", "/v1/models"),
              ("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"),
              ("POST", "/v1/search")]
EXAMPLES = 50  # random requests per operation and mode
COVERAGE = "coverage"
# A GET here takes nothing a request could get wrong: only the bodies are also fuzzed invalid.
CASES = [(method, path, mode) for method, path in OPERATIONS
         for mode in (COVERAGE, *GenerationMode)
         if method == "POST" or mode is not GenerationMode.NEGATIVE]
TRACEBACK = ("Traceback", 'File "')
COLLECTION = "tiny"
# Field and real names that requests which fit the schema sometimes carry.
REAL_NAMES = {"/v1/search": ("collection", [COLLECTION]),
              "/v1/embeddings": ("model", [f"rag:{COLLECTION}", "all-minilm-l6-v2"])}
# Operations whose valid requests must get through to the model or the collection, at times.
REACHED = ("/predict", "/predict_fewshot", "/v1/search", "/v1/embeddings")
OUTSIDE = ("CHROMA_HOST", "TIKA_SERVER_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY",
           "OPENAI_MODEL", "STUDIO_EMBEDDING_MODEL", "STUDIO_MODELS_DIR")


@pytest.fixture(scope="module")
def data_with_a_collection(tmp_path_factory):
    from core.rag.ingest import ingest_files

    root = tmp_path_factory.mktemp("fuzz")
    document = root / "lease.txt"
    document.write_text("The tenant pays the rent on the first day of each month. The landlord "
                        "repairs the roof and the heating. Either party may end the lease with "
                        "three months' notice in writing.\n" * 3)
    env = {**os.environ, **{name: "" for name in OUTSIDE}, "STUDIO_DATA_DIR": str(root / "data")}
    [result] = ingest_files(load_settings(env=env), [document], COLLECTION)
    assert result.status == "ok", result
    return root / "data"


@pytest.fixture
def schema(studio_env, tiny_library, data_with_a_collection, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(data_with_a_collection))
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(tiny_library))
    base = json.loads((tiny_library / "adapters" / "tiny-cuad" / "studio-adapter.json")
                      .read_text())["base"]
    monkeypatch.setenv("STUDIO_LORA_BASE_MODEL", base)
    from core.api import create_app

    return schemathesis.openapi.from_asgi("/openapi.json", create_app(load_settings()))


def problem(response) -> str | None:
    if response.status_code >= 500:
        return f"answered {response.status_code}"
    text = response.content.decode("utf-8", "replace")
    if any(mark in text for mark in TRACEBACK):
        return "a traceback in the body"
    return None


@pytest.mark.slow
@pytest.mark.parametrize("method,path,mode", CASES,
                         ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_fuzzed_requests_get_no_5xx_and_no_traceback(schema, method, path, mode):
    operation = schema[path][method]
    found: list[str] = []
    statuses: Counter[int] = Counter()

    def check(case) -> None:
        try:
            # schemathesis gives up after 10 s; a loaded 2-core machine can take longer to
            # embed the largest batch it sends, and speed is not what this test checks
            response = case.call(timeout=120)
        except Exception as exc:  # the app raised: the client saw a 500
            found.append(f"{type(exc).__name__}: {exc} for {case.as_curl_command()}")
            return
        statuses[response.status_code] += 1
        if (why := problem(response)) is not None:
            found.append(f"{why} for {case.as_curl_command()}:\n{response.text[:2000]}")

    if mode == COVERAGE:
        for case in schema.iter_coverage_cases(
                operation, generation_modes=list(GenerationMode),
                generation_config=schema.config.generation_for(operation=operation)):
            check(case)
    else:
        field, names = REAL_NAMES.get(path, ("", []))

        # Derandomized, no example database: the same requests on every run and machine.
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode),
               name=st.sampled_from([None, *names]))
        def fuzz(case, name):
            if name and mode is GenerationMode.POSITIVE and isinstance(case.body, dict):
                case.body[field] = name
            check(case)

        fuzz()
    assert not found, "\n\n".join(found[:5])
    if mode is GenerationMode.POSITIVE and path in REACHED:  # not all refused at the door
        assert statuses[200], statuses


def test_every_operation_is_fuzzed(schema):
    listed = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert listed == set(OPERATIONS)
