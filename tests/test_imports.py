"""The package's import structure: no import cycles in `filter` or `benchmarks` (imports
inside functions included), imports in `filter` only down its layers, no module of it over
500 lines (of `benchmarks` over 450), and importing any module starts no thread."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = ("filter", "benchmarks")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body)."""
    modules = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import mod` imports pkg.mod when that is a module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycles() -> None:
    graph = import_graph()
    # Package inits that re-export their submodules' names point down into them; a submodule
    # importing its package init back is the cycle this test is for.
    assert cycles(graph) == []


def test_importing_starts_no_thread() -> None:
    code = (
        "import importlib, pkgutil, threading, filter\n"
        "for m in pkgutil.walk_packages(filter.__path__, 'filter.'):\n"
        "    if m.name not in ('filter.__main__',):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(t.name for t in threading.enumerate()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.strip() == "['MainThread']", done.stdout + done.stderr


#: The layers of `filter`, bottom to top: a module imports only from its own layer or lower
#: ones. Modules at the top of the package (errors, files, jit, ...) are the foundation; the
#: package itself (the public API) and `__main__` stand above every layer.
LAYERS = ("policy", "formats.protobuf", "formats.parquet", "apply", "outputs", "engines",
          "audit", "cli")


def _rank(module: str) -> int:
    if module in ("filter", "filter.__main__"):
        return len(LAYERS) + 1
    for rank, layer in enumerate(LAYERS, start=1):
        if module.startswith(f"filter.{layer}.") or module == f"filter.{layer}":
            return rank
    if module.startswith("filter.formats"):  # the `formats` package init
        return LAYERS.index("formats.protobuf") + 1
    return 0  # foundation


def test_imports_point_down_the_layers() -> None:
    graph = import_graph()
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() if m.startswith("filter")
                    for d in deps if d.startswith("filter") and _rank(d) > _rank(m))
    assert upward == []


def test_no_module_of_the_package_is_over_500_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "filter").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def test_no_benchmark_module_is_over_450_lines() -> None:
    # The benchmarks were split to one idea a module; this keeps them so.
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "benchmarks").glob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert long == {}
