"""The shape of the code: no import cycle among the modules of host/powersentinel or
firmware/lib (imports inside functions count: deferring an import hides a cycle, it does not
remove it), no class longer than 600 lines in host/ or firmware/, and the version written in
one place."""
import ast
import os
import re
import subprocess
import sys

from setuptools.config.pyprojecttoml import read_configuration

import powersentinel
from support import REPO

MAX_CLASS_LINES = 600

# (directory holding top-level packages, the packages in it)
ROOTS = [(os.path.join(REPO, "host"), ("powersentinel",)),
         (os.path.join(REPO, "firmware", "lib"), ("sentinel", "hal"))]


def _modules():
    """{dotted module name: source file} for every module of the checked packages (Cython
    modules included: `from . import _kernels` imports the extension, not its package)."""
    mods = {}
    for root, packages in ROOTS:
        for pkg in packages:
            for dirpath, dirnames, filenames in os.walk(os.path.join(root, pkg)):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for fn in filenames:
                    if not fn.endswith((".py", ".pyx")):
                        continue
                    rel = os.path.relpath(os.path.join(dirpath, fn), root)
                    rel = os.path.splitext(rel)[0].split(os.sep)
                    if rel[-1] == "__init__":
                        rel = rel[:-1]
                    mods[".".join(rel)] = os.path.join(dirpath, fn)
    return mods


def _imports(name, path, mods):
    """The checked modules that `name` imports, anywhere in its file."""
    is_pkg = path.endswith("__init__.py")
    src = open(path, encoding="utf-8").read()
    if path.endswith(".pyx"):
        # Cython is not Python: keep its Python-level import lines (cimports are C-level)
        src = "\n".join(ln.strip() for ln in src.splitlines()
                        if re.match(r"\s*(import|from\s+\S+\s+import)\s", ln)
                        and "cimport" not in ln)
    tree = ast.parse(src, path)
    out = set()

    def add(target, names=()):
        # `from pkg import sub` imports the submodule pkg.sub when there is one
        subs = [target + "." + n for n in names if target + "." + n in mods]
        out.update(subs)
        if len(subs) < len(names) or not names:
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target:
                out.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            add(target, [a.name for a in node.names])
    out.discard(name)
    return out


def import_graph():
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def find_cycles(graph):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _cycle_path(graph, comp):
    """One concrete cycle through the component, for the failure message."""
    comp = set(comp)
    start = min(comp)
    prev = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return " -> ".join(reversed(path)) + " -> " + start
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return " <-> ".join(sorted(comp))


def test_no_import_cycle():
    graph = import_graph()
    assert "powersentinel.cli" in graph and "sentinel.app" in graph
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_cycle_path(graph, c) for c in cycles)


def test_the_cycle_finder_sees_function_level_and_relative_imports(tmp_path):
    # a toy package: a imports b at the top, b imports a inside a function
    pkg = tmp_path / "toy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n    return x\n")
    (pkg / "c.py").write_text("from .b import f\n")
    mods = {"toy": str(pkg / "__init__.py"), "toy.a": str(pkg / "a.py"),
            "toy.b": str(pkg / "b.py"), "toy.c": str(pkg / "c.py")}
    graph = {n: _imports(n, p, mods) for n, p in mods.items()}
    assert graph["toy.a"] == {"toy.b"} and graph["toy.b"] == {"toy.a"}
    assert graph["toy.c"] == {"toy.b"}
    assert find_cycles(graph) == [["toy.a", "toy.b"]]
    assert _cycle_path(graph, ["toy.a", "toy.b"]) == "toy.a -> toy.b -> toy.a"


def long_classes(tops, base=REPO):
    """One line, "file:line class NAME is N lines", per class over the limit under `tops`."""
    out = []
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "build"))
            for fn in filenames:
                if not fn.endswith(".py"):
                    continue
                path = os.path.join(dirpath, fn)
                tree = ast.parse(open(path, encoding="utf-8").read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.ClassDef):
                        n = node.end_lineno - node.lineno + 1
                        if n > MAX_CLASS_LINES:
                            out.append("%s:%d class %s is %d lines"
                                       % (os.path.relpath(path, base), node.lineno, node.name, n))
    return out


def test_no_class_longer_than_600_lines():
    long = long_classes([os.path.join(REPO, "host"), os.path.join(REPO, "firmware")])
    assert not long, "split these by responsibility:\n" + "\n".join(long)


def test_the_class_length_check_counts_nested_classes_from_header_to_last_line(tmp_path):
    body = "    x = 1\n" * (MAX_CLASS_LINES - 1)
    (tmp_path / "ok.py").write_text("class Fits:\n" + body)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "big.py").write_text(
        "def f():\n    class Inner:\n" + "    " + body.replace("\n", "\n    ").rstrip() +
        "\n        y = 2\n")
    assert long_classes([str(tmp_path)], base=str(tmp_path)) == [
        "sub/big.py:2 class Inner is %d lines" % (MAX_CLASS_LINES + 1)]


def test_the_version_is_written_in_one_place():
    # firmware/lib/sentinel/version.py; the package metadata and the host read it from there
    src = open(os.path.join(REPO, "firmware", "lib", "sentinel", "version.py")).read()
    version = re.search(r'^VERSION = "([^"]+)"$', src, re.M).group(1)
    assert powersentinel.__version__ == version
    cfg = read_configuration(os.path.join(REPO, "pyproject.toml"), expand=True)
    assert cfg["project"]["version"] == version
    found = subprocess.run(["grep", "-rIl", "--include=*.py", "--include=*.toml", "-F",
                            '"%s"' % version, "host/powersentinel", "firmware", "pyproject.toml"],
                           cwd=REPO, capture_output=True, text=True).stdout.split()
    assert found == ["firmware/lib/sentinel/version.py"], found
    r = subprocess.run([sys.executable, "-m", "powersentinel.cli", "--version"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().endswith(version), r.stdout + r.stderr
