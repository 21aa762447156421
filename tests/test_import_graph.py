"""The modules of app/ and trainer/ import each other without a cycle.

Every import counts, at module level or inside a function: an import deferred into a
function to dodge a cycle at import time still ties the two modules together. Imports under
`if TYPE_CHECKING:` are for type checkers only and do not count.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "trainer")


def _modules(root: Path) -> dict[str, Path]:
    """Dotted name → file of every module of the packages under `root`."""
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that `module` imports anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    stack: list[ast.AST] = [ast.parse(path.read_text(), filename=str(path))]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name:
                    out.add(name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in modules else base)
    return (out & modules.keys()) - {module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _graph(root: Path) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def test_the_scan_finds_a_cycle_made_by_a_deferred_import(tmp_path: Path) -> None:
    (tmp_path / "app" / "runs").mkdir(parents=True)
    (tmp_path / "trainer").mkdir()
    for init in ("app/__init__.py", "app/runs/__init__.py", "trainer/__init__.py"):
        (tmp_path / init).write_text("")
    (tmp_path / "app/runs/service.py").write_text(
        "def create():\n    from app.runs.generation import create_generation_run\n"
    )
    (tmp_path / "app/runs/generation.py").write_text(
        "from app.runs import service\nfrom . import models\n"
    )
    (tmp_path / "app/runs/models.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.runs import service\n"
    )
    (tmp_path / "trainer/data.py").write_text("import trainer\n")
    graph = _graph(tmp_path)
    assert graph["app.runs.generation"] == {"app.runs.service", "app.runs.models"}
    assert graph["app.runs.models"] == set()  # a type checker's import is no edge
    assert _cycles(graph) == [["app.runs.generation", "app.runs.service"]]


def test_app_and_trainer_have_no_import_cycle() -> None:
    graph = _graph(ROOT)
    assert len(graph) > 100 and graph["app.runs.worker"]  # the scan saw the packages
    assert _cycles(graph) == []
