"""The module import graph: no circles, and no package module importing an entry script.

Every ``import`` counts, including those inside functions (a circle hidden in a function is
still a circle), and importing ``a.b.c`` also runs the packages ``a`` and ``a.b``.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("depth_hints", "datasets", "networks")
ENTRY_SCRIPTS = ("train", "evaluate_depth", "precompute_depth_hints", "test_simple", "evaluate_pose")


def module_files(root: Path, packages=PACKAGES, scripts=ENTRY_SCRIPTS, script_dirs=("scripts",)) -> dict:
    """Module name -> file, for every .py of ``packages``, the entry ``scripts`` and the
    files of ``script_dirs`` (named '<dir>.<stem>')."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    for script in scripts:
        if (root / f"{script}.py").is_file():
            modules[script] = root / f"{script}.py"
    for folder in script_dirs:
        for path in sorted((root / folder).glob("*.py")):
            modules[f"{folder}.{path.stem}"] = path
    return modules


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path, modules: dict) -> dict:
    """Module -> set of project modules it imports (anywhere in the file), plus the packages
    those imports run (ancestors of the target that are not ancestors of the importer)."""
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, name, is_package)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in modules else base)
        own_ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate in modules and candidate != name and candidate not in own_ancestors:
                    graph[name].add(candidate)
    return graph


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (or a self-import): each is
    a set of modules that import one another in a circle. Tarjan's algorithm, iterative."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def test_the_project_has_no_import_circle():
    modules = module_files(ROOT)
    assert {"depth_hints.precompute", "datasets.layout", "networks", "train"} <= set(modules)
    graph = import_graph(ROOT, modules)
    found = cycles(graph)
    assert found == [], "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_package_module_imports_an_entry_script():
    modules = module_files(ROOT)
    graph = import_graph(ROOT, modules)
    offenders = {(name, target) for name, targets in graph.items() for target in targets
                 if name.split(".")[0] in PACKAGES
                 and (target in ENTRY_SCRIPTS or target.startswith("scripts."))}
    assert not offenders


def test_the_checker_finds_a_circle_hidden_in_a_function(tmp_path):
    # pkg.a imports pkg.b at module level; pkg.b imports pkg.a inside a function.
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from . import b\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg.a import x\n")
    (tmp_path / "pkg" / "c.py").write_text("import pkg.b\n")
    modules = module_files(tmp_path, packages=("pkg",), scripts=(), script_dirs=())
    graph = import_graph(tmp_path, modules)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.b"}  # its own package is not an edge
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_the_checker_counts_the_packages_an_import_runs(tmp_path):
    # q.x imports p.sub.y: that runs p/__init__ (which imports q.x) -> a circle through p.
    for package in ("p", "p/sub", "q"):
        (tmp_path / package).mkdir()
    (tmp_path / "p" / "__init__.py").write_text("from q import x\n")
    (tmp_path / "p" / "sub" / "__init__.py").write_text("")
    (tmp_path / "p" / "sub" / "y.py").write_text("Y = 1\n")
    (tmp_path / "q" / "__init__.py").write_text("")
    (tmp_path / "q" / "x.py").write_text("from p.sub.y import Y\n")
    modules = module_files(tmp_path, packages=("p", "q"), scripts=(), script_dirs=())
    graph = import_graph(tmp_path, modules)
    assert graph["q.x"] == {"p", "p.sub", "p.sub.y"}
    assert cycles(graph) == [["p", "q.x"]]


def test_the_precompute_does_not_import_torchvision():
    """Start-up: the precompute (and its forkserver preload) needs the layouts, not torchvision,
    whose import costs seconds; only colour augmentation and the networks import it."""
    import subprocess
    import sys
    code = "import sys, depth_hints.precompute; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_training_and_the_networks_do_not_import_torchvision():
    """Start-up: the trainer and the networks build their own ResNet (networks/resnet.py);
    torchvision's import (torch._dynamo through torchvision.ops) costs seconds."""
    import subprocess
    import sys
    code = ("import sys, networks, depth_hints.trainer; "
            "networks.ResnetEncoder(18, pretrained=False); print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.strip() == "False"
