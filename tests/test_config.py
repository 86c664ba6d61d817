import json

import pytest

from core.settings import load_settings, mask, save_preferences


def test_defaults_when_nothing_is_set(tmp_path):
    s = load_settings(env={"STUDIO_DATA_DIR": str(tmp_path)}, secrets_path=tmp_path / "none.toml")
    assert s.chat_backend == "local"
    assert s.chat_model == "qwen2.5-coder-0.5b-instruct"
    assert s.embedding_model == "all-minilm-l6-v2"
    assert s.lora_base_model == "gemma-3-270m"
    assert s.chroma_host is None and s.tika_server_url is None
    assert s.chroma_dir == tmp_path / "chroma"
    assert s.sources["data_dir"] == "env"
    assert "chat_model" not in s.sources  # default


def test_env_beats_secrets_beats_preferences(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('OPENAI_API_KEY = "sk-from-secrets-123456"\nopenai_model = "from-secrets"\n'
                       'CHROMA_PORT = 9100\n')
    (tmp_path / "preferences.json").write_text(json.dumps(
        {"openai_model": "from-prefs", "chat_backend": "openai"}))
    env = {"STUDIO_DATA_DIR": str(tmp_path), "CHROMA_HOST": "db.local"}
    s = load_settings(env=env, secrets_path=secrets)
    assert s.openai_api_key == "sk-from-secrets-123456" and s.sources["openai_api_key"] == "secrets"
    assert s.openai_model == "from-secrets"
    assert s.chat_backend == "openai" and s.sources["chat_backend"] == "preferences"
    assert (s.chroma_host, s.chroma_port) == ("db.local", 9100)
    s2 = load_settings(env={**env, "OPENAI_MODEL": "from-env"}, secrets_path=secrets)
    assert s2.openai_model == "from-env" and s2.sources["openai_model"] == "env"


def test_secret_never_shown_or_logged(tmp_path):
    key = "sk-very-secret-abcdef"
    s = load_settings(env={"STUDIO_DATA_DIR": str(tmp_path), "OPENAI_API_KEY": key},
                      secrets_path=tmp_path / "none.toml")
    shown = {row["setting"]: row["value"] for row in s.describe()}
    assert key not in shown["openai_api_key"] and shown["openai_api_key"].endswith("cdef")
    assert key not in repr(s) and key not in str(s)
    assert mask(None) == ""


def test_preferences_saved_without_secrets(tmp_path):
    env = {"STUDIO_DATA_DIR": str(tmp_path), "OPENAI_API_KEY": "sk-secret-value-999"}
    s = load_settings(env=env, secrets_path=tmp_path / "none.toml")
    save_preferences(s, {"chat_backend": "openai", "chat_model": "smollm2-135m-instruct"})
    text = (tmp_path / "preferences.json").read_text()
    assert "sk-secret" not in text
    s = load_settings(env=env, secrets_path=tmp_path / "none.toml")
    assert s.chat_backend == "openai" and s.chat_model == "smollm2-135m-instruct"
    with pytest.raises(ValueError, match="not settable"):
        save_preferences(s, {"openai_api_key": "sk-other"})
    with pytest.raises(ValueError, match="STUDIO_CHAT_BACKEND must be one of"):
        save_preferences(s, {"chat_backend": "telepathy"})


def test_bad_values_are_named(tmp_path):
    with pytest.raises(ValueError, match="CHROMA_PORT must be a whole number"):
        load_settings(env={"STUDIO_DATA_DIR": str(tmp_path), "CHROMA_PORT": "eighty"},
                      secrets_path=tmp_path / "none.toml")


def test_a_key_from_outside_the_app_keeps_its_endpoint(tmp_path):
    """The key must never be sent to an address typed on a page (issue 17, item 5)."""
    env = {"STUDIO_DATA_DIR": str(tmp_path), "OPENAI_API_KEY": "sk-secret-value-999",
           "OPENAI_BASE_URL": "https://api.example.org/v1"}
    s = load_settings(env=env, secrets_path=tmp_path / "none.toml")
    with pytest.raises(ValueError, match="the endpoint URL goes with its API key"):
        save_preferences(s, {"openai_base_url": "http://attacker.example:9/v1"})
    assert not (tmp_path / "preferences.json").exists()
    without_key = load_settings(env={"STUDIO_DATA_DIR": str(tmp_path)},
                                secrets_path=tmp_path / "none.toml")
    with pytest.raises(ValueError, match="is not an http"):
        save_preferences(without_key, {"openai_base_url": "not a url"})
    save_preferences(without_key, {"openai_base_url": "http://127.0.0.1:8080/v1"})


def test_the_collection_used_last_survives_a_file_edited_by_hand(tmp_path):
    from core.settings import last_used, remember_last_used

    s = load_settings(env={"STUDIO_DATA_DIR": str(tmp_path)})
    assert last_used(s, "collection") is None
    s.last_used_path.write_text("[1, 2]")  # valid JSON of another shape
    assert last_used(s, "collection") is None
    remember_last_used(s, "collection", "papers")
    assert last_used(s, "collection") == "papers"
