"""The package's shape: layers, import cycles and module size, read from the source with ``ast``.

Nothing is imported: every module under ``algocli/`` is parsed, and its imports are
resolved to module names. "Module level" means what runs when the module is imported:
statements at the top, in ``try``/``if`` blocks and class bodies, but not inside
functions and not under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "algocli"
MAX_LINES = 600
#: What ``algocli.domain`` may import from the project: nothing above it.
DOMAIN_MAY_IMPORT = ("algocli.domain", "algocli.errors")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, *, module_level: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements of ``tree``; with ``module_level`` only those run on import."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if module_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if module_level and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The modules an import statement loads (a ``from pkg import sub`` names the submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    return [base, *subs]


def _imports(*, module_level: bool) -> dict[str, set[str]]:
    """Module → the ``algocli`` modules it imports."""
    modules = _modules()
    known = set(modules)
    out: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found: set[str] = set()
        for node in _import_nodes(tree, module_level=module_level):
            found.update(t for t in _targets(module, path, node, known) if t.split(".")[0] == "algocli")
        out[module] = found
    return out


def _package(module: str) -> str:
    """``algocli.data.csv_feed`` → ``data``; ``algocli.errors`` → ``errors``; ``algocli`` → ``algocli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_graph() -> dict[str, set[str]]:
    """Sub-package → the other sub-packages its modules import at module level."""
    graph: dict[str, set[str]] = {}
    for module, targets in _imports(module_level=True).items():
        src = _package(module)
        graph.setdefault(src, set()).update(_package(t) for t in targets if _package(t) != src)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _edges_within(graph: dict[str, set[str]], component: list[str]) -> str:
    return "; ".join(f"{a} -> {', '.join(sorted(graph[a] & set(component)))}" for a in component)


def test_the_graph_reader_finds_a_cycle_and_ignores_a_chain() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_imports_inside_functions_and_under_type_checking_are_not_module_level() -> None:
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
                     "def f():\n    import d\nclass K:\n    import e\ntry:\n    import f\nexcept ImportError:\n    pass\n")
    names = sorted(n.names[0].name for n in _import_nodes(tree, module_level=True))
    assert names == ["a", "c", "e", "f"]
    assert sorted(n.names[0].name for n in _import_nodes(tree, module_level=False)) == ["a", "b", "c", "d", "e", "f"]


def test_domain_imports_nothing_above_it() -> None:
    """Wherever the import sits (even inside a function), ``domain`` reaches only down."""
    bad = {module: sorted(t for t in targets if not t.startswith(DOMAIN_MAY_IMPORT))
           for module, targets in _imports(module_level=False).items()
           if module.startswith("algocli.domain")}
    assert {m: t for m, t in bad.items() if t} == {}


def test_no_import_cycles_between_packages() -> None:
    graph = package_graph()
    found = cycles(graph)
    assert found == [], "import cycles between packages: " + " | ".join(_edges_within(graph, c) for c in found)


def test_modules_stay_under_the_size_limit() -> None:
    sizes = {module: len(path.read_text(encoding="utf-8").splitlines()) for module, path in _modules().items()}
    over = {module: n for module, n in sorted(sizes.items()) if n > MAX_LINES}
    assert over == {}, f"split these modules (over {MAX_LINES} lines): {over}"
