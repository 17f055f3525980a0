"""The package's shape, read from the source (nothing is imported).

Three rules a newcomer relies on when finding their way:
- a module's ``_names`` are its own: no module imports another module's private name
  (private *modules* such as ``fnnet/validate.py`` hold public names and may be imported);
- the import graph of ``fnnet`` has no cycle (function-level imports count too: a cycle
  hidden in a function is still two topics that cannot be read apart);
- CONTRIBUTING.md's map names every module of ``fnnet/`` and ``reference/``, and every
  path it names exists.
"""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _modules(package_dir: pathlib.Path, name: str) -> dict:
    """{dotted module name: path} for every .py file under package_dir."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _source_of(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom reads from (relative imports resolved)."""
    if node.level == 0:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_named_by(expr, aliases: dict):
    """The dotted module an expression names (`alias` or `alias.sub.sub`), else None."""
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name) or expr.id not in aliases:
        return None
    return ".".join([aliases[expr.id], *reversed(parts)])


def scan(mods: dict):
    """Import edges between the given modules, and every use of another module's private name.

    Returns (edges: {module: set of modules}, private: [(module, line, what)]).
    """
    edges, private = {}, []
    roots = {m.split(".")[0] for m in mods}
    for module, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        deps, aliases = set(), {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in roots:
                        deps.add(alias.name)
                        aliases[alias.asname or alias.name.split(".")[0]] = (
                            alias.name if alias.asname else alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                source = _source_of(module, path.name == "__init__.py", node)
                if source not in mods:
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    if submodule in mods:          # `from pkg import module`
                        deps.add(submodule)
                        aliases[alias.asname or alias.name] = submodule
                    else:                           # `from module import name`
                        deps.add(source)
                        if _is_private(alias.name) and source != module:
                            private.append((module, node.lineno, f"from {source} import {alias.name}"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            owner = _module_named_by(node.value, aliases)    # `alias._x`, `fnnet.network._x`
            if (owner is not None and owner != module and owner in mods
                    and f"{owner}.{node.attr}" not in mods):
                private.append((module, node.lineno, f"{owner}.{node.attr}"))
        edges[module] = deps - {module}
    return edges, private


def cycles(edges: dict) -> list:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter; counter += 1
        stack.append(start); on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in edges:
                    continue
                if w not in index:
                    index[w] = low[w] = counter; counter += 1
                    stack.append(w); on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop(); on_stack.discard(w); component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


FNNET = _modules(ROOT / "fnnet", "fnnet")
REFERENCE = _modules(ROOT / "reference", "reference")


@pytest.mark.parametrize("mods", [FNNET, REFERENCE], ids=["fnnet", "reference"])
def test_no_module_imports_another_modules_private_name(mods):
    _, private = scan(mods)
    assert not private, "private names used outside their module:\n" + "\n".join(
        f"  {m}:{line}: {what}" for m, line, what in private)


@pytest.mark.parametrize("mods", [FNNET, REFERENCE], ids=["fnnet", "reference"])
def test_import_graph_has_no_cycle(mods):
    edges, _ = scan(mods)
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join("  " + " <-> ".join(c) for c in found)


def test_private_name_reached_through_a_package_path_is_found(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "inner.py").write_text("def _hidden():\n    return 1\n")
    (tmp_path / "pkg" / "user.py").write_text("import pkg.inner\nimport pkg\n\n"
                                               "a = pkg.inner._hidden()\n")
    mods = _modules(tmp_path / "pkg", "pkg")
    _, private = scan(mods)
    assert [(m, what) for m, _, what in private] == [("pkg.user", "pkg.inner._hidden")]


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_contributing_map_matches_the_tree():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    named = set(re.findall(r"`((?:fnnet|reference|tests|scripts)/[\w/.]+\.py)`", text))
    missing_files = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing_files, f"CONTRIBUTING.md names files that do not exist: {missing_files}"
    unmapped = []
    for top in ("fnnet", "reference"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if path.stem in {"__init__", "__main__", "_version"}:
                continue
            # a module is on the map by its path, or by its stem inside its folder's row
            folder = path.parent.relative_to(ROOT).as_posix() + "/"
            by_stem = any(folder in line and f"`{path.stem}`" in line for line in text.splitlines())
            if rel not in named and not by_stem:
                unmapped.append(rel)
    assert not unmapped, f"modules missing from CONTRIBUTING.md's map: {unmapped}"
