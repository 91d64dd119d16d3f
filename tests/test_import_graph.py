"""No import cycles between the package's modules.

An import inside a function counts: it only defers a cycle, it does not remove one. An import
under ``if TYPE_CHECKING:`` does not, as it never runs. A module that calls
``importlib.import_module`` (a package that loads its names on first access) imports every
module of the package that it names in a string.

A package that re-exports its submodules is not a cycle by itself: ``pkg/__init__`` importing
``pkg.sub`` is an edge, and ``pkg.sub`` has an edge back to ``pkg`` only when it imports from
the package's ``__init__`` itself (``from pkg import name``), not when Python merely runs the
``__init__`` of ``pkg`` on the way to ``pkg.sub``.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import open_strawberry

PACKAGE = "open_strawberry"


def package_modules() -> dict[str, Path]:
    """{module name: source file} of every module of the package, ``__init__`` included."""
    modules = {PACKAGE: Path(open_strawberry.__file__)}
    for info in pkgutil.walk_packages(open_strawberry.__path__, prefix=f"{PACKAGE}."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None, info.name
        modules[info.name] = Path(spec.origin)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runnable(tree: ast.Module) -> Iterator[ast.AST]:
    """Every node at any depth, except the bodies of ``if TYPE_CHECKING:``."""
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))


_LOADERS = {"import_module", "lazy_exports"}  # each imports modules named in strings


def _calls_import_module(nodes: list[ast.AST]) -> bool:
    return any(isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id in _LOADERS)
        or (isinstance(node.func, ast.Attribute) and node.func.attr in _LOADERS)) for node in nodes)


def _from_edges(node: ast.ImportFrom, name: str, is_package: bool, known: set[str]) -> set[str]:
    if node.level:
        parts = name.split(".")
        base = parts[: len(parts) - node.level + (1 if is_package else 0)]
        source = ".".join([*base, node.module] if node.module else base)
    else:
        source = node.module or ""
    if source not in known:
        return set()
    # ``from pkg import sub`` imports the submodule; ``from pkg import name`` runs pkg/__init__.
    return {f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source for alias in node.names}


def module_edges(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that module ``name`` imports."""
    nodes = list(_runnable(ast.parse(path.read_text(), filename=str(path))))
    is_package = path.name == "__init__.py"
    edges: set[str] = set()
    if _calls_import_module(nodes):
        edges.update(node.value for node in nodes if isinstance(node, ast.Constant) and node.value in known)
    for node in nodes:
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            edges.update(_from_edges(node, name, is_package, known))
    edges.discard(name)
    return edges


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    known = set(modules)
    return {name: module_edges(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (an iterative depth-first search)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(sorted(graph[root]))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif child in on_path:
                return [*path[path.index(child):], child]
            elif child not in done:
                path.append(child)
                on_path.add(child)
                stack.append(iter(sorted(graph[child])))
    return None


def test_the_graph_sees_every_module_and_its_imports() -> None:
    graph = import_graph()
    assert "open_strawberry.cli.main" in graph
    assert "open_strawberry.backends.base" in graph["open_strawberry.backends.sdk"]
    # ``from open_strawberry.prompting import prompts`` names a submodule, not the package.
    assert "open_strawberry.prompting.prompts" in graph["open_strawberry.actors.verifier"]
    assert "open_strawberry.prompting" not in graph["open_strawberry.actors.verifier"]
    # Loaded on first use, by name: still an import.
    assert "open_strawberry.pipeline" in graph["open_strawberry"]
    # Imported inside the function that runs a command: still an import.
    assert "open_strawberry.cli.generate" in graph["open_strawberry.cli.main"]
    assert "open_strawberry.pipeline" in graph["open_strawberry.cli.generate"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
