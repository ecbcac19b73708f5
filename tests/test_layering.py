"""Dependencies inside ``enot`` point one way (``docs/design.md``, "Layers").

Every module's AST is walked, imports inside functions and ``TYPE_CHECKING`` blocks included, and an
import of a package that is not strictly lower in :data:`LAYERS` fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import enot

ROOT = Path(enot.__file__).parent

# Lower numbers are lower layers; a package may import its own modules and strictly lower layers.
# `utils` sits under `latency` and `distributed`: latency files are written with utils' atomic_write,
# and `distributed.save_checkpoint` calls utils' checkpoint writer.
LAYERS = {
    "": -1,  # enot/__init__.py: the version only
    "functional": 0,
    "models": 1,
    "utils": 2,
    "latency": 3,
    "distributed": 3,
    "facade": 4,
    "optimize": 5,
    "_demo": 6,
    "__main__": 7,  # the `enot` command, over the demo
    # Planned by issue 14 (not yet in the tree); move a row when the package's imports need it.
    "autogeneration": 1.5,  # builds search spaces from models
    "logging": 3.5,  # over distributed (main-process logging)
    "visualization": 3.5,  # over latency (heat maps)
    "experimental": 4.5,  # over facade (resolution search drives an ENOT optimizer)
}


def layer_of(path: Path) -> str:
    """The package of ``path`` (a file under ``enot/``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts == ("__init__",):
        return ""
    return parts[0]


def imported_packages(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, package)`` of every import of an ``enot`` package in ``tree``, nested ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "enot":  # `from enot import functional as ef` imports enot.functional
                names = [f"enot.{alias.name}" if alias.name in LAYERS else "enot" for alias in node.names]
            else:
                names = [node.module]
        else:
            if isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"line {node.lineno}: relative import; enot uses absolute imports")
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "enot":
                found.append((node.lineno, parts[1] if len(parts) > 1 else ""))
    return found


def violations(source: str, layer: str) -> list[str]:
    """Imports in ``source`` (a module of package ``layer``) against the order of :data:`LAYERS`."""
    bad = []
    for line, package in imported_packages(ast.parse(source)):
        if package == layer:
            continue
        if package not in LAYERS:
            bad.append(f"line {line}: imports enot.{package}, which has no layer in LAYERS")
        elif LAYERS[package] >= LAYERS[layer]:
            bad.append(f"line {line}: enot.{layer or '__init__'} (layer {LAYERS[layer]}) imports enot.{package} "
                       f"(layer {LAYERS[package]})")
    return bad


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    packages = {layer_of(path) for path in MODULES}
    missing = sorted(packages - set(LAYERS))
    assert not missing, f"packages without a layer: {missing}; add them to LAYERS here and to docs/design.md"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    found = violations(path.read_text(encoding="utf-8"), layer_of(path))
    assert not found, found


def test_checker_finds_an_upward_import_inside_a_function() -> None:
    source = "def f():\n    from enot.utils import make_portable\n    import enot.latency as L\n"
    assert violations(source, "models") == [
        "line 2: enot.models (layer 1) imports enot.utils (layer 2)",
        "line 3: enot.models (layer 1) imports enot.latency (layer 3)",
    ]
    assert violations("from enot import facade\n", "distributed") == [
        "line 1: enot.distributed (layer 3) imports enot.facade (layer 4)"
    ]
    assert violations("from enot.distributed import x\n", "latency")  # same layer, other package
    assert not violations("from enot import functional as ef\nfrom enot.models import _ops\n", "models")
