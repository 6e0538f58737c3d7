"""Reading the CloudWatch EMF the handlers print (aws-lambda-powertools writes one JSON object per
line): each metric's values by name, for the handler tests."""

from __future__ import annotations

import json

NAMESPACE = "QldbSettle"


def emf_values(out: str) -> dict[str, list[float]]:
    """Every value printed for each metric name (a metric printed as a list counts each item);
    every directive must be in the service's namespace."""
    metrics: dict[str, list[float]] = {}
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                metrics.setdefault(metric["Name"], []).extend(
                    value if isinstance(value, list) else [value]
                )
    return metrics
