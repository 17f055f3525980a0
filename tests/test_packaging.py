"""Packaging: what `pip install` puts in site-packages is the tree, under fnnet's own names."""
import pathlib
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _declared():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(cfg["packages"]), cfg["package-dir"]


def test_every_package_in_the_tree_is_declared():
    # A subpackage missing from the list is missing from wheels (fnnet._bench once was).
    declared, package_dir = _declared()
    folder_to_name = {folder: name for name, folder in package_dir.items()}
    found = set()
    for top in ("fnnet", "reference"):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            found.add(".".join((folder_to_name.get(parts[0], parts[0]),) + parts[1:]))
    assert found == declared, f"pyproject packages {sorted(declared)} vs tree {sorted(found)}"


def test_twin_is_installed_as_fnnet_reference_and_imports_without_jax(tmp_path):
    # Run outside the checkout, so only what is installed can be imported.
    code = ("import sys, importlib.util, fnnet_reference; "
            "assert 'jax' not in sys.modules, 'fnnet_reference imported jax'; "
            "print(importlib.util.find_spec('reference') is None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "True", "a top-level package named 'reference' is installed: it would collide"
