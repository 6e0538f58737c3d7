"""What the function tests share: an expression run as a SELECT item over a one-document table
(the pages' runnable form ``SELECT f(...) FROM << 0 >>`` is the same projection), and null as
the pages write it (None or an Ion typed null)."""

from __future__ import annotations

from typing import Any

from ledger import EmbeddedLedger

MISSING = "MISSING"  # what select_value gives for a missing result


def select_value(led: EmbeddedLedger, expression: str) -> Any:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T VALUE {'one': 1}")
    [row] = led.execute(f"SELECT {expression} AS v FROM T AS t")
    return dict(row).get("v", MISSING)


def is_null(v: Any) -> bool:
    return v is None or type(v).__name__ == "IonPyNull"
