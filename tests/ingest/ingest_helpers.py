"""Shared helpers of the ingest tests: the real fixtures (read in place, never copied) and
builders of Lambda Kinesis events around real or derived user records."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion

from ingest import kpl
from ingest.decode import MAX_KINESIS_DATA
from journal.ion_binary import BVM
from journal.records import MAX_STATEMENT_CHARS

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "real"

DYNAMODB_EVENT = "qldb-simple-demo__streams-dynamodb__data.json"
ES_EVENT = "qldb-simple-demo__streams-es__data.json"
PARTIAL = "amazon-qldb-driver-nodejs-issue-405__aggregated_record_prefix.PARTIAL.txt"
WALLET = "qldb-wallet__lambda_util_util.ts__revision_details_v15_test-wallet.ion"


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


def real_user_records() -> list[bytes]:
    """The four Ion binary user records QLDB wrote in the two real aggregated events."""
    return [u.data for e in (DYNAMODB_EVENT, ES_EVENT) for u in kpl.deaggregate(kinesis_data(e))]


def ion_value(data: bytes) -> dict[str, Any]:
    value = simpleion.loads(data)
    assert isinstance(value, Mapping)
    return dict(value)


def binary(value: Any) -> bytes:
    return bytes(simpleion.dumps(value, binary=True))


def altered(data: bytes, path: tuple[str, ...], new: Any, *, delete: bool = False) -> bytes:
    """The record with one field (by path) replaced or deleted, as Ion binary."""
    value = ion_value(data)
    node: Any = value
    for key in path[:-1]:
        node[key] = dict(node[key])
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = new
    return binary(value)


def bad_records() -> dict[str, tuple[bytes | str, str, str]]:
    """name → (Kinesis data, expected rejection kind, expected reason fragment)."""
    block, revision = real_user_records()[:2]
    aggregate = kinesis_data(DYNAMODB_EVENT)
    bad_md5 = bytearray(aggregate)
    bad_md5[-1] ^= 0xFF
    body = b"\x0a\x01k" + b"\x1a\x03\x08\x05\x1a"  # index 5 into a one-entry key table, cut
    bad_protobuf = kpl.MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()
    long_statement = "INSERT INTO T VALUE {'a': '" + "x" * MAX_STATEMENT_CHARS + "'}"
    value = ion_value(block)
    statements = list(value["payload"]["transactionInfo"]["statements"])
    statements[0] = dict(statements[0], statement=long_statement)
    oversized_statement = altered(block, ("payload", "transactionInfo", "statements"), statements)
    return {
        "corrupt base64": ("4AEA6u4C!!not-base64", "base64", "not valid base64"),
        "bad MD5": (bytes(bad_md5), "aggregate", "MD5 mismatch"),
        "bad protobuf, correct MD5": (bad_protobuf, "aggregate", "protobuf: "),
        "invalid Ion": (BVM + b"\xde\x9f\x8a\x01", "ion", "invalid Ion binary"),
        "not Ion binary": (b"{recordType: 1}", "ion", "does not start with the version marker"),
        "two values": (block + revision[4:], "ion", "holds 2 top-level values"),
        "not a struct": (binary([1, 2]), "ion", "the top-level value is list, not a struct"),
        "unknown record type": (
            altered(block, ("recordType",), "BLOCK"),
            "record-type",
            "recordType 'BLOCK' is not one of CONTROL, BLOCK_SUMMARY, REVISION_DETAILS",
        ),
        "missing field": (
            altered(block, ("payload", "blockAddress"), None, delete=True),
            "field",
            "payload.blockAddress is missing",
        ),
        "mistyped field": (
            altered(revision, ("payload", "revision", "metadata", "version"), "zero"),
            "field",
            "payload.revision.metadata.version is not an int (string)",
        ),
        "oversized statement": (
            oversized_statement,
            "oversized",
            f"over QLDB's limit of {MAX_STATEMENT_CHARS}",
        ),
        "oversized Kinesis record": (
            BVM + b"\x00" * MAX_KINESIS_DATA,
            "oversized",
            "over the 1 MiB limit",
        ),
    }
