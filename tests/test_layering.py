"""The modules form layers: no module imports another that imports it back (#8).

Every import counts, including the ones inside functions, since a lazy import only hides a cycle.
The package's `__init__` re-exports and is left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "guardstream"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import submodule` imports the submodule; anything else, the module.
                submodules = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t for t in submodules if t in modules] or [node.module]
            graph[name] |= {t for t in targets if t in modules and t != name and t != "guardstream"}
    return graph


def test_no_module_imports_another_that_imports_it_back() -> None:
    graph = imports()
    graph.pop("guardstream", None)
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(graph.get(name, ())):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_the_core_knows_nothing_of_http_or_asyncio() -> None:
    core = [
        "sse",
        "window",
        "matchers",
        "prefilter",
        "rules",
        "normalize",
        "payload",
        "channels",
        "stream",
        "packs",
        "checks",
    ]
    core += ["providers.base", "providers.openai_chat", "providers.openai_responses", "providers.anthropic"]
    core += ["providers.gemini", "providers.generic", "providers.openai_completions"]
    graph = imports()
    for name in core:
        source = (PACKAGE / (name.replace(".", "/") + ".py")).read_text(encoding="utf-8")
        tree = ast.parse(source)
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {"httpx", "anyio", "asyncio", "starlette", "uvicorn"} & {n.split(".")[0] for n in names}, name
        assert not {"guardstream.proxy", "guardstream.middleware", "guardstream.guard"} & graph[f"guardstream.{name}"]
