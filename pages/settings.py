"""Settings: what the Studio is configured with (secrets masked), and the user's choices."""

import streamlit as st

from core.settings import save_preferences
from core.registry import Registry, RegistryError
from pages.shared import settings

s = settings()
st.title("Settings")
st.caption("Read from environment variables, `.streamlit/secrets.toml`, and the choices saved "
           "here — in that order. A value set by the environment or secrets cannot be changed "
           "on this page.")

try:
    registry = Registry.load(s.registry_path, s.models_dir)
except RegistryError as exc:
    st.error(str(exc))
    st.stop()


def locked(name: str) -> bool:
    return s.sources.get(name) in ("env", "secrets")


def names(role: str) -> list[str]:
    return [spec.name for spec in registry.with_role(role)]


def pick(label: str, field: str, options: list[str], help: str):
    current = getattr(s, field)
    options = options if current in options else [current, *options]
    return st.selectbox(label, options, index=options.index(current), disabled=locked(field),
                        help=help, key=f"setting-{field}")


with st.form("preferences"):
    st.subheader("Chat engine")
    backend = st.radio("Backend", ["local", "openai"], index=["local", "openai"].index(
        s.chat_backend), horizontal=True, disabled=locked("chat_backend"),
        format_func={"local": "Local model (offline)", "openai": "OpenAI-compatible endpoint"}.get,
        help="Local runs the chat model on this machine; the endpoint can be vLLM, TGI, Ollama, "
             "a llama.cpp server or a hosted API.")
    chat_model = pick("Local chat model", "chat_model", names("chat"),
                      "Qwen2.5-Coder-0.5B answers best; SmolLM2-135M is faster and weaker.")
    base_url = st.text_input("Endpoint base URL", s.openai_base_url or "",
                             disabled=locked("openai_base_url"),
                             placeholder="http://127.0.0.1:8080/v1")
    openai_model = st.text_input("Endpoint model", s.openai_model or "",
                                 disabled=locked("openai_model"))
    st.caption("The API key is read from `OPENAI_API_KEY` or `.streamlit/secrets.toml` only; "
               "it is never saved by the Studio.")
    st.subheader("Models")
    embedding = pick("Embedding model", "embedding_model", names("embedding"),
                     "Used to embed chunks and questions; a collection keeps the one it was "
                     "built with.")
    lora_base = pick("Default LoRA base model", "lora_base_model", names("lora-base"),
                     "Gemma 3 270M is the default; SmolLM2-135M trains as fast with half the "
                     "memory.")
    if st.form_submit_button("Save", type="primary"):
        wanted = {"chat_backend": backend, "chat_model": chat_model,
                  "embedding_model": embedding, "lora_base_model": lora_base,
                  "openai_base_url": base_url.strip() or None,
                  "openai_model": openai_model.strip() or None}
        changes = {k: v for k, v in wanted.items() if not locked(k) and v != getattr(s, k)}
        if changes:
            try:
                save_preferences(s, changes)
            except ValueError as exc:
                st.error(str(exc))
            else:
                st.success("Saved: " + ", ".join(sorted(changes)))
                st.rerun()
        else:
            st.info("Nothing changed.")

st.subheader("Current configuration")
st.dataframe(s.describe(), hide_index=True, width="stretch",
             column_config={"help": st.column_config.TextColumn("what it is", width="large")})

st.subheader("Models on this machine")
st.dataframe([{"model": m.name, "roles": ", ".join(m.roles), "status": m.status,
               "size (MiB)": round(m.size_bytes / 2**20, 1), "path": m.path, "note": m.detail}
              for m in registry.states()], hide_index=True, width="stretch")
