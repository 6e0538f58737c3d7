"""Shared helpers of the ingest tests: the real fixtures (read in place, never copied) and
builders of Lambda Kinesis events around real or derived user records."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "real"

DYNAMODB_EVENT = "qldb-simple-demo__streams-dynamodb__data.json"
ES_EVENT = "qldb-simple-demo__streams-es__data.json"
PARTIAL = "amazon-qldb-driver-nodejs-issue-405__aggregated_record_prefix.PARTIAL.txt"


def fixture(name: str) -> Path:
    """A file of /work/shared/fixtures/real, or skip when the folder is absent."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real fixtures not found at {FIXTURES} (../shared/fixtures/real)")
    path = FIXTURES / name
    assert path.is_file(), f"fixture {name} is missing from {FIXTURES}"
    return path


def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"real fixtures not found at {FIXTURES} (../shared/fixtures/real)")
    return FIXTURES


def load_json(name: str) -> Any:
    return json.loads(fixture(name).read_text())


def kinesis_data(event_name: str, index: int = 0) -> bytes:
    """The decoded data of one Kinesis record of a real event fixture."""
    event = load_json(event_name)
    return base64.b64decode(event["Records"][index]["kinesis"]["data"], validate=True)


def kinesis_entry(
    data: bytes | str,
    *,
    seq: str,
    shard: str = "shardId-000000000000",
    arrival: float | None = 1593808604.342,
    partition_key: str = "a",
) -> dict[str, Any]:
    """One ``Records`` entry of a Lambda Kinesis event; ``data`` bytes are base64-encoded, a
    string is used as given (to test corrupt base64)."""
    kinesis: dict[str, Any] = {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": partition_key,
        "sequenceNumber": seq,
        "data": base64.b64encode(data).decode("ascii") if isinstance(data, bytes) else data,
    }
    if arrival is not None:
        kinesis["approximateArrivalTimestamp"] = arrival
    return {
        "kinesis": kinesis,
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{seq}",
        "eventName": "aws:kinesis:record",
        "awsRegion": "eu-west-1",
        "eventSourceARN": "arn:aws:kinesis:eu-west-1:000000000000:stream/test",
    }


def kinesis_event(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": list(entries)}


def seq_no(n: int) -> str:
    """A Kinesis-looking sequence number that sorts like ``n``."""
    return f"4960{n:052d}"
