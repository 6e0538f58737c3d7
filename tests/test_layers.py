"""The import graph of the service's packages: one table of layers, no arrow up, no cycle.

Every module of every package is parsed with ``ast`` (nothing is imported, so the test runs in
any environment), and every ``import`` counts wherever it is written: at the top, inside a
function (a lazy import hides an arrow, it does not remove it) or under ``if TYPE_CHECKING:``
(allowed by nothing special: a type named from a higher layer is still knowledge of that layer,
so those obey the same table; the ingest check below skips them only because they never run).
Arrows are judged by top-level package: a new module inside a package needs no change
here, a new package must be placed in ``LAYERS``.

The rule: a package imports only packages of lower layers. Packages of one layer are peers and
import each other not at all (the two ports do not know each other; the command line and the
Lambda handlers do not either). ``KNOWN_EXCEPTIONS`` lists the arrows that break it on purpose,
each with its reason; there are none today, and any new one fails until it is fixed or listed.

Each package's ``__init__`` docstring says the same in words (``test_each_package_says_...``).
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. Derived from the imports of today's code (an arrow from each layer to the ones
# below it exists or is allowed; none goes up or sideways).
LAYERS: tuple[tuple[str, ...], ...] = (
    # QLDB's records, their hash arithmetic and Ion binary; the errors everyone raises.
    ("journal",),
    # What bounds a run (the deadline); the embedded ledger (PartiQL over SQLite).
    ("runtime", "ledger"),
    # The two ports and their adapters: where a record waits, where a block is replayed.
    ("buffer", "destination"),
    # Where a record enters: decode and classify the stream, put into any buffer.
    ("ingest",),
    # Where a block is released: verify, plan, replay through any destination, mark.
    ("settler",),
    # Settings and the roots that turn them into adapters.
    ("compose",),
    # The entry points: the Lambda handlers and the command line (and its demo, simulator).
    ("handlers", "qldb_settle"),
    # Around the service, never imported by it: the CDK app and the benchmarks.
    ("infra", "bench"),
)

# (importing package, imported package) -> why this arrow up or sideways is allowed.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}

# What the ingest Lambda cannot import, directly or through the modules it imports: it ships
# amazon.ion 0.15 with its C extension, and pyqldb and ionhash come with amazon.ion 0.9.3 only.
INGEST_FORBIDDEN = ("pyqldb", "ionhash")

# They import the ports of ``buffer`` and ``destination``, never an adapter (``compose`` picks it).
PORTS_ONLY = ("ingest", "settler", "handlers")

LAYER_OF = {pkg: n for n, layer in enumerate(LAYERS) for pkg in layer}


def _packages() -> list[str]:
    """The project's packages: those setuptools ships (pyproject.toml) and the benchmarks."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({p.removesuffix("*") for p in shipped} | {"bench"})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Iterator[tuple[str, Path]]:
    for pkg in _packages():
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield _module_name(path), path


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _imports(name: str, path: Path, typing: bool = True) -> Iterator[tuple[str, int]]:
    """Every module name ``path`` imports (absolute or relative, at any depth), with its line;
    without ``typing``, not those under ``if TYPE_CHECKING:`` (which never run)."""
    tree = _tree(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip: set[int] = set()
    if not typing:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, node.lineno
            for alias in node.names:  # ``from pkg import submodule``
                yield f"{module}.{alias.name}", node.lineno


def _arrows() -> dict[tuple[str, str], list[str]]:
    """(from package, to package) -> where, over every module of the project."""
    packages = set(_packages())
    arrows: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, path in _modules():
        source = name.split(".")[0]
        for module, line in _imports(name, path):
            target = module.split(".")[0]
            if target in packages and target != source:
                where = f"{path.relative_to(ROOT)}:{line}"
                if not any(w.startswith(f"{where} ") for w in arrows[(source, target)]):
                    arrows[(source, target)].append(f"{where} imports {module}")
    return arrows


def test_the_table_places_every_package_once() -> None:
    placed = [pkg for layer in LAYERS for pkg in layer]
    assert len(placed) == len(set(placed))
    assert sorted(placed) == _packages(), "a new package needs its place in LAYERS"


def test_no_package_imports_a_higher_layer_or_a_peer() -> None:
    wrong = [
        f"{src} (layer {LAYER_OF[src]}) -> {dst} (layer {LAYER_OF[dst]}): {where[0]}"
        + (f" (and {len(where) - 1} more)" if len(where) > 1 else "")
        for (src, dst), where in sorted(_arrows().items())
        if LAYER_OF[dst] >= LAYER_OF[src] and (src, dst) not in KNOWN_EXCEPTIONS
    ]
    assert wrong == [], "\n".join(wrong)


def test_every_known_exception_still_exists() -> None:
    """An exception that is gone is removed from the list, so it cannot hide a new one."""
    arrows = _arrows()
    assert [arrow for arrow in KNOWN_EXCEPTIONS if arrow not in arrows] == []


def test_the_packages_import_no_cycle() -> None:
    """Implied by the layers unless an exception allows an arrow up: checked on its own."""
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in _arrows():
        graph[src].add(dst)
    cycles: list[list[str]] = []

    def visit(pkg: str, path: list[str]) -> None:
        for nxt in sorted(graph[pkg]):
            if nxt == path[0]:
                cycles.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its least package
                visit(nxt, [*path, nxt])

    for pkg in sorted(graph):
        visit(pkg, [pkg])
    assert cycles == [], [" -> ".join(c) for c in cycles]


def test_the_ingest_imports_neither_pyqldb_nor_ionhash_through_any_module() -> None:
    """Static, over every module the ingest package reaches by its imports (lazy ones too; not
    those under ``TYPE_CHECKING``, which never run), and the ``__init__`` of each package on the
    way; ``tests/ingest`` checks ``sys.modules`` after a real decode as well."""
    modules = dict(_modules())
    imports = {name: list(_imports(name, path, typing=False)) for name, path in modules.items()}
    todo = [name for name in modules if name.split(".")[0] == "ingest"]
    seen: dict[str, str] = {name: name for name in todo}  # module -> the chain that reached it
    found = []
    while todo:
        name = todo.pop()
        for module, line in imports[name]:
            if module.split(".")[0] in INGEST_FORBIDDEN:
                found.append(f"{seen[name]} ({modules[name].relative_to(ROOT)}:{line}) {module}")
            parts = module.split(".")
            for n in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
                step = ".".join(parts[:n])
                if step in modules and step not in seen:
                    seen[step] = f"{seen[name]} -> {step}"
                    todo.append(step)
    assert found == [], "\n".join(found)


def test_the_core_and_the_lambdas_know_the_ports_not_the_adapters() -> None:
    """The adapters are chosen by ``compose``: the ingest, the settler and the handlers import
    ``buffer.port`` and ``destination.port`` only."""
    lines: dict[str, set[str]] = defaultdict(set)  # file:line -> the modules it names
    for name, path in _modules():
        if name.split(".")[0] in PORTS_ONLY:
            for module, line in _imports(name, path):
                if module.split(".")[0] in ("buffer", "destination"):
                    lines[f"{path.relative_to(ROOT)}:{line}"].add(module)
    wrong = []
    for where, modules in sorted(lines.items()):
        # ``from buffer import port`` names ``buffer`` and ``buffer.port``: judge the names.
        named = {m for m in modules if "." in m} or modules
        if any(m.split(".")[1:2] != ["port"] for m in named):
            wrong.append(f"{where} imports {', '.join(sorted(named))}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("pkg", _packages())
def test_each_package_says_what_lives_there_and_what_it_may_import(pkg: str) -> None:
    """The ``__init__`` docstring says what lives there and has one ``Imports:`` paragraph: what
    it names before "; never" (as ````pkg````) are packages of lower layers, among them every
    package it imports today; the table and the words cannot drift apart."""
    doc = ast.get_docstring(ast.parse((ROOT / pkg / "__init__.py").read_text())) or ""
    paragraphs = [p for p in doc.split("\n\n") if p.startswith("Imports:")]
    assert len(paragraphs) == 1, f"{pkg}/__init__.py: no 'Imports:' paragraph in its docstring"
    assert len(doc.split("\n\n")) > 1, f"{pkg}/__init__.py: says only what it imports"
    allowed = paragraphs[0].partition("; never")[0]
    named = {p for p in _packages() if p != pkg and f"``{p}``" in allowed}
    higher = {p for p in named if LAYER_OF[p] >= LAYER_OF[pkg]}
    assert higher == set(), f"{pkg}/__init__.py says it may import {sorted(higher)}"
    imported = {dst for src, dst in _arrows() if src == pkg}
    unsaid = imported - named
    assert unsaid == set(), f"{pkg}/__init__.py does not say it imports {sorted(unsaid)}"
