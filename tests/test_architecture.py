"""The rules of the house (DESIGN.md, README "Architecture"), checked on the source.

- No import cycles, between modules or between the packages of ``mssante``.
- ``domain/`` holds the rules of the trust space and imports nothing else of the
  project (but its errors).
- A protocol server never imports another: SMTP, IMAP and the web meet in
  ``operator/``, ``auth/``, ``domain/`` and ``store/``.
- No module reaches into another object's private attributes (``self._a._b``) or
  imports another module's private names.

Imports under ``if TYPE_CHECKING:`` do not run and are not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
PROTOCOL_SERVERS = ("mssante.smtp", "mssante.imap", "mssante.web")


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module


def _modules() -> dict[str, Module]:
    found = {}
    for path in sorted((SOURCE / "mssante").rglob("*.py")):
        parts = path.relative_to(SOURCE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    return found


MODULES = _modules()


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for other in node.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(module: Module) -> set[str]:
    """The project's modules ``module`` imports when it runs."""
    out: set[str] = set()
    for node in _runtime_nodes(module.tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("mssante"):
                continue
            names = [f"{node.module}.{a.name}" for a in node.names]
            submodules = [n for n in names if n in MODULES]
            out.update(submodules)
            if len(submodules) < len(names) and node.module in MODULES:
                out.add(node.module)
    out.discard(module.name)
    return out


GRAPH = {name: _imports(module) for name, module in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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


def _package(name: str) -> str:
    return ".".join(name.split(".")[:2])


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_packages() -> None:
    packages: dict[str, set[str]] = {}
    for name, imported in GRAPH.items():
        packages.setdefault(_package(name), set()).update(
            _package(other) for other in imported if _package(other) != _package(name))
    assert _cycles(packages) == []


def test_domain_imports_nothing_else_of_the_project() -> None:
    for name, imported in GRAPH.items():
        if name.startswith("mssante.domain"):
            outside = {i for i in imported
                       if not i.startswith("mssante.domain") and i != "mssante.errors"}
            assert not outside, f"{name} imports {sorted(outside)}"


@pytest.mark.parametrize("server", PROTOCOL_SERVERS)
def test_a_protocol_server_never_imports_another(server: str) -> None:
    others = [s for s in PROTOCOL_SERVERS if s != server]
    for name, imported in GRAPH.items():
        if name.startswith(server + ".") or name == server:
            crossing = {i for i in imported for o in others if i.startswith(o)}
            assert not crossing, f"{name} imports {sorted(crossing)}"


def _own_private_names(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, methods, classes, attributes it sets."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_module_reaches_into_private_attributes() -> None:
    """A private name of the project is used only by the module that defines it:
    ``self._store._write`` or ``session._place`` from another module are reaching in."""
    reaching = []
    owned = {name: _own_private_names(module.tree) for name, module in MODULES.items()}
    project = set().union(*owned.values())  # other libraries' privates are theirs to judge
    for module in MODULES.values():
        own = owned[module.name]
        for node in ast.walk(module.tree):
            if (isinstance(node, ast.Attribute) and node.attr in project):
                target = node.value
                if isinstance(target, ast.Name) and target.id in ("self", "cls"):
                    continue
                if node.attr in own and not (isinstance(target, ast.Attribute)
                                             and target.attr.startswith("_")):
                    continue
                reaching.append(f"{module.name}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mssante"):
                reaching.extend(f"{module.name}:{node.lineno} imports {a.name}"
                                for a in node.names
                                if a.name.startswith("_") and not a.name.startswith("__"))
    assert reaching == []
