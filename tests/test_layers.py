"""Imports point down only (docs/ARCHITECTURE.md, "Layers"), and the library never knows the
workflow: no Snakemake, no parsing of the workflow's paths."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lesion_transfer"

# bottom first; a module may import its own part and the parts of lower layers
LAYERS = [
    {"labels", "operating_point", "devices", "provenance", "errors", "__init__"},
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


def schema_defaults_by_key():
    """{key: [its defaults]} of every key with a default anywhere in the config schema."""
    import yaml

    found = {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in (node.get("properties") or {}).items():
                if isinstance(value, dict) and "default" in value:
                    found.setdefault(key, []).append(value["default"])
                walk(value)
            for value in (node.get("$defs") or {}).values():
                walk(value)

    walk(yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text()))
    return found


def code_defaults(tree):
    """(line, name, value) of every keyword default and dataclass field default in `tree`
    whose value is a literal."""
    named = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            positional = arguments.args[len(arguments.args) - len(arguments.defaults):]
            named += [(a.arg, d) for a, d in zip(positional, arguments.defaults)]
            named += [(a.arg, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults)
                      if d is not None]
        elif isinstance(node, ast.ClassDef):
            named += [(s.target.id, s.value) for s in node.body if isinstance(s, ast.AnnAssign)
                      and s.value is not None and isinstance(s.target, ast.Name)]
    found = []
    for name, default in named:
        try:
            found.append((default.lineno, name, ast.literal_eval(default)))
        except ValueError:
            continue  # not a literal: a call, a name
    return found


def test_no_default_of_the_schema_is_written_again_in_the_library():
    """The schema owns every default: a keyword or field default in the library that is the
    value the schema gives a key of the same name is a second owner, which drifts."""
    schema = schema_defaults_by_key()
    copies = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, name, value in code_defaults(ast.parse(path.read_text())):
            as_schema = list(value) if isinstance(value, tuple) else value
            if name in schema and as_schema in schema[name] and value is not None:
                copies.append(f"{path.relative_to(REPO)}:{line}: {name}={value!r}")
        # a table of defaults kept beside the schema (a manifest's column names were one)
        copies += [f"{path.relative_to(REPO)}:{node.lineno}: {target.id}"
                   for node in ast.parse(path.read_text()).body if isinstance(node, ast.Assign)
                   for target in node.targets
                   if isinstance(target, ast.Name) and "DEFAULT" in target.id]
    assert not copies, copies
