"""The layering of docs/architecture.md, read from the code: every import (at module level or inside a function)
goes to a layer the importing layer may use, nothing imports Prefect outside ``flows/``, and no modules import
each other in a circle."""

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ghnerf", "teachers", "storage", "flows")

# Layer -> module prefixes. The longest matching prefix decides a module's layer.
LAYERS: dict[str, tuple[str, ...]] = {
    "base": ("ghnerf.base",),
    "storage": ("storage",),
    "teachers": ("teachers",),
    "data": ("ghnerf.data",),
    "synth": ("ghnerf.synth",),
    "library": ("ghnerf.student", "ghnerf.eval", "ghnerf.render", "ghnerf.export", "ghnerf.target_fusion"),
    "app": ("ghnerf.app",),
    "flows": ("flows",),
    "package faces": ("ghnerf",),  # ghnerf/__init__.py: a docstring, imports nothing
}
# Layer -> the layers it may import (besides itself).
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "storage": {"base"},
    "teachers": {"base"},
    "data": {"base"},
    "synth": {"base", "data"},
    "library": {"base", "storage", "data", "synth"},
    "app": {"base", "storage", "teachers", "data", "synth", "library"},
    "flows": {"base", "storage", "teachers", "data", "synth", "library", "app"},
    "package faces": set(),
}
# The one library import of a teacher, and why: the student's ``mediapipe`` encoder IS MediaPipe's pose network,
# so every loader of such a checkpoint (evaluate, render, export) must be able to build it. It imports the adapter
# and the teacher protocol, never the registry (which is the application's).
EXCEPTIONS = {
    ("ghnerf.student.encoders", "teachers.base"),
    ("ghnerf.student.encoders", "teachers.mediapipe_pose"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, source: str | None = None) -> list[tuple[str, int]]:
    """(module imported, line) for every import statement in the file, wherever it stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # ``from pkg import module`` imports the module pkg.module
            found += [(f"{target}.{a.name}" if _is_module(f"{target}.{a.name}") else target, node.lineno)
                      for a in node.names]
    return found


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer_of(module: str) -> str | None:
    best = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (layer, prefix)
    return best and best[0]


def project_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def project_imports() -> list[tuple[str, str, str, int]]:
    """(importer, imported, file, line) for every import of a project module."""
    edges = []
    for path in project_files():
        for target, line in imports_of(path):
            if target.split(".")[0] in PACKAGES:
                edges.append((module_name(path), target, str(path.relative_to(ROOT)), line))
    return edges


def test_every_module_has_a_layer():
    assert [module_name(p) for p in project_files() if layer_of(module_name(p)) is None] == []


def layer_violations(edges: list[tuple[str, str, str, int]]) -> list[str]:
    wrong = []
    for importer, imported, file, line in edges:
        a, b = layer_of(importer), layer_of(imported)
        if a != b and b not in MAY_IMPORT[a] and (importer, imported) not in EXCEPTIONS:
            wrong.append(f"{file}:{line}: {importer} ({a}) imports {imported} ({b})")
    return wrong


def test_every_import_goes_to_a_layer_below():
    assert layer_violations(project_imports()) == []


def test_the_declared_exceptions_are_still_needed():
    assert EXCEPTIONS <= {(a, b) for a, b, _, _ in project_imports()}


def test_only_flows_import_prefect():
    wrong = [f"{p.relative_to(ROOT)}:{line}" for p in project_files() if layer_of(module_name(p)) != "flows"
             for target, line in imports_of(p) if target.split(".")[0] in ("prefect", "prefect_dask")]
    assert wrong == []


def test_no_import_cycles():
    graph = nx.DiGraph((a, b) for a, b, _, _ in project_imports() if a != b)
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


@pytest.mark.parametrize("source, line", [
    ("import ghnerf.app.cli\n", 1),
    ("import numpy\n\n\ndef f():\n    from teachers.base import TeacherInput\n", 5),
])
def test_the_rule_sees_module_and_function_level_imports(source, line):
    """A base module importing upward, at module level or inside a function, is reported with its line."""
    probe = ROOT / "ghnerf" / "base" / "probe.py"
    edges = [("ghnerf.base.probe", target, "ghnerf/base/probe.py", n) for target, n in imports_of(probe, source)
             if target.split(".")[0] in PACKAGES]
    assert [w.split(":")[1] for w in layer_violations(edges)] == [str(line)]


def test_evaluation_rendering_and_export_do_not_import_the_training_loop():
    wrong = [f"{file}:{line}" for importer, imported, file, line in project_imports()
             if importer.startswith(("ghnerf.eval", "ghnerf.render", "ghnerf.export"))
             and imported == "ghnerf.student.train"]
    assert wrong == []
