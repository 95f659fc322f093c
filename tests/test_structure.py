"""The package's structure: no import cycles, the core never imports the Redis or Celery
modules, and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import snowplow_tracker

PACKAGE = Path(snowplow_tracker.__file__).parent
MAX_LINES = 600
#: Over the limit at the time of writing (emitters and tracker are being rewritten, issue 11;
#: the others are left for their owners): each is
#: to leave this list, not to grow it.
#: What the Redis and Celery support is made of: the core must not import it.
OPTIONAL = {"_celery", "_celery_app", "_redis", "redis_worker"}
CORE = {
    "emitters",
    "_emitter",
    "_async_emitter",
    "_emitter_checks",
    "_delivery",
    "_queue",
    "_body",
    "_http",
    "_pool",
    "transport",
    "event_store",
    "tracker",
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    """Package modules ``path`` imports, at any depth (lazy imports included), except those
    under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    skipped = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for node in ast.walk(branch)
    }
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package[: len(package) - node.level + 1] if node.level > 1 else package
        target = ".".join([*base, *(node.module.split(".") if node.module else [])])
        names = [target] if node.module else [f"{target}.{a.name}".strip(".") for a in node.names]
        found.update(name for name in names if name)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path) & set(modules) for name, path in modules.items()}


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(edges[name]):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name)


def test_the_core_never_imports_the_redis_or_celery_modules() -> None:
    edges = graph()
    for name in CORE:
        assert not edges[name] & OPTIONAL, (name, edges[name] & OPTIONAL)


def test_modules_stay_under_600_lines() -> None:
    long = {
        module_name(path): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_the_emitters_module_still_names_the_0_5_0_classes() -> None:
    from snowplow_tracker import emitters

    assert emitters.CeleryEmitter.__name__ == "CeleryEmitter"  # type: ignore[attr-defined]
    assert emitters.RedisEmitter.__name__ == "RedisEmitter"  # type: ignore[attr-defined]
