"""The nearest-rank distribution (p50, p99, max) that DESIGN.md's reports give for delays and
lags: one definition for ingest, settle, status and the demo, below all of them."""

from __future__ import annotations

import math
from collections.abc import Sequence


def distribution(values: Sequence[float]) -> dict[str, float | None]:
    """``{"p50", "p99", "max"}`` by nearest rank (DESIGN.md); None for no values."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return {"p50": rank(0.50), "p99": rank(0.99), "max": ordered[-1]}
