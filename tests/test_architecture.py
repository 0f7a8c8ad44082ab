"""The import graph: no cycle among app's modules at import time, and the config (with `--help`)
loads without TensorFlow or pandas."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ENV, ROOT

APP = ROOT / "app"


def module_imports(everywhere: bool = False) -> dict[str, set[str]]:
    """Each app module ("train", or "data.tables" inside a package, a package by its own name)
    -> the app modules it imports at module level, or `everywhere` (inside functions too)."""
    paths = sorted(APP.rglob("*.py"))
    names = {path: ".".join(path.relative_to(APP).with_suffix("").parts).removesuffix(".__init__")
             for path in paths}
    known = set(names.values())

    def module(dotted: str) -> str:
        return dotted.removeprefix("app.")

    graph = {}
    for path, name in names.items():
        if name in ("__init__", "__main__") or name.endswith(".__main__"):
            continue
        found = set()
        # (Module level: statements only, since an `if TYPE_CHECKING:` block's imports never run.)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree) if everywhere else tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "app":
                base = module(node.module)
                for alias in node.names:  # `from app import data`, `from app.data import tables`
                    child = f"{base}.{alias.name}" if base != "app" else alias.name
                    found.add(child if child in known else base)
            elif isinstance(node, ast.Import):
                found.update(module(a.name) for a in node.names if a.name.startswith("app."))
        graph[name] = found - {name, "__init__", "app"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_modules_import_one_another_without_a_cycle():
    graph = module_imports(everywhere=True)
    assert {"config", "data", "train", "options", "training.budget"} <= set(graph)
    assert graph["options"] == set()  # the leaf every option list comes from
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check itself


def test_the_config_and_help_load_neither_tensorflow_nor_pandas():
    script = ("import sys, app.config, app.train; "
              "print(sorted(m for m in ('tensorflow', 'pandas', 'tf_keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
    proc = subprocess.run([sys.executable, "-m", "app.train", "--help"], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "--cpu-fusion" in proc.stdout and "--format" in proc.stdout


# The stages in the order docs/architecture.md draws them; a module imports (anywhere in it) only
# from its own stage or an earlier one.
STAGES = {
    "setup": ("options", "runtime", "config", "record", "distribute"),
    "model": ("model.preprocessing", "model.bert", "model.bert_fast", "model.conversion", "model.encoders",
              "model.classifier", "model.ngram", "model"),
    "training": ("training.optimization", "training.tuning", "training.budget", "training.backup",
                 "training.fit", "training.contrastive", "training.self_training", "training.calibration",
                 "training.decision", "training"),
    "data": ("data.examples", "data.tables", "data.sources", "data.splits", "data.cli", "data"),
    "serving": ("serving.export", "serving.inference", "serving"),
    "reporting": ("reporting.metrics", "reporting.plots", "reporting.baseline", "reporting.findings",
                  "reporting.render", "reporting"),
    "commands": ("convert", "predict", "evaluate", "train"),
}


def test_every_module_has_a_stage_and_imports_only_from_its_own_or_earlier_ones():
    rank = {module: i for i, modules in enumerate(STAGES.values()) for module in modules}
    graph = module_imports(everywhere=True)  # a lazy import inside a function counts too
    assert set(graph) - {"__init__"} == set(rank), "give each new module a stage here"
    upward = [(m, n) for m, imports in graph.items() for n in imports if m in rank and rank[n] > rank[m]]
    assert upward == []
