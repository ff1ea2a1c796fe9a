"""The layers stay apart: the HTTP process never imports torch or ultralytics (only worker processes do,
docs/development.md), the packages import one way only, and no module grows past what a reader can hold."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "ultralytics", "torchvision", "cv2")
PACKAGES = ("daemon", "handlers", "store", "evaluation", "vocab", "vision_eval")
# What each package may import of ours (everything else of ours is refused). handlers/ declares the
# facade it needs and imports nothing of the daemon: the daemon builds the app, never the reverse.
ALLOWED = {
    "vocab": set(),
    "store": {"vocab"},
    "evaluation": {"vocab"},
    "handlers": {"store", "vocab"},
    "daemon": {"evaluation", "handlers", "store", "vocab"},
    # The client: never the server (its local evaluation imports the evaluation stack lazily).
    "vision_eval": {"evaluation", "vocab"},
}
MAX_LINES = 450
MAX_DAEMON_TOP = 12


def _imports(path: Path) -> set[str]:
    """Every module name a module imports, at any depth (function-local and ``TYPE_CHECKING`` imports
    included); ``from a import b`` gives both ``a`` and ``a.b`` (b may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update({node.module, *(f"{node.module}.{alias.name}" for alias in node.names)})
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_one_way(package: str) -> None:
    wrong = {}
    for path in sorted((REPO / package).rglob("*.py")):
        ours = {name.split(".")[0] for name in _imports(path)} & set(PACKAGES) - {package}
        if ours - ALLOWED[package]:
            wrong[str(path.relative_to(REPO))] = sorted(ours - ALLOWED[package])
    assert not wrong, f"{package}/ may import only {sorted(ALLOWED[package])} of ours: {wrong}"


def _module_graph() -> dict[str, set[str]]:
    """Every module of ours and the modules of ours it imports, function-local imports included."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return {name: {t for t in _imports(path) if t in modules and t != name} for name, path in modules.items()}


def test_no_import_cycle_even_inside_functions() -> None:
    graph = _module_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_no_module_is_over_450_lines() -> None:
    long = {str(p.relative_to(REPO)): n for package in PACKAGES
            for p in (REPO / package).rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_daemon_is_sub_packages_with_few_modules_at_its_top() -> None:
    top = sorted(p.name for p in (REPO / "daemon").glob("*.py"))
    assert len(top) <= MAX_DAEMON_TOP, top
    assert {p.name for p in (REPO / "daemon").iterdir() if (p / "__init__.py").is_file()} >= {
        "app", "jobs", "watch", "promote", "train"}


def test_module_names_do_not_collide_across_packages() -> None:
    """A module's name says what it holds, once: no two product modules share a file name."""
    seen: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path.name != "__init__.py":
                seen.setdefault(path.stem, []).append(str(path.relative_to(REPO)))
    assert not {k: v for k, v in seen.items() if len(v) > 1}


def test_the_client_loads_no_server_and_no_numerics() -> None:
    code = "import sys, vision_eval.cli\nprint(sorted(m for m in ('aiohttp', 'numpy', 'torch') if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_started_daemon_imports_no_heavy_module(tmp_path: Path) -> None:
    """A real Service started and stopped in a fresh interpreter (its executor never released, so no task
    runs): the composition root, the facade, the app and every handler module load without torch."""
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "import daemon.main, vision_eval.cli\n"
        "from tests.inprocess import running_service\n"
        "async def main():\n"
        f"    async with running_service(Path({str(tmp_path)!r})) as svc:\n"
        "        assert svc.facade.health()['database'] == 'ok'\n"
        "asyncio.run(main())\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
