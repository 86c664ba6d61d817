"""The training wizard in headless Chromium: sample data, the quick preset on the real Gemma 3
270M, a live loss curve that grows, Stop, the evaluation on the test split, the saved adapter."""

import json
import os
import re
import signal
import time

import pytest

from tests.conftest import OUTPUT
from tests.e2e.browser import browser_page, streamlit_server, wait_until_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]
RUN = "browser-run"
STEP = re.compile(r"step (\d+) of (\d+|\?)")

# The number of points in the longest trace of each plotly chart on the page: Plotly keeps the
# figure's data on its graph div.
CHART_POINTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
    gd => Math.max(0, ...(gd.data || []).map(t => (t.x || []).length)))"""


def progress_text(page) -> str:
    """The live run's progress line, e.g. "running · step 3 of 12" ("" before it shows)."""
    bar = page.locator("[data-testid='stProgress']")
    return bar.first.inner_text() if bar.count() else ""


def wait_for_progress(page, ok, timeout_s: float, what: str, errors: list[str]) -> str:
    """Poll the progress line until `ok(text)`; note any exception the page shows meanwhile
    (the live fragment re-renders every 2 s, so one can come and go between two looks)."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        try:
            text = progress_text(page)
            shown = page.locator("[data-testid='stException']")
            if shown.count():
                message = shown.first.inner_text().strip().splitlines()[0]
                if message not in errors:
                    errors.append(message)
                    page.screenshot(path=str(OUTPUT / "train-wizard-exception.png"))
        except Exception:  # the fragment re-rendered under us: read it again
            text = ""
        if text and ok(text):
            return text
        page.wait_for_timeout(1000)
    page.screenshot(path=str(OUTPUT / "train-wizard-timeout.png"))
    raise AssertionError(f"{what}: still {text!r} after {timeout_s:.0f} s")


def shot(page, name: str) -> None:
    size = page.viewport_size
    page.mouse.move(size["width"] - 5, size["height"] - 5)  # no hover: highlights, toolbars
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUTPUT / name))


def step_of(text: str) -> int:
    match = STEP.search(text)
    return int(match.group(1)) if match else 0


def stop_leftover_trainer(data_dir) -> None:
    """The trainer runs detached from the server; if the test failed before it ended, end it
    (it leads its own process group)."""
    try:
        held = json.loads((data_dir / "runs" / ".active.json").read_text())
        os.killpg(int(held["pid"]), signal.SIGTERM)
    except (FileNotFoundError, json.JSONDecodeError, KeyError, ValueError, ProcessLookupError,
            PermissionError):
        pass


def test_train_wizard_quick_run_live_curve_stop_and_evaluate(studio_env, models_env):
    env = {"STUDIO_DATA_DIR": str(studio_env), "STUDIO_MODELS_DIR": str(models_env)}
    started, finished, errors = time.monotonic(), False, []
    try:
        with streamlit_server(env=env) as url, browser_page(height=1300) as page:
            # Step 1 — Data: the sample dataset, its labels and the split.
            page.goto(url + "/train")
            page.get_by_text("5 labels").wait_for(timeout=120_000)
            wait_until_idle(page, 120_000)
            assert page.get_by_role("radio", name="Sample dataset").is_checked()
            page.get_by_text("train 48 · validation 6 · test 6").wait_for(timeout=10_000)
            shot(page, "train-wizard-data.png")

            # Step 2 — Model and LoRA: the quick preset on the default base model.
            page.get_by_role("button", name="Next: model and LoRA settings").click()
            page.get_by_text("Trainable parameters").wait_for(timeout=120_000)
            wait_until_idle(page, 120_000)
            base = page.locator(".st-key-train-base")
            assert "gemma-3-270m" in base.inner_text() + base.locator("input").input_value()
            # A segmented control is a radiogroup of buttons with role "radio".
            quick = page.locator(".st-key-train-preset").get_by_role(
                "radio", name="Quick demo — minutes on a laptop")
            assert quick.get_attribute("aria-checked") == "true"  # the settings start as Quick
            step = page.locator(".st-key-train-step").get_by_role("radio", name="2 · Model")
            assert step.get_attribute("aria-checked") == "true"
            metric = page.locator("[data-testid='stMetric']").filter(
                has_text="Trainable parameters")
            value = metric.locator("[data-testid='stMetricValue']").inner_text().strip()
            assert re.fullmatch(r"\d{1,3}(,\d{3})+", value), value
            shot(page, "train-wizard-model.png")

            # Step 3 — Train: start, watch the curve grow, stop.
            page.get_by_role("button", name="Next: train").click()
            name = page.get_by_label("Run name (also the adapter's name)")
            name.wait_for(timeout=60_000)
            wait_until_idle(page)
            name.fill(RUN)
            name.press("Enter")
            wait_until_idle(page)
            page.get_by_role("button", name="Start training").click()
            # Gemma loads in a fresh process, then each step takes ~10 s on 2 cores.
            page.locator("[data-testid='stPlotlyChart']").first.wait_for(timeout=180_000)
            text = wait_for_progress(page, lambda t: step_of(t) >= 2, 240, "two steps",
                                     errors)
            assert "running" in text and STEP.search(text).group(2) != "?", text
            page.wait_for_function(f"({CHART_POINTS})().some(n => n >= 2)", timeout=30_000)
            shot(page, "train-wizard-running.png")

            page.get_by_role("button", name="Stop", exact=True).click()
            # The current step ends, the adapter is saved, then the test split is classified
            # (adapter, zero-shot, both baselines) before the run says "stopped".
            wait_for_progress(page, lambda t: "stopping" in t or "evaluating" in t
                              or "stopped" in t, 120, "stopping", errors)
            text = wait_for_progress(page, lambda t: "evaluating" in t or "stopped" in t, 120,
                                     "evaluating", errors)
            if "evaluating" in text:
                shot(page, "train-wizard-evaluating.png")
            text = wait_for_progress(page, lambda t: "stopped" in t, 360, "stopped", errors)
            assert step_of(text) >= 2, text
            page.get_by_role("button", name="See the evaluation").wait_for(timeout=30_000)
            shot(page, "train-wizard-stopped.png")

            # Step 4 — Evaluate.
            page.get_by_role("button", name="See the evaluation").click()
            # "On the test split" also opens the baseline warning when the baseline wins.
            page.get_by_text("6 examples never seen in training").wait_for(timeout=60_000)
            wait_until_idle(page)
            assert page.get_by_text("6 examples never seen in training").count() == 1
            assert page.locator("[data-testid='stMetric']").filter(
                has_text="LoRA adapter").count() == 1
            page.wait_for_function(f"({CHART_POINTS})().length >= 2", timeout=30_000)
            page.set_viewport_size({"width": 1440, "height": 2000})
            page.wait_for_timeout(1000)
            shot(page, "train-wizard-evaluate.png")
        finished = True
    finally:
        if not finished:  # a run that ended well still has to copy its adapter: leave it be
            stop_leftover_trainer(studio_env)

    # `core train` copies the adapter into the library right after it writes "stopped".
    adapter = models_env / "adapters" / RUN / "adapter_model.safetensors"
    deadline = time.monotonic() + 30
    while not adapter.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert adapter.is_file() and adapter.stat().st_size > 0
    assert (models_env / "adapters" / RUN / "studio-adapter.json").is_file()
    assert time.monotonic() - started < 720
    assert not errors, f"the train page showed exceptions while live: {errors}"
