"""The shape of the house: every core module imports on its own, core/ has no import cycles
(lazy imports inside functions included), never imports streamlit, and the chat side (core.rag)
never reaches into the training side (core.lora)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(CORE.rglob("*.py"))}
IMPORTABLE = sorted(n for n in MODULES if not n.endswith("__main__"))  # that one runs the CLI


def imports_of(path: Path) -> set[str]:
    """Every module this file imports, at the top or inside a function."""
    found: set[str] = set()
    package = module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            # `from core import files` imports the module core.files
            found |= {f"{base}.{alias.name}" for alias in node.names
                      if f"{base}.{alias.name}" in MODULES}
    return found


GRAPH = {name: {m for m in imports_of(path) if m in MODULES and m != name}
         for name, path in MODULES.items()}


def test_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if nxt.startswith(node + ".") or node.startswith(nxt + ".") and nxt == "core":
                continue  # a package and its own modules
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if not state.get(nxt):
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if not state.get(name):
            visit(name)


def test_core_never_imports_streamlit():
    offenders = [n for n, p in MODULES.items()
                 if any(m.split(".")[0] == "streamlit" for m in imports_of(p))]
    assert not offenders


def test_the_chat_side_does_not_depend_on_the_training_side():
    offenders = {n: sorted(m for m in GRAPH[n] if m.startswith("core.lora"))
                 for n in MODULES if n.startswith("core.rag")}
    assert not {n: m for n, m in offenders.items() if m}


@pytest.mark.parametrize("name", IMPORTABLE)
def test_each_module_imports_alone(name):
    done = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_pages_folder_beside_app_py():
    """Streamlit reads a `pages/` folder beside the main script as a multipage app of its own
    until st.navigation first runs: the first visit after a server start listed app.py's
    helper modules ("chat answers", "chat scroll") in the sidebar. The pages live in
    app_pages/, each one named in app.py's navigation."""
    from streamlit.runtime.pages_manager import PagesManager

    assert not (ROOT / "pages").exists()
    PagesManager.uses_pages_directory = None  # as a server process starts
    assert PagesManager(str(ROOT / "app.py")).uses_pages_directory is False
    app = (ROOT / "app.py").read_text()
    pages = [p.relative_to(ROOT).as_posix() for p in (ROOT / "app_pages").glob("*.py")]
    assert {p for p in pages if f'st.Page("{p}"' in app} == {
        f"app_pages/{name}.py" for name in ("home", "documents", "chat", "evaluate", "train",
                                           "classify", "adapters", "settings")}
