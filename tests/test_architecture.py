"""The layer order of docs/architecture.md, held against the code: no import cycles, no import that reaches up.

Read from the source with `ast` (nothing is imported): every `import` counts, at module level, inside functions
and under `TYPE_CHECKING` alike, since each is a dependency someone must understand to change the file.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gearshift"

#: Bottom to top. A module may import its own package and any package below it, nothing above.
LAYERS = ("errors", "config", "http_body", "data", "providers", "routers", "evaluation", "records", "store",
          "extension", "tracing", "cascade", "policy", "learning", "closed_loop", "gateway", "cli", "__main__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module but the package's own `__init__` (it imports nothing, and is no layer)."""
    return {name: p for p in SRC.rglob("*.py") if (name := _module_name(p)) != "gearshift"}


def _imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The gearshift modules `name` imports (a `from pkg import mod` names the module when there is one)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                yield t


@functools.cache
def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: set(_imports(name, path, known)) - {"gearshift"} for name, path in known.items()}


def _layer(module: str) -> str:
    """The layer of a module: its top package (`gearshift.cli.serve` -> `cli`, the top one)."""
    return module.split(".")[1]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("gearshift.cli.serve") == "cli" and _layer("gearshift.store.sqlite") == "store"


def test_no_import_cycle_between_files() -> None:
    assert _cycles(_graph()) == []


def test_no_import_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        packages.setdefault(_layer(module), set()).update(_layer(t) for t in targets if _layer(t) != _layer(module))
    assert _cycles(packages) == []


def test_every_package_has_a_layer() -> None:
    assert {_layer(m) for m in _modules() if m != "gearshift"} <= set(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_only_reach_down(layer: str) -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = sorted(f"{module} -> {target}" for module, targets in _graph().items() if _layer(module) == layer
                    for target in targets if rank[_layer(target)] > rank[layer])
    assert upward == []


def test_command_modules_live_in_cli_only() -> None:
    """`gearshift <command>` handlers live in cli/, one module per group: no feature package registers a command
    (an `argparse` subparser) or keeps a `*commands.py` / `*_command.py` module of its own."""
    strays = sorted(name for name, path in _modules().items() if _layer(name) != "cli" and (
        name.rpartition(".")[2].endswith(("commands", "_command")) or "add_parser(" in path.read_text("utf-8")))
    assert strays == []


def test_the_gateway_has_no_untyped_parts() -> None:
    """Every part of `Gateway` names its type, so mypy checks the seams between the gateway and its extensions."""
    from gearshift.gateway.service import Gateway

    untyped = {name: kind for name, kind in Gateway.__annotations__.items() if "Any" in str(kind)}
    assert untyped == {}
