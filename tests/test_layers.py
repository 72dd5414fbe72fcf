"""Imports point down only (docs/ARCHITECTURE.md, "Layers"), and the library never knows the
workflow: no Snakemake, no parsing of the workflow's paths."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lesion_transfer"

# bottom first; a module may import its own part and the parts of lower layers
LAYERS = [
    {"labels", "devices", "provenance", "errors", "__init__"},
    {"io"},
    {"preprocess", "phantoms", "splits"},
    {"model"},
    {"train"},
    {"evaluate"},
    {"report"},
    {"config", "workflow"},  # what the workflow side calls to read its config and log
]


def part_of(module):
    """'lesion_transfer.train.trainer' -> 'train'; the package itself -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(part):
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def imports_of(path):
    """Every lesion_transfer module `path` imports, at any depth (function-level included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lesion_transfer")}
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("lesion_transfer"):
            found.add(node.module)
    return found


def module_name(path):
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(p for p in relative.parts if p != "__init__") or "lesion_transfer"


def test_every_part_of_the_library_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert parts <= set().union(*LAYERS), parts - set().union(*LAYERS)


def test_no_module_imports_from_a_layer_above_it_or_beside_it():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        own = part_of(name) if name != "lesion_transfer" else "__init__"
        for target in imports_of(path):
            other = part_of(target)
            if other == own:
                continue
            if layer_of(other) > layer_of(own) or (
                    layer_of(other) == layer_of(own) and layer_of(own) != 0):
                upward.append(f"{name} imports {target}")
    assert not upward, "\n".join(upward)


def test_the_library_never_runs_snakemake_or_decodes_workflow_paths():
    offenders = []
    pattern = re.compile(r"import snakemake|\"snakemake\"|'snakemake'|\.parents?\[\d\]\.name|"
                         r"\.parent\.name")
    for path in sorted(PACKAGE.rglob("*.py")):
        offenders += [f"{path.relative_to(PACKAGE)}: {m.group(0)}"
                      for m in pattern.finditer(path.read_text())]
    assert not offenders, offenders
