"""The floors of the house (docs/architecture.md): every import points down, none goes round.

Read from the source with ``ast`` (lazy imports inside functions count: they run too), so an
upward import or a circle that comes back fails here with the file, line and the way out.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Each top-level part of the package and its floor; a part may import its own floor's modules
# of the same part and anything on a lower floor, nothing else.
FLOORS: dict[str, int] = {
    # ground floor: paths, atomic JSON, metrics, progress, display of untrusted text, errors,
    # the bearer-token check, the HTTP servers' Host/Origin guard
    "sleuth": 0,
    "sleuth.errors": 0,
    "sleuth.types": 0,
    "sleuth.paths": 0,
    "sleuth.jsonio": 0,
    "sleuth.metrics": 0,
    "sleuth.progress": 0,
    "sleuth.display": 0,
    "sleuth.tokens": 0,
    "sleuth.http_guard": 0,
    "sleuth.corpus": 1,
    "sleuth.llm": 1,
    "sleuth.search": 2,  # its simulated engines use an LLM
    "sleuth.agent": 3,
    "sleuth.evaluate": 4,
    "sleuth.rewards": 4,
    "sleuth.serve": 4,
    "sleuth.synth": 5,  # builds on the benchmarks and metrics of evaluate
    "sleuth.train": 6,
    "sleuth.view": 6,
    "sleuth.cli": 7,
}


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    """The longest key of FLOORS that ``module`` is, or lies inside."""
    while module not in FLOORS:
        if "." not in module:
            raise KeyError(module)
        module = module.rsplit(".", 1)[0]
    return module


def imports_of(path: Path, src: Path, modules: set[str]) -> list[tuple[str, int]]:
    """``(module, line)`` for every ``sleuth`` import in the file, module-level or lazy.
    ``from a import b`` is an import of ``a.b`` when that is a module, else of ``a``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub if sub in modules else node.module, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == "sleuth"]


def import_graph(src: Path) -> dict[str, list[tuple[str, int]]]:
    files = {module_name(path, src): path for path in sorted(src.rglob("*.py"))}
    return {name: imports_of(path, src, set(files)) for name, path in files.items()}


def wrong_way_imports(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    """Imports that run up a floor, or sideways into another part of the same floor (the
    ground floor's small modules may use each other)."""
    problems = []
    for module, targets in graph.items():
        here = part_of(module)
        for target, line in targets:
            there = part_of(target)
            if there == here or FLOORS[there] < FLOORS[here] or FLOORS[there] == FLOORS[here] == 0:
                continue  # the ground floor's modules are one part
            way = "up" if FLOORS[there] > FLOORS[here] else "sideways"
            problems.append(
                f"{module} (line {line}) imports {target}: {way} from floor {FLOORS[here]} "
                f"({here}) to floor {FLOORS[there]} ({there})"
            )
    return problems


def circles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in graph.get(node, []):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            self_import = any(target == node for target, _ in graph.get(node, []))
            if len(group) > 1 or self_import:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_every_import_points_down():
    problems = wrong_way_imports(import_graph(SRC))
    assert not problems, "imports against the floors (docs/architecture.md):\n" + "\n".join(
        problems
    )


def test_no_module_circles():
    found = circles(import_graph(SRC))
    assert not found, "modules that import each other in a circle:\n" + "\n".join(
        " -> ".join(group) for group in found
    )


def test_every_module_has_a_floor():
    unknown = sorted(m for m in import_graph(SRC) if not _has_floor(m))
    assert not unknown, f"modules outside every floor (add them to FLOORS): {unknown}"


def _has_floor(module: str) -> bool:
    try:
        part_of(module)
    except KeyError:
        return False
    return True


def test_the_checks_catch_an_upward_import_and_a_circle(tmp_path):
    """The checker itself, on a small tree: an engine reaching up into the CLI, and two search
    modules importing each other, are both reported."""
    package = tmp_path / "sleuth"
    (package / "search").mkdir(parents=True)
    (package / "cli").mkdir()
    (package / "__init__.py").write_text("")
    (package / "search" / "__init__.py").write_text("")
    (package / "cli" / "__init__.py").write_text("")
    (package / "cli" / "ask.py").write_text("X = 1\n")
    (package / "search" / "a.py").write_text("def f():\n    from sleuth.search import b\n")
    (package / "search" / "b.py").write_text(
        "from sleuth.search.a import f\nfrom sleuth.cli.ask import X\n"
    )
    graph = import_graph(tmp_path)
    problems = wrong_way_imports(graph)
    assert problems == [
        "sleuth.search.b (line 2) imports sleuth.cli.ask: up from floor 2 (sleuth.search) "
        "to floor 7 (sleuth.cli)"
    ]
    assert circles(graph) == [["sleuth.search.a", "sleuth.search.b"]]


LOOP = SRC / "sleuth" / "agent" / "loop.py"


def private_names(path: Path) -> set[str]:
    """Module-level and class-level names of ``path`` that start with one underscore."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = node.name
            if name.startswith("_") and not name.startswith("__"):
                names.add(name)
    return names


def _defined_names(tree: ast.AST) -> set[str]:
    """Names a file defines itself: functions, classes and assigned attributes."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return names


def test_only_the_loop_uses_its_private_names():
    """Drivers of the loop (``Agent.run``, the viewer's replay, a tree search) use the public
    ``Episode``; a module that imports the loop and reaches for a private name of it is
    reported with file and line."""
    private = private_names(LOOP)
    root = SRC.parent
    problems = []
    for path in sorted(
        [*SRC.rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "bench").rglob("*.py")]
    ):
        if path == LOOP:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports_loop = False
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "sleuth.agent.loop":
                imports_loop = True
                problems += [
                    f"{path.relative_to(root)}:{node.lineno} imports {a.name}"
                    for a in node.names
                    if a.name in private
                ]
        if not imports_loop:
            continue
        own = _defined_names(tree)  # its own private names may coincide with the loop's
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in private - own:
                problems.append(f"{path.relative_to(root)}:{node.lineno} uses .{node.attr}")
            if isinstance(node, ast.Constant) and node.value in private - own:
                problems.append(f"{path.relative_to(root)}:{node.lineno} names {node.value!r}")
    assert not problems, "private names of sleuth.agent.loop used outside it:\n" + "\n".join(
        problems
    )
