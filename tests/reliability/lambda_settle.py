"""One invocation of the settler Lambda handler in this process, with a deadline that runs out.

``python -m tests.reliability.lambda_settle BUDGET_MS RESULT_JSON``: settings come from the
environment as in AWS (``QLDB_SETTLE_BUFFER``, ``QLDB_SETTLE_DESTINATION``, ...). The context
stands in for the Lambda runtime, which cannot be had locally: its
``get_remaining_time_in_millis`` counts down from ``BUDGET_MS`` on the real clock from the moment
the handler is invoked, so ``handlers.settler.deadline_from`` (the real one) stops the cycle once
less than its margin is left. The campaign only watches that deadline: it records whether it
said "stop" during the cycle. The handler's answer and that flag go to ``RESULT_JSON``.

With ``CHAOS_AWS_DIR`` set, the ingest health check (``settler.ingest_health``, the real one, on
the queue of ``QLDB_SETTLE_FAILURE_QUEUE_URL``) reads the campaign's file-backed on-failure queue
there (``tests.reliability.aws_fakes``) instead of SQS. With ``CHAOS_NOW`` (ISO 8601) the
handler's clock starts at that instant instead of the real one and runs on from it (as
``settle --now`` does for the CLI), so a scenario invokes it at the simulated stream's time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, tzinfo
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


def _clock_from(start: datetime) -> type[datetime]:
    """A ``datetime`` whose ``now`` starts at ``start`` and runs on the monotonic clock."""
    t0 = time.monotonic()

    class Clock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Clock:
            at = start + timedelta(seconds=time.monotonic() - t0)
            moved = at.astimezone(tz) if tz is not None else at
            return cls.fromtimestamp(moved.timestamp(), moved.tzinfo)

    return Clock


def main(argv: list[str]) -> int:
    budget_ms, result_path = int(argv[0]), Path(argv[1])
    from handlers import settler as handler
    from settler.cycle import SettlePolicy

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
    at = os.environ.get("CHAOS_NOW")
    if at:
        setattr(handler, "datetime", _clock_from(datetime.fromisoformat(at.replace("Z", "+00:00"))))  # noqa: B010
    aws_dir = os.environ.get("CHAOS_AWS_DIR")
    if aws_dir:
        from .aws_fakes import FileQueue

        health = getattr(handler, "aws_ingest_health")  # noqa: B009 - replaced below
        queue = FileQueue(Path(aws_dir))
        setattr(handler, "aws_ingest_health", lambda **kw: health(**{**kw, "sqs": queue}))  # noqa: B010
    # Small destination transactions, as the campaign's other settles use, so that the deadline
    # (asked before each transaction) can fall inside a cycle of a few dozen blocks.
    settle = getattr(handler, "settle")  # noqa: B009 - replaced below

    def small_groups(*a: Any, policy: SettlePolicy, **kw: Any) -> Any:
        return settle(*a, policy=replace(policy, group_size=GROUP_SIZE), **kw)

    setattr(handler, "settle", small_groups)  # noqa: B010
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
