"""One invocation of the settler Lambda handler in this process, with a deadline that runs out.

``python -m tests.reliability.lambda_settle BUDGET_MS RESULT_JSON``: settings come from the
environment as in AWS (``QLDB_SETTLE_BUFFER``, ``QLDB_SETTLE_DESTINATION``, ...). The context
stands in for the Lambda runtime, which cannot be had locally: its
``get_remaining_time_in_millis`` counts down from ``BUDGET_MS`` on the real clock from the moment
the handler is invoked, so ``handlers.settler.deadline_from`` (the real one) stops the cycle once
less than its margin is left. The campaign only watches that deadline: it records whether it
said "stop" during the cycle. The handler's answer and that flag go to ``RESULT_JSON``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GROUP_SIZE = 3


class CountdownContext:
    """The part of the Lambda context the handler reads."""

    def __init__(self, budget_ms: int) -> None:
        self._end = time.monotonic() + budget_ms / 1000.0
        self.function_name = "qldb-settle-settler-chaos"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._end - time.monotonic()) * 1000))


def main(argv: list[str]) -> int:
    budget_ms, result_path = int(argv[0]), Path(argv[1])
    from handlers import settler as handler

    fired: list[float] = []
    started = time.monotonic()
    real = handler.deadline_from

    def watched(context: Any) -> Callable[[], bool] | None:
        deadline = real(context)
        if deadline is None:
            return None

        def check() -> bool:
            stop = deadline()
            if stop and not fired:
                fired.append(time.monotonic() - started)
            return stop

        return check

    handler.deadline_from = watched
    # Small destination transactions, as the campaign's other settles use, so that the deadline
    # (asked before each transaction) can fall inside a cycle of a few dozen blocks.
    settle = handler.settle
    handler.settle = lambda *a, **kw: settle(*a, **{"group_size": GROUP_SIZE, **kw})  # type: ignore[assignment]
    answer = handler.handler(
        {"source": "aws.events", "detail-type": "Scheduled Event"}, CountdownContext(budget_ms)
    )
    result = {
        "answer": answer,
        "deadline_fired": bool(fired),
        "fired_after_ms": round(fired[0] * 1000) if fired else None,
        "seconds": time.monotonic() - started,
    }
    result_path.write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
