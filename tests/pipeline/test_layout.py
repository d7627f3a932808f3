"""The layout DESIGN.md draws holds: the runtime in `pipeline/` never imports the commands,
commands import the runtime and their shared helper but never one another, and no module of
`pipeline/` imports itself back through others. Read from the source, imports inside functions
included, so that it stays true as the code grows."""

import ast
from pathlib import Path

import pipeline

ROOT = Path(pipeline.__file__).parent
PACKAGES = ("capture", "blur", "upload")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function; `from a import b` counts
    as a.b when a.b is a module of ours."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_the_runtime_never_imports_a_command():
    offenders = {
        name: sorted(m for m in imported if m.startswith("pipeline.commands"))
        for name, imported in graph().items()
        if not name.startswith("pipeline.commands") and name != "pipeline.cli"
    }
    assert {name: found for name, found in offenders.items() if found} == {}
    assert "pipeline.commands.record" in graph()["pipeline.cli"]  # the entry point does, and the test sees it


def test_commands_import_the_runtime_and_common_but_never_one_another():
    shared = {"pipeline.commands", "pipeline.commands.common"}
    commands = {name: imported for name, imported in graph().items() if name.startswith("pipeline.commands.")}
    assert len(commands) >= 12
    crossed = {name: sorted(m for m in imported if m.startswith("pipeline.commands") and m not in shared)
               for name, imported in commands.items()}
    assert {name: found for name, found in crossed.items() if found} == {}


def test_no_module_of_pipeline_imports_itself_back():
    edges = graph()
    cycles = []

    def visit(name, path):
        for nxt in sorted(edges[name]):
            if nxt == path[0]:
                cycles.append(path + [nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its smallest module
                visit(nxt, path + [nxt])

    for start in sorted(edges):
        visit(start, [start])
    assert cycles == []


def test_the_stages_import_neither_one_another_nor_pipeline():
    for package in PACKAGES:
        others = [p for p in PACKAGES if p != package] + ["pipeline", "fixtures"]
        for path in (ROOT.parent / package).rglob("*.py"):
            bad = sorted(m for m in imports(path) if m.split(".")[0] in others)
            assert bad == [], f"{path.relative_to(ROOT.parent)} imports {bad}"


def test_the_library_reads_storage_through_upload_and_nothing_of_the_stages_or_the_runtime():
    library = ROOT.parent / "library"
    assert (library / "app.py").exists()
    for path in library.rglob("*.py"):
        bad = sorted(m for m in imports(path) if m.split(".")[0] in ("capture", "blur", "pipeline", "fixtures"))
        assert bad == [], f"{path.relative_to(ROOT.parent)} imports {bad}"
