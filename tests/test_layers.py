"""Every import in med42_utils (module level and inside functions, read with ast) keeps to the layers in
med42_utils/layers.py: no cycle, no import of a higher layer, no private (_name) imported from another module;
docs/architecture.md shows the same table."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from med42_utils.layers import LAYERS, layer_of, markdown
from med42_utils.paths import repo_root

PKG = repo_root() / "med42_utils"
# Private names the `trainers` lane removes with the shared training core (issue 25 item 2): delete the entry
# when dpo/train.py stops importing it. Nothing else may be added here.
KNOWN_PRIVATE = {("dpo.train", "sft.train", "_StopAfter")}


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _imports(mods: dict[str, Path]) -> list[tuple[str, str, int, str | None]]:
    """(importer, imported module, line, name imported from it or None) for every import of a package module."""
    edges = []
    for mod, path in mods.items():
        pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join([*pkg[: len(pkg) - node.level + 1], *([node.module] if node.module else [])]).strip(".")
                elif (node.module or "").split(".")[0] == "med42_utils":
                    base = node.module.removeprefix("med42_utils").lstrip(".")
                else:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}".strip(".")
                    if sub in mods:  # `from . import stages`: the module itself
                        edges.append((mod, sub, node.lineno, None))
                    elif base in mods:
                        edges.append((mod, base, node.lineno, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "med42_utils":
                        edges.append((mod, alias.name.removeprefix("med42_utils").lstrip("."), node.lineno, None))
    return [e for e in edges if e[0] != e[1]]


MODS = _modules()
EDGES = _imports(MODS)


def _where(mod: str, line: int) -> str:
    return f"{MODS[mod].relative_to(repo_root())}:{line}"


def test_the_walk_sees_imports_inside_functions():
    lazy = [(a, b) for a, b, line, _ in EDGES if a == "judging.judge" and b == "judging.reference"]
    assert lazy, "make_judge imports ReferenceJudge inside a function; the walk must see it"
    assert len(MODS) > 90 and len(EDGES) > 250


def test_no_import_cycle():
    graph = defaultdict(set)
    for a, b, _, _ in EDGES:
        graph[a].add(b)
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(path[path.index(n):] + [n] if n in path else [m, n])
            elif n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(MODS):
        if m not in state:
            visit(m, [m])
    lines = []
    for cyc in cycles:
        hops = [f"{a} -> {b} ({_where(a, next(l for x, y, l, _ in EDGES if (x, y) == (a, b)))})"
                for a, b in zip(cyc, cyc[1:])]
        lines.append("; ".join(hops))
    assert not cycles, "import cycles:\n" + "\n".join(lines)


def test_no_import_climbs_a_layer():
    bad = [f"{_where(a, line)}: {a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
           for a, b, line, _ in EDGES if layer_of(b) > layer_of(a)]
    assert not bad, "imports that break the layering (med42_utils/layers.py):\n" + "\n".join(bad)


def test_no_private_name_imported_from_another_module():
    bad = [f"{_where(a, line)}: {a} imports {name} from {b}" for a, b, line, name in EDGES
           if name and name.startswith("_") and not name.startswith("__") and (a, b, name) not in KNOWN_PRIVATE]
    assert not bad, "private names imported across modules (make them public or move them):\n" + "\n".join(bad)
    stale = [k for k in KNOWN_PRIVATE if not any((a, b, n) == k for a, b, _, n in EDGES)]
    assert not stale, f"no longer imported: delete {stale} from KNOWN_PRIVATE"


def test_layer_rules_catch_a_climb_and_place_the_planned_modules():
    order = [layer_of(m) for m in ("params", "data.curate", "packing.pack", "training.core", "sft.train",
                                   "judging.elo", "launch", "sft.stage")]
    assert order == sorted(order) and len(set(order)) == len(order)
    assert layer_of("inference") == layer_of("models") and layer_of("serve") == layer_of("judging.battles")
    assert layer_of("cli") < layer_of("sft.train") < layer_of("launch")
    assert layer_of("benchmarks.tasks.utils") == layer_of("data.curate") < layer_of("benchmarks.new_module")
    assert layer_of("sft.stage") == layer_of("judging.job") > layer_of("launch") and layer_of("new_helper") == 0


def test_architecture_doc_shows_the_rules():
    doc = (repo_root() / "docs" / "architecture.md").read_text()
    assert markdown() in doc, "docs/architecture.md: paste the output of `python -m med42_utils.layers`"
