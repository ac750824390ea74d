"""The layering: kernel ← contexts ← composition root (README, "How it is built").

Every import statement of every module (top level or inside a function) is read with ``ast``;
a context that reaches up into the composition root, or sideways into a context it may not
read, fails here with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"kernel", "catalog", "quality", "access", "translog", "metrics", "govshare",
        "govshare_demo"}
# package → the packages of ours it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "kernel": set(),
    "catalog": {"kernel"},
    "translog": {"kernel"},
    # access and quality read the catalog; the log only for its keys and proofs
    "quality": {"kernel", "catalog", "translog"},
    "access": {"kernel", "catalog", "translog"},
    # a read model over the other contexts' tables
    "metrics": {"kernel", "catalog", "quality", "access", "translog"},
    # the composition root wires everything; it never needs the demo world
    "govshare": {"kernel", "catalog", "quality", "access", "translog", "metrics"},
    "govshare_demo": OURS,
}
LOCATION = {name: ROOT / name for name in OURS} | {"govshare_demo": ROOT / "demo" / "govshare_demo"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _violations(package: str) -> list[str]:
    allowed = ALLOWED[package] | {package}
    bad = []
    for path in sorted(LOCATION[package].rglob("*.py")):
        for line, top in _imports(path):
            if top in OURS and top not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    assert LOCATION[package].is_dir()
    assert _violations(package) == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # The test above must be able to fail: a function-level upward import is found.
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from govshare import wiring\n    import quality.runs\n")
    assert _imports(bad) == [(2, "govshare"), (3, "quality")]


def test_every_package_is_classified() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packages <= set(ALLOWED), f"unclassified packages: {packages - set(ALLOWED)}"
