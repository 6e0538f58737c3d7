"""The metric contract: names defined once (``handlers.metrics``), read by handlers and infra."""

from __future__ import annotations

import ast
from pathlib import Path

from handlers import metrics

ROOT = Path(__file__).resolve().parents[2]


def test_names_are_distinct() -> None:
    every = metrics.INGEST_METRICS + metrics.SETTLER_METRICS
    assert len(set(every)) == len(every)


def test_no_module_spells_a_metric_name_of_its_own() -> None:
    """Only handlers/metrics.py holds the names as string literals: a second copy is how a widget
    ends up reading a name no handler publishes."""
    names = set(metrics.INGEST_METRICS + metrics.SETTLER_METRICS) | {metrics.NAMESPACE}
    offenders = []
    for folder in ("handlers", "infra", "settler", "ingest", "compose"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "handlers" / "metrics.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and node.value in names:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert offenders == []
