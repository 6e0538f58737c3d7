"""Run a Lambda handler from exactly its code asset and its layer: the probe of
``tests/infra/test_infra_layer_imports.py``.

``python -I -S -B tests/infra/layer_probe.py SPEC.json OUT.json``: no site-packages, no user site,
no ``PYTHON*`` variables, no byte code written into the layer; ``sys.path`` is the standard
library plus the folders ``SPEC["paths"]`` names (the asset, the layer's ``python/``, and for the
ingest functions a stand-in of what the Lambda runtime provides: boto3 and botocore), in
Lambda's order. This file imports the standard library only until those are on the path.

``SPEC["steps"]`` are what a real invocation does, run in order; every one is a real call against
local servers the test started (osmem-server for OpenSearch, ``serve-qldb`` for the QLDB Session
API, moto behind a loopback bridge for S3, SSM, SQS and CloudWatch), with the settings in the
environment as the stack sets them:

- ``ingest``: ``handlers.ingest.handler`` on each Lambda Kinesis event of ``SPEC["events"]``;
- ``sigv4``: the OpenSearch client as it is built for an AWS domain (SigV4 from botocore's
  credentials), one request through it;
- ``export``: ``handlers.export.handler`` on ``SPEC["export"]`` (s3://) until it says done;
- ``settler``: ``handlers.settler.handler`` (window from SSM, ingest health from SQS and
  CloudWatch, replay through pyqldb);
- ``psycopg``: psycopg with its binary libpq, one connection attempt (to a closed port).

A warning that a package "is not importable" (the handlers degrade that way for metrics) fails
the probe. ``OUT.json`` gets each step's answer and the file of every module imported.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any


class Context:
    """The part of the Lambda context the handlers read."""

    def __init__(self, budget_ms: int = 60_000) -> None:
        self._end = time.monotonic() + budget_ms / 1000.0
        self.aws_request_id = "layer-probe"
        self.function_name = "layer-probe"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._end - time.monotonic()) * 1000))


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def step_ingest(spec: dict[str, Any]) -> Any:
    from handlers import ingest

    answers = []
    for path in spec["events"]:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
        answer = ingest.handler(event, Context())
        if answer["batchItemFailures"]:
            raise AssertionError(f"ingest of {path}: {answer}")
        answers.append(answer)
    return answers


def step_sigv4(spec: dict[str, Any]) -> Any:
    from buffer.opensearch import OpenSearchBuffer

    buffer = OpenSearchBuffer.from_url(
        spec["opensearch"], index_prefix=spec["index_prefix"], auth="sigv4"
    )
    try:
        return [list(s) for s in buffer.strands()]
    finally:
        buffer.close()


def step_export(spec: dict[str, Any]) -> Any:
    from handlers import export

    event: dict[str, Any] = {"export": spec["export"]}
    for _ in range(20):
        answer = export.handler(event, Context(600_000))
        if answer.get("done"):
            return answer
        event = answer
    raise AssertionError(f"export not done after 20 invocations: {answer}")


def step_settler(spec: dict[str, Any]) -> Any:
    from handlers import settler

    answer = settler.handler({"source": "aws.events"}, Context())
    if "skipped" in answer or answer.get("halted"):
        raise AssertionError(f"settler: {answer}")
    return answer


def step_psycopg(spec: dict[str, Any]) -> Any:
    import psycopg
    from psycopg import sql

    from destination import postgres  # noqa: F401

    if psycopg.pq.__impl__ != "binary":
        raise AssertionError(f"psycopg uses its {psycopg.pq.__impl__} libpq, not the binary one")
    try:
        psycopg.connect("host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2").close()
    except psycopg.OperationalError as exc:
        refused = str(exc)
    else:
        raise AssertionError("a connection to port 1 succeeded")
    return {"impl": psycopg.pq.__impl__, "sql": str(sql.Identifier("t")), "refused": refused[:80]}


STEPS = {
    "ingest": step_ingest,
    "sigv4": step_sigv4,
    "export": step_export,
    "settler": step_settler,
    "psycopg": step_psycopg,
}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    if "site" in sys.modules or any("site-packages" in p for p in sys.path):
        raise SystemExit(f"not isolated: run with python -I -S ({sys.path})")
    sys.path[:0] = spec["paths"]
    warnings = Warnings()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger().addHandler(warnings)
    answers = {}
    for name in spec["steps"]:
        answers[name] = STEPS[name](spec)
    bad = [m for m in warnings.messages if "not importable" in m]
    if bad:
        raise AssertionError(f"degraded for a missing package: {bad}")
    modules = {
        name: str(Path(file).resolve())
        for name, module in sorted(sys.modules.items())
        if (file := getattr(module, "__file__", None)) and Path(file).resolve() != Path(__file__)
    }
    Path(argv[1]).write_text(
        json.dumps({"answers": answers, "modules": modules}, default=str), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
