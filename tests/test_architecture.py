"""The import graph of microgpt/, read from the code: no cycle, and no module imports one of a higher layer.

Every import counts: at the top of a file or inside a function, under `typing.TYPE_CHECKING` or
not, relative or absolute. An import of `a.b.c` is an edge to `a.b.c` (its packages' __init__
files run too; they do no work, see tests/test_compile_cache.py). A new module must be given its
layer in LAYERS, where docs/architecture.md draws the same order.

tests/ mirrors microgpt/: every module has its test file at its mirrored path (the test of
microgpt/X/y.py is tests/X/test_y.py), but for the few in NO_TEST_FILE, each with its reason.
"""

from __future__ import annotations

import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "microgpt")

# bottom to top: a module may import from its own layer (without a cycle) or from the layers below it
LAYERS = {
    0: ["microgpt", "microgpt.errors", "microgpt.envvars"],
    1: ["microgpt.config", "microgpt.params", "microgpt.schedule", "microgpt.dropout", "microgpt.output_path",
        "microgpt.autograd", "microgpt.sampling_math", "microgpt.flops", "microgpt.threads", "microgpt.machine", "microgpt.bandwidth",
        "microgpt.compile_cache", "microgpt.backends.registry", "microgpt.scale_points"],
    2: ["microgpt.data", "microgpt.checkpoint", "microgpt.cli", "microgpt.synthetic_data"],
    3: ["microgpt.kernels", "microgpt.kernels.activation", "microgpt.kernels.adam", "microgpt.kernels.attention",
        "microgpt.kernels.causal_attention", "microgpt.kernels.fused_batch", "microgpt.kernels.fused_dropout",
        "microgpt.kernels.fused_layers", "microgpt.kernels.fused_model", "microgpt.kernels.fused_sample", "microgpt.kernels.fused_simd",
        "microgpt.kernels.fused_train", "microgpt.kernels.matmul", "microgpt.kernels.rmsnorm",
        "microgpt.kernels.xent"],
    4: ["microgpt.backends", "microgpt.backends.base", "microgpt.backends.python", "microgpt.backends.numpy_seq",
        "microgpt.backends.numpy_batched", "microgpt.backends.fused", "microgpt.backends.torch_backend"],
    5: ["microgpt.sampling", "microgpt.experiment", "microgpt.auto_choice", "microgpt.budget"],
    6: ["microgpt.bench", "microgpt.report", "microgpt.report.__main__", "microgpt.report.command_line",
        "microgpt.report.document", "microgpt.report.formatting", "microgpt.report.gflops", "microgpt.report.kernels",
        "microgpt.report.losses", "microgpt.report.plots", "microgpt.report.quality", "microgpt.report.results",
        "microgpt.report.scaling", "microgpt.report.step_timings", "microgpt.report.sweep"],
    7: ["microgpt.train", "microgpt.generate"],
}
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}


def package_modules() -> dict[str, str]:
    """{module name: file} for every .py file under microgpt/."""
    out = {}
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported_modules(module: str, path: str, known: dict[str, str]) -> set[str]:
    """The microgpt modules `module` (in `path`) imports, wherever in the file the import is."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name.split(".")[0] == "microgpt"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "microgpt":
                continue
            for alias in node.names:  # `from pkg import mod` imports the module pkg.mod
                out.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    return out - {module}


def import_graph() -> dict[str, set[str]]:
    known = package_modules()
    return {module: imported_modules(module, path, known) for module, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state = {}  # module -> "open" while on the current path, "done" once all it reaches is explored

    def visit(module, path):
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep, path + [dep])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_every_module_has_a_layer_and_every_layer_entry_is_a_module():
    modules = set(package_modules())
    unplaced, gone = sorted(modules - set(LAYER_OF)), sorted(set(LAYER_OF) - modules)
    assert not unplaced, f"give these modules a layer in LAYERS: {unplaced}"
    assert not gone, f"LAYERS names modules that do not exist: {gone}"
    assert len(LAYER_OF) == sum(len(m) for m in LAYERS.values()), "a module is in two layers"


def test_every_import_of_microgpt_names_a_module_that_exists():
    graph = import_graph()
    missing = sorted(f"{m} imports {dep}" for m, deps in graph.items() for dep in deps if dep not in graph)
    assert not missing, missing


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_module_imports_one_of_a_higher_layer():
    upward = sorted(f"{m} (layer {LAYER_OF[m]}) imports {dep} (layer {LAYER_OF[dep]})"
                    for m, deps in import_graph().items() for dep in deps
                    if m in LAYER_OF and dep in LAYER_OF and LAYER_OF[dep] > LAYER_OF[m])
    assert not upward, "\n".join(upward)


def test_the_graph_reader_sees_imports_inside_functions_and_type_checking(tmp_path):
    known = {"microgpt.a": "", "microgpt.b": "", "microgpt.pkg": "", "microgpt.pkg.c": ""}
    source = tmp_path / "a.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import X\n"
                      "def f():\n    from .pkg import c\n    import microgpt.pkg\n")
    assert imported_modules("microgpt.a", str(source), known) == {"microgpt.b", "microgpt.pkg.c", "microgpt.pkg"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# -- tests/ mirrors microgpt/ ------------------------------------------------------------------------

# the modules with no test file of their own, and why; any other module without one fails the test below
NO_TEST_FILE = {
    "microgpt/__init__.py": "the package's docstring and __version__, no code",
    "microgpt/kernels/__init__.py": "a docstring only",
    "microgpt/report/__init__.py": "a docstring only (the package's layout)",
    "microgpt/report/__main__.py": "calls command_line.main, which tests/report/test_command_line.py runs",
    "microgpt/backends/__init__.py": "get_backend_class alone, tested with the registry it reads "
                                     "(tests/backends/test_registry.py)",
}


def mirrored_test(module: str) -> str:
    """microgpt/X/y.py -> tests/X/test_y.py, microgpt/y.py -> tests/test_y.py (paths relative to the checkout)."""
    folder, name = os.path.split(os.path.relpath(module, "microgpt"))
    return os.path.join("tests", folder, "test_" + name)


def test_every_module_has_a_test_file_at_its_mirrored_path():
    modules = sorted(os.path.relpath(p, ROOT) for p in package_modules().values())
    has_test = {m: os.path.exists(os.path.join(ROOT, mirrored_test(m))) for m in modules}
    missing = [f"{m}: {mirrored_test(m)}" for m in modules if not has_test[m] and m not in NO_TEST_FILE]
    assert not missing, "write the test file of each (or give it a reason in NO_TEST_FILE):\n" + "\n".join(missing)
    gone = sorted(set(NO_TEST_FILE) - set(modules))
    assert not gone, f"NO_TEST_FILE names modules that do not exist: {gone}"
    tested = sorted(m for m in NO_TEST_FILE if has_test[m])
    assert not tested, f"these have a test file now: take them out of NO_TEST_FILE: {tested}"


def test_the_mirrored_path_of_a_module():
    assert mirrored_test(os.path.join("microgpt", "kernels", "attention.py")) == os.path.join("tests", "kernels",
                                                                                             "test_attention.py")
    assert mirrored_test(os.path.join("microgpt", "schedule.py")) == os.path.join("tests", "test_schedule.py")


# -- docs/architecture.md draws the same layers ------------------------------------------------------

def documented_layers() -> dict[str, int]:
    """{module: layer} from the layout drawing of docs/architecture.md ("layer N · ..." then "  path  what")."""
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    drawing = text.split("## Code layout", 1)[1].split("```", 2)[1]
    out, layer = {}, None
    for line in drawing.splitlines():
        if line.startswith("layer "):
            layer = int(line.split()[1])
        elif line.startswith("  ") and layer is not None:
            path = line.split()[0]
            name = "microgpt." + path[:-3].replace("/", ".")
            out[name.removesuffix(".__init__")] = layer
    return out


def test_the_architecture_doc_has_a_line_for_every_module_in_its_layer():
    documented = documented_layers()
    missing = sorted(set(LAYER_OF) - set(documented))
    assert not missing, f"docs/architecture.md has no line for: {missing}"
    misplaced = sorted(f"{m}: doc {documented[m]}, LAYERS {LAYER_OF[m]}" for m in documented
                       if documented[m] != LAYER_OF.get(m))
    assert not misplaced, misplaced
