"""The project's import graph: no circle between modules, no import that runs up a floor.

``FLOORS`` is the one written order of the folders under ``src/``, lowest first; a module may
import its own folder and any folder on a lower floor, never one on its own floor or above.
Every project import counts, wherever it is written (module top, inside a function, under
``TYPE_CHECKING``): a lazy import still ties the two rooms together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# lowest first; folders on one floor do not import each other
FLOORS: list[set[str]] = [
    {"common"},  # errors, config parsing, atomic io, video io, the G-buffer value
    {"game", "conditions"},  # the game (numpy, OpenGL, pygame); the channel spec, encode, extractors
    {"data"},  # decoding, prepared datasets, clip loaders
    {"net"},  # model definitions
    {"diffusion"},  # flow-matching maths, the generation loop, the objectives' loss maths
    {"runtime"},  # renderer packages, the renderer interface, torch and ncnn backends
    {"play"},  # the neural ride, package sources
    {"eval"},  # metrics, evaluate (also used by training's validation)
    {"train"},  # the training loop, objectives' builders, validation, packages of runs
    {"bench"},  # experiments that drive training and play
    {"scripts"},  # the command-line entry points
]


def project_imports(src: Path) -> dict[str, set[str]]:
    """module -> the project modules it imports (``src.a.b``), from every import statement."""
    modules = {
        ".".join(path.relative_to(src.parent).with_suffix("").parts).removesuffix(".__init__"): path
        for path in src.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # ``from src.train import checkpoint`` imports the module src.train.checkpoint
                names = [f"{node.module}.{alias.name}" for alias in node.names]
                names = [name if name in modules else node.module for name in names]
            else:
                continue
            imported.update(name for name in names if name.split(".")[0] == "src" and name != module)
        graph[module] = imported
    return graph


def folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else None  # src.__init__ and src.x (a package's __init__) have none


def floor_of(name: str) -> int:
    for index, names in enumerate(FLOORS):
        if name in names:
            return index
    raise KeyError(name)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports into another folder on the same floor or above, as ``a -> b`` lines."""
    found = []
    for module, imported in sorted(graph.items()):
        here = folder(module)
        for target in sorted(imported):
            there = folder(target)
            if here is None or there is None or here == there:
                continue
            if floor_of(there) >= floor_of(here):
                found.append(f"{module} -> {target}")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_every_folder_has_a_floor():
    folders = {path.name for path in SRC.iterdir() if (path / "__init__.py").is_file()}
    placed = set().union(*FLOORS)
    assert folders == placed, f"place {sorted(folders - placed)} in FLOORS; drop {sorted(placed - folders)}"


def test_no_import_runs_up_a_floor():
    assert upward_imports(project_imports(SRC)) == []


def test_no_circle_between_modules():
    assert cycles(project_imports(SRC)) == []


def _copy_of_src(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    for path in SRC.rglob("*.py"):
        target = copy / path.relative_to(SRC)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    return copy


@pytest.mark.parametrize(
    "module, line",
    [
        ("net/models.py", "from src.train.loop import train"),  # up several floors, at the top
        ("game/world.py", "    from src.conditions.spec import ConditionSpec"),  # across one floor, lazily
    ],
)
def test_an_added_upward_import_is_caught(tmp_path, module, line):
    copy = _copy_of_src(tmp_path)
    path = copy / module
    if line.startswith(" "):
        line = f"def _added():\n{line}\n"
    path.write_text(path.read_text() + "\n" + line + "\n")
    assert upward_imports(project_imports(copy)) != []


def test_an_added_circle_is_caught(tmp_path):
    copy = _copy_of_src(tmp_path)
    path = copy / "train" / "ema.py"  # imported by loop.py; importing loop back closes a circle
    path.write_text(path.read_text() + "\n\ndef _added():\n    from src.train.loop import train\n")
    assert ["src.train.ema", "src.train.loop"] in cycles(project_imports(copy))
