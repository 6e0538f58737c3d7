"""The metric contract: the handlers publish the names the dashboard and alarms read."""

from __future__ import annotations

import importlib

import pytest

from infra import metrics


def published_names(module_name: str) -> set[str]:
    module = importlib.import_module(module_name)
    return {v for v in vars(module).values() if isinstance(v, str)}


@pytest.mark.parametrize(
    ("module_name", "names"),
    [("ingest.handler", metrics.INGEST_METRICS), ("settler.handler", metrics.SETTLER_METRICS)],
)
def test_handlers_use_the_dashboard_names(module_name: str, names: tuple[str, ...]) -> None:
    published = published_names(module_name)
    assert set(names) <= published, sorted(set(names) - published)
    assert metrics.NAMESPACE in published


def test_names_are_distinct() -> None:
    every = metrics.INGEST_METRICS + metrics.SETTLER_METRICS
    assert len(set(every)) == len(every) == 23
