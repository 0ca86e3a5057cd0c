"""The package's import graph: data flows one way, and the runtime never reaches for tools.

Read from the source with ``ast`` (every import statement, at module level or inside a
function), so a lazy import cannot hide an arrow.
"""

import ast

from conftest import REPO_ROOT

PACKAGE = "recbole_awrsr"
ROOT = REPO_ROOT / PACKAGE
#: the runtime: what training and checkpoint loading need
RUNTIME = ("recbole_awrsr.model", "recbole_awrsr.trainer", "recbole_awrsr.collector", "recbole_awrsr.history",
           "recbole_awrsr.data")
#: tools built on the runtime: reports, search, comparison, converters
TOOLS = ("recbole_awrsr.analysis", "recbole_awrsr.tune", "recbole_awrsr.compare", "recbole_awrsr.parking",
         "recbole_awrsr.datatools", "recbole_awrsr.cli")


def module_name(path):
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules():
    return {module_name(path): path for path in ROOT.rglob("*.py")}


def imports_of(name, path, known):
    """The package's modules that ``name`` imports (``from pkg import sub`` counts as sub)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a name inside a module: the module
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                found.add(target)
    return found


def graph():
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def reachable(edges, start):
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def in_layer(name, layer):
    """Whether a module belongs to a layer; ``__main__`` modules are command-line doors."""
    if name.endswith(".__main__"):
        return False
    return any(name == prefix or name.startswith(prefix + ".") for prefix in layer)


def test_the_graph_is_read():
    edges = graph()
    assert "recbole_awrsr.model.refinement" in edges["recbole_awrsr.model.sasrec_awr"]
    assert "recbole_awrsr.quick_start" in reachable(edges, "recbole_awrsr.compare")


def test_no_module_is_imported_back_by_what_it_imports():
    edges = graph()
    # the package's __init__ gathers the public names; every submodule import runs it
    # anyway, so arrows into it are not arrows back
    edges = {name: {t for t in targets if t != PACKAGE} for name, targets in edges.items()}
    cycles = sorted(f"{name} -> {target}" for name, targets in edges.items() for target in targets
                    if name in reachable(edges, target))
    assert not cycles, "imports that come back around:\n" + "\n".join(cycles)


def test_runtime_never_imports_tools():
    edges = graph()
    wrong = sorted(f"{name} -> {target}" for name, targets in edges.items() if in_layer(name, RUNTIME)
                   for target in reachable(edges, name) | targets if in_layer(target, TOOLS))
    assert not wrong, "runtime modules reaching tools:\n" + "\n".join(wrong)


def test_models_do_not_import_the_door():
    """A model never imports config, quick_start or the CLI (ARCHITECTURE.md)."""
    edges = graph()
    door = ("recbole_awrsr.config", "recbole_awrsr.quick_start", "recbole_awrsr.cli")
    wrong = sorted(f"{name} -> {target}" for name, targets in edges.items()
                   if in_layer(name, ("recbole_awrsr.model",))
                   for target in reachable(edges, name) if in_layer(target, door))
    assert not wrong, "\n".join(wrong)


#: third-party modules that may be imported inside a function: heavy, and needed by few commands
LAZY_ALLOWED = ("ray", "matplotlib", "scipy")


def test_imports_stand_at_the_top():
    """Our modules' imports are at module level, so the graph above is the whole truth;
    only ray, matplotlib and scipy may wait until a function needs them."""
    lazy = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or "."]
                else:
                    continue
                lazy += [f"{name}:{node.lineno} imports {module}" for module in names
                         if module.split(".")[0] not in LAZY_ALLOWED]
    assert not lazy, "\n".join(lazy)
