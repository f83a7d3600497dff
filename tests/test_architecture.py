"""The tree's own rules, read from the source (no imports executed):

* imports point one way, ``compiler -> targets -> cost_models -> mapspace``;
* no module imports a ``_``-prefixed name (module or symbol) from another package (folder);
* no import cycle between files (every import counted, module level or in a function);
* one definition of the search entry point and of the cost-function factory.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compiler", "targets", "cost_models", "mapspace")  # each may import later ones
RANK = {p: i for i, p in enumerate(PACKAGES)}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


MODULES = _modules()


def _package_of(mod: str) -> str:
    """The folder a module lives in (``a.b`` for ``a/b/c.py`` and for ``a/b/__init__.py``)."""
    f = MODULES[mod]
    return ".".join(f.parent.relative_to(ROOT).parts)


def _imports(mod: str):
    """``(target module, imported name or None, line)`` for every internal import."""
    tree = ast.parse(MODULES[mod].read_text())
    pkg = mod if MODULES[mod].name == "__init__.py" else mod.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.split(".")[0] not in PACKAGES:
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in MODULES:
                    yield sub, None, node.lineno
                else:
                    yield base, a.name, node.lineno


def test_imports_point_one_way():
    bad = []
    for mod in MODULES:
        for target, _, line in _imports(mod):
            if RANK[target.split(".")[0]] < RANK[mod.split(".")[0]]:
                bad.append(f"{MODULES[mod].relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_private_name_across_packages():
    bad = []
    for mod in MODULES:
        for target, name, line in _imports(mod):
            if target not in MODULES:
                continue
            private_mod = any(p.startswith("_") and p != "__init__" for p in target.split("."))
            private_name = name is not None and name.startswith("_")
            if (private_mod or private_name) and _package_of(target) != _package_of(mod):
                bad.append(f"{MODULES[mod].relative_to(ROOT)}:{line} imports "
                           f"{target}{'.' + name if name else ''}")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_files():
    g = nx.DiGraph()
    for mod in MODULES:
        g.add_node(mod)
        for target, _, _ in _imports(mod):
            if target in MODULES and target != mod:
                g.add_edge(mod, target)
    # a package's __init__ re-exporting its own modules is not a cycle between files
    for a, b in list(g.edges):
        if MODULES[b].name == "__init__.py" and a.startswith(b + "."):
            g.remove_edge(a, b)
    cycles = list(nx.simple_cycles(g))
    assert not cycles, "\n".join(" -> ".join(c + c[:1]) for c in cycles[:10])


def _definitions(name: str) -> list[str]:
    out = []
    for mod, f in MODULES.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == name:
                out.append(mod)
    return out


def test_one_search_entry_point_and_one_cost_function():
    assert _definitions("find_mapping") == ["cost_models.search"]
    assert _definitions("cost_function") == ["cost_models.search"]


def test_the_checker_sees_a_violation(tmp_path):
    """The walker resolves relative and aliased imports (so the tests above can fail)."""
    mods = dict(MODULES)
    try:
        MODULES["targets._probe"] = tmp_path / "_probe.py"
        (tmp_path / "_probe.py").write_text(
            "from ..compiler import pipeline\nfrom mapspace.kernels import _one as x\n")
        got = list(_imports("targets._probe"))
    finally:
        MODULES.clear()
        MODULES.update(mods)
    assert ("compiler.pipeline", None, 1) in got
    assert ("mapspace.kernels", "_one", 2) in got
