"""The package's layout: the pipeline's stages as folders, imports without cycles, one facade."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgec"
STAGES = ("load", "compress", "convert", "emit", "check", "report", "runtime")
# What may sit beside the stage folders: the facade, the command line, the pipeline that runs the stages,
# the configuration, and leaves every stage uses.
TOP_LEVEL = {"__init__", "__main__", "api", "cli", "pipeline", "config", "errors", "units", "frameworks", "capture"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(module imported, name imported or "", line) for every import that runs: at module level or in a
    function, not under ``if TYPE_CHECKING``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, "", child.lineno) for a in child.names if a.name.startswith("edgec"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                if module.startswith("edgec"):
                    for a in child.names:
                        sub = f"{module}.{a.name}"
                        found.append((sub, "", child.lineno) if sub in modules else (module, a.name, child.lineno))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(name, path, modules):
            parts = target.split(".")
            # importing a.b.c runs a/__init__ and a/b/__init__ too; those that are not the importer's own
            # packages are edges as well
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in modules and dep != name and not name.startswith(dep + "."):
                    graph[name].add(dep)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_tree_shows_the_pipelines_stages():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert set(STAGES) <= folders
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    assert loose <= TOP_LEVEL, f"modules outside the stage folders: {sorted(loose - TOP_LEVEL)}"


def test_no_import_cycle_at_module_or_function_level():
    graph = _graph()
    assert sum(len(v) for v in graph.values()) > 100  # the walk sees the imports
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_command_line_imports_only_the_facade_and_the_renderers():
    modules = _modules()
    used = {target for target, _, _ in _imports("edgec.cli", modules["edgec.cli"], modules)}
    assert used and used <= {"edgec", "edgec.api"} | {m for m in modules if m.startswith("edgec.report")}, used


def test_no_module_imports_another_modules_private_name():
    modules = _modules()
    private = [f"{name}:{line} imports {target}.{what}" if what else f"{name}:{line} imports {target}"
               for name, path in modules.items() for target, what, line in _imports(name, path, modules)
               if (what.startswith("_") and not what.startswith("__"))
               or any(p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:])]
    assert private == []
