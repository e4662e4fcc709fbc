"""The package graph of dmxgen runs the way /work/shared/DESIGN.md draws it.

Every import of every dmxgen module is read with ast (function-level imports
included, since a hidden import is still a dependency); subpackages and
top-level modules are the units. ALLOWED mirrors DESIGN.md's "may import"
column; EXCEPTIONS are edges kept on purpose, each with its reason.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "dmxgen"
BASE = {"errors", "_libm", "progress"}  # leaf helpers every unit may use

# unit -> units it may import (besides BASE), as DESIGN.md's table says
ALLOWED = {
    "graph": set(),
    "ops": {"graph"},
    "codecs": set(),
    "reference": {"graph", "ops"},
    "passes": {"graph", "ops", "codecs"},
    "plan": {"graph"},
    "frontends": {"graph", "ops", "codecs", "compress"},  # the torch frontend turns a compressed Model into a Graph
    "compress": {"graph", "ops"},
    "backends": {"graph", "ops", "codecs", "plan"},
    "vectors": {"graph", "ops", "reference"},
    "pipeline": {"graph", "ops", "codecs", "plan", "passes", "reference", "frontends", "vectors"},
    "targets": {"pipeline", "backends", "graph"},  # prints the prepared graph with the backends: above both
    "support": {"ops", "backends", "frontends"},  # the support matrix, read from every target's registrations
    "goldens": set(),
    "verify": {"graph", "reference", "goldens"},
    "summary": {"graph"},
    "corstone300": set(),
    "firmware": {"corstone300"},
    "report": set(),
    "api": {"compress", "frontends", "reference"},
    "<root>": {"ops", "api", "compress"},  # dmxgen/__init__.py: registers the ops, re-exports the API lazily
    "cli": {"commands"},
    "custom": {"ops"},  # dmxgen/custom.py: loads the user's plugins into ops/custom.py's table (docs/custom-ops.md)
    "testing": {"graph"},  # builders of test models (flatbuffers; zoo.py merges one-op graphs), used by tests only
    "errors": set(),
    "_libm": set(),
    "progress": set(),  # tqdm bars on a terminal stderr
}
EVERYTHING = {"commands"}  # commands may import every unit; nothing but cli imports them

# (from, to): why the edge stays although DESIGN.md's table has no room for it
EXCEPTIONS = {
    ("backends", "verify"): "host.py compares the host build's outputs with verify.diff, the one bit-exact diff",
    ("compress", "backends"): "compress/sizing.py measures a model's bytes as the C backend stores them "
                              "(goes away when the storage policy moves into codecs, issue 11 item 3)",
    ("compress", "passes"): "compress/sizing.py lowers the graph as export does before sizing it",
    ("compress", "codecs"): "compress/sizing.py and sparsecomp.py count bytes under the export's storage defaults "
                            "(codecs/policy.py EXPORT, written once); codecs imports numpy only",
    ("report", "backends"): "report/early_exit.py reads the stored exits with backends/c_early_exit.stored_exits, "
                            "the one reader of test_vectors/expected_ee.npz",
    ("targets", "codecs"): "targets.export takes the export's storage defaults from codecs/policy.py EXPORT",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def imports_of(path: Path) -> set[str]:
    """Absolute dmxgen module names `path` imports, at any depth of its code."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                found |= {f"{base}.{node.module}"} if node.module else {f"{base}.{a.name}" for a in node.names}
            elif node.module and node.module.split(".")[0] == "dmxgen":
                found |= {node.module} if node.module != "dmxgen" else {f"dmxgen.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dmxgen"}
    return found


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(unit, unit) -> the files that make the edge."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        here = _unit(_module_name(path))
        for target in imports_of(path):
            there = _unit(target)
            if there != here:
                edges[(here, there)].append(str(path.relative_to(ROOT.parent)))
    return edges


def test_every_module_is_a_known_unit():
    units = {_unit(_module_name(p)) for p in ROOT.rglob("*.py")}
    assert units - set(ALLOWED) - EVERYTHING == set()


def test_nothing_outside_commands_and_cli_imports_commands():
    bad = {e: files for e, files in package_edges().items() if e[1] == "commands" and e[0] not in ("commands", "cli")}
    assert bad == {}


def test_every_edge_is_allowed_by_design_or_listed_with_its_reason():
    bad = {}
    for (a, b), files in package_edges().items():
        if b in BASE or a in EVERYTHING or b in ALLOWED.get(a, set()) or (a, b) in EXCEPTIONS:
            continue
        bad[(a, b)] = files
    assert bad == {}


def test_no_exception_is_stale():
    edges = package_edges()
    assert [e for e in EXCEPTIONS if e not in edges and EXCEPTIONS[e]] == []


def _cycles(edges) -> list[list[str]]:
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    found, state, stack = [], {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                found.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for u in sorted(graph):
        if u not in state:
            visit(u)
    return found


def test_the_cycle_finder_finds_cycles():
    assert _cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c", "a"]]
    assert _cycles([("a", "b"), ("b", "c")]) == []


def test_no_cycle_between_units():
    assert _cycles(package_edges()) == []


def test_the_torch_frontend_reaches_compress_models_through_the_registered_builder():
    """compress imports no frontend: Model.to_graph finds the frontend that dmxgen.api loads, and says
    what to import when nothing loaded it."""
    import subprocess
    import sys

    code = ("import torch\nfrom dmxgen.compress.model import Model, _graph_builder\n"
            "m = Model(torch.nn.Linear(4, 2))\n"
            "try:\n    m.to_graph(torch.zeros(1, 4))\nexcept Exception as e:\n    print(e)\n"
            "import dmxgen.api\nfrom dmxgen.frontends.torch_graph import model_to_graph\n"
            "print(_graph_builder == [model_to_graph])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.stdout.splitlines() == ["the torch frontend is not loaded: import dmxgen.api (or "
                                     "dmxgen.frontends.torch_graph) to build the integer graph of a Model", "True"]
