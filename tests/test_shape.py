"""The code's shape, as the house keeps it: every module of realm under 400
lines, and no import cycle among them, imports made only for the type
checker included (a cycle hidden behind TYPE_CHECKING is still one).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "realm"
MOST_LINES = 400


def modules() -> dict[str, Path]:
    return {f"realm.{path.stem}": path for path in sorted(PACKAGE.glob("*.py"))
            if path.stem != "__init__"}


def imports(path: Path, known: set[str]) -> set[str]:
    """The modules of realm that `path` imports, wherever the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found & known


def test_every_module_is_under_400_lines() -> None:
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text("utf-8").splitlines())) >= MOST_LINES}
    assert not long, f"split these before they grow: {long}"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle a depth-first walk of `graph` meets, as the path round it."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                found.append(path[path.index(other):] + [other])
            elif other not in state:
                walk(other, [*path, other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    return found


def test_no_import_cycles() -> None:
    found = modules()
    graph = {name: imports(path, set(found)) for name, path in found.items()}
    assert not cycles(graph), " ; ".join(" -> ".join(c) for c in cycles(graph))


def test_the_check_sees_a_cycle_behind_type_checking(tmp_path: Path) -> None:
    """The checks above find what they are for (a test that cannot fail is none)."""
    (tmp_path / "a.py").write_text("from typing import TYPE_CHECKING\n"
                                   "if TYPE_CHECKING:\n    from realm.b import B\n")
    (tmp_path / "b.py").write_text("from realm import a\n")
    known = {"realm.a", "realm.b", "realm.c"}
    graph = {"realm.a": imports(tmp_path / "a.py", known),
             "realm.b": imports(tmp_path / "b.py", known), "realm.c": {"realm.a"}}
    assert graph["realm.a"] == {"realm.b"} and graph["realm.b"] == {"realm.a"}
    assert cycles(graph) == [["realm.a", "realm.b", "realm.a"]]
