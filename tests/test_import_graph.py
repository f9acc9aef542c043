"""The import graph of the project's own code: no cycles, and every import points down a layer.

Each module of ``dtcore/``, ``fixtures/``, ``claims/`` and ``reports/`` is parsed (``ast``, nothing
is imported) and every import it can execute is an edge: module level and inside functions alike
(a lazy import closes a cycle as surely as an eager one). Imports under ``if TYPE_CHECKING:`` never
run and are left out. ``from package import name`` is an edge to ``package.name`` when that is a
module, else to ``package``.

The layers (docs/architecture.md): ``dtcore`` (the library) < ``fixtures`` (pytest wiring: the
declared claims as items) and ``reports`` (the page), each importing ``dtcore`` only; ``claims``
(the claim declarations) import ``dtcore`` only, the declaration API ``dtcore.claim`` and the
measures, never pytest's wiring. Inside ``dtcore`` the groups of :data:`DTCORE_LAYERS` import only their
own group or lower ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dtcore", "fixtures", "claims", "reports")
# What each top-level package may import besides itself.
ALLOWED = {"dtcore": set(), "fixtures": {"dtcore"}, "claims": {"dtcore"}, "reports": {"dtcore"}}
# dtcore's groups, lowest first: a module may import its own group or a lower one. A module is in
# the first group one of whose prefixes names it or a package above it.
DTCORE_LAYERS = (
    ("foundations", ("dtcore.statistics", "dtcore.seeding", "dtcore.envs", "dtcore.convergence",
                     "dtcore.config", "dtcore.provenance", "dtcore.metrics")),
    ("decisions", ("dtcore.skew", "dtcore.deciding", "dtcore.verdicts", "dtcore.policy", "dtcore.claim",
                   "dtcore.registry", "dtcore.sequential",
                   "dtcore.sequential_errors")),
    ("files", ("dtcore.checkpoints", "dtcore.d4rl", "dtcore.assets", "dtcore.bodies", "dtcore.native")),
    ("data and model", ("dtcore.data", "dtcore.samplers", "dtcore.backbones", "dtcore.model",
                        "dtcore.kernels")),
    ("procedures", ("dtcore.train", "dtcore.envworkers", "dtcore.evaluate", "dtcore.profiles")),
    ("experiments", ("dtcore.experiment", "dtcore.grid", "dtcore.analysis_cache", "dtcore.runs",
                     "dtcore.analyses", "dtcore.measures", "dtcore.build_progress", "dtcore.build", "dtcore.slurm",
                     "dtcore.sequential_plan")),
    ("edge", ("dtcore.cli", "dtcore.__main__", "dtcore")),
)
FOUNDATIONS = DTCORE_LAYERS[0][1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module of the four packages."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (absolute and relative imports, at any depth)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None (depth-first search)."""
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def dtcore_layer(module: str) -> int:
    for rank, (_, prefixes) in enumerate(DTCORE_LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no group of DTCORE_LAYERS: add it where it belongs")


GRAPH = import_graph()


def test_the_graph_sees_the_known_imports():
    """The parser finds imports at all: the CLI imports the training code, a claim file the
    declaration API."""
    assert "dtcore.train" in GRAPH["dtcore.cli"]
    assert "dtcore.claim" in GRAPH["claims.test_table1_returns"]
    assert len(GRAPH) > 40


def test_find_cycle_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_lower_layers(package):
    wrong = sorted(f"{m} imports {dep}" for m, deps in GRAPH.items() if m.split(".")[0] == package
                   for dep in deps if dep.split(".")[0] not in ALLOWED[package] | {package})
    assert not wrong, f"{package} may import {sorted(ALLOWED[package]) or 'nothing'} besides itself:\n" \
                      + "\n".join(wrong)


def test_dtcore_modules_import_only_their_group_or_lower():
    dtcore = {m: deps for m, deps in GRAPH.items() if m.split(".")[0] == "dtcore"}
    wrong = sorted(f"{m} ({DTCORE_LAYERS[dtcore_layer(m)][0]}) imports {d} ({DTCORE_LAYERS[dtcore_layer(d)][0]})"
                   for m, deps in dtcore.items() for d in deps
                   if d.split(".")[0] == "dtcore" and dtcore_layer(d) > dtcore_layer(m))
    assert not wrong, "\n".join(wrong)


def test_foundations_import_nothing_of_dtcore_above_their_own_module_family():
    """metrics/, statistics, config, ... stand alone: a foundation module imports only itself's
    family (``dtcore.metrics.cka`` may import ``dtcore.metrics.linalg``, not ``dtcore.config``)."""
    wrong = []
    for m, deps in GRAPH.items():
        family = next((p for p in FOUNDATIONS if m == p or m.startswith(p + ".")), None)
        if family is not None:
            wrong += [f"{m} imports {d}" for d in deps if not (d == family or d.startswith(family + "."))]
    assert not wrong, "\n".join(sorted(wrong))


def test_claim_files_import_the_declaration_api_and_dtcore_only():
    """A claim file declares claims and their statistics: it imports ``dtcore.claim`` and dtcore's
    measures and analyses, never pytest, the fixtures plugin or the report."""
    for path in sorted((ROOT / "claims").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        roots |= {node.module.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module}
        assert roots <= {"__future__", "dtcore", "numpy"}, (path.name, sorted(roots))
        assert "dtcore.claim" in GRAPH[module_name(path)], path.name
