"""Every file of ../shared/fixtures/real decoded with the outcome its INDEX.md entry implies."""

from __future__ import annotations

import ast
import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType
from ingest_helpers import (
    DYNAMODB_EVENT,
    ES_EVENT,
    PARTIAL,
    fixture,
    fixtures_dir,
    kinesis_entry,
    kinesis_event,
    load_json,
)

from buffer.port import Incoming, Rejection
from ingest import kpl
from ingest.decode import DecodedItem, decode_event, decode_file, decode_kinesis_data
from journal.errors import InputError
from journal.hashes import block_hash, merkle_root
from journal.records import BlockSummary, ControlRecord, RevisionDetails

pytestmark = pytest.mark.ingest_env

DMV_BLOCK = (
    "amazon-qldb-streams-dmv-sample-lambda-python__tests_unit_fixtures__"
    "person_block_summary_ion_record.ion"
)
DMV_REVISION = (
    "amazon-qldb-streams-dmv-sample-lambda-python__tests_unit_fixtures__"
    "person_revision_details_ion_record.ion"
)
DMV_DEAGGREGATED = (
    "amazon-qldb-streams-dmv-sample-lambda-python__tests_unit_fixtures__"
    "deaggregated_stream_records.DERIVED.json"
)
OS_PREFIX = "amazon-qldb-streaming-amazon-opensearch-service-sample-python__tests_unit_fixtures__"
OS_BLOCK = OS_PREFIX + "person_block_summary_ion_record.ion"
OS_REVISION = OS_PREFIX + "person_revision_details_ion_record.ion"
OS_DELETE = OS_PREFIX + "person_revision_details_ion_record_for_delete_scenario.ion"
OS_VEHICLE = OS_PREFIX + "vehicle_registration_revision_details_ion_record.ion"
WALLET_V0 = "qldb-wallet__lambda_util_util.ts__revision_details_v0_test-wallet.ion"
WALLET_V15 = "qldb-wallet__lambda_util_util.ts__revision_details_v15_test-wallet.ion"
WALLET_V7 = "qldb-wallet__lambda_util_util.ts__revision_details_v7_wallet-ledger.ion"
CONTROL_CREATED = "qldb-developer-guide__streams.records__control_CREATED.ion"
CONTROL_COMPLETED = "qldb-developer-guide__streams.records__control_COMPLETED.ion"
SQS_MESSAGE = "qldb-bicycle-licence-sam__streams-dynamodb__msg.json"
DYNAMODB_DECODED = "qldb-simple-demo__streams-dynamodb__data.DECODED.DERIVED.ion"
ES_DECODED = "qldb-simple-demo__streams-es__data.DECODED.DERIVED.ion"
DYNAMODB_DEAGG = "qldb-simple-demo__streams-dynamodb__data.DEAGGREGATED.DERIVED.json"
ES_DEAGG = "qldb-simple-demo__streams-es__data.DEAGGREGATED.DERIVED.json"

# Each fixture file and the test below that covers it (a new file fails until it has one).
COVERED = {
    "INDEX.md": "test_files_that_are_not_input_raise_input_error",
    DYNAMODB_EVENT: "test_real_aggregated_events",
    ES_EVENT: "test_real_aggregated_events",
    DYNAMODB_DECODED: "test_decoded_ion_text_is_the_same_records",
    ES_DECODED: "test_decoded_ion_text_is_the_same_records",
    DYNAMODB_DEAGG: "test_deaggregated_derived_files_hold_a_bytes_repr",
    ES_DEAGG: "test_deaggregated_derived_files_hold_a_bytes_repr",
    DMV_BLOCK: "test_dmv_literal_block_and_revision",
    DMV_REVISION: "test_dmv_literal_block_and_revision",
    DMV_DEAGGREGATED: "test_dmv_deaggregated_records",
    OS_BLOCK: "test_trimmed_samples_are_rejected_naming_the_field",
    OS_REVISION: "test_trimmed_samples_are_rejected_naming_the_field",
    OS_DELETE: "test_deletion_sample",
    OS_VEHICLE: "test_trimmed_samples_are_rejected_naming_the_field",
    WALLET_V0: "test_wallet_revisions",
    WALLET_V15: "test_wallet_revisions",
    WALLET_V7: "test_wallet_revisions",
    CONTROL_CREATED: "test_control_records",
    CONTROL_COMPLETED: "test_control_records",
    SQS_MESSAGE: "test_files_that_are_not_input_raise_input_error",
    PARTIAL: "test_partial_aggregate_prefix",
}


def _only(items: list[DecodedItem], kind: type[Any]) -> list[Any]:
    assert all(isinstance(i, kind) for i in items), items
    return items


def test_every_fixture_file_is_covered() -> None:
    names = {p.name for p in fixtures_dir().iterdir() if p.is_file()}
    assert names == set(COVERED), f"uncovered: {names - set(COVERED)}; gone: {set(COVERED) - names}"
    tests = {name for name in globals() if name.startswith("test_")}
    assert set(COVERED.values()) <= tests


@pytest.mark.parametrize(
    ("name", "seq", "strand", "arrival"),
    [
        (DYNAMODB_EVENT, 545, "JUJgrQeIeI64ZgvXIuqlZ1", "2020-07-03T20:36:44.342000+00:00"),
        (ES_EVENT, 7551, "Ad3A7NAAxT12W36o0d8v32", None),
    ],
)
def test_real_aggregated_events(name: str, seq: int, strand: str, arrival: str | None) -> None:
    event = load_json(name)
    items = _only(decode_event(event), Incoming)
    assert len(items) == 2
    summary, revision = items[0].record, items[1].record
    assert isinstance(summary, BlockSummary) and isinstance(revision, RevisionDetails)
    assert (summary.address.strand_id, summary.address.sequence_no) == (strand, seq)
    # One block summary: 3 statements, 2 parameterized writes, 1 SELECT.
    assert len(summary.statements) == 3
    assert items[0].statement_kinds == ("select", "parameterized", "parameterized")
    assert summary.statements[0].text.startswith("SELECT ")
    assert [s.text.split()[0] for s in summary.statements[1:]] == ["INSERT", "UPDATE"]
    # Hashes verified with journal.hashes.
    assert merkle_root(summary.entries_hash_list) == summary.entries_hash
    assert block_hash(summary.entries_hash, summary.previous_block_hash) == summary.block_hash
    # One revision, of that block, listed in the summary and the entries.
    assert revision.address == summary.address
    assert revision.metadata.tx_id == summary.transaction_id
    assert revision.version == 0
    assert [r.hash for r in summary.user_revisions] == [revision.hash]
    assert revision.hash in summary.entries_hash_list
    assert summary.documents[0].statements == (1, 2, 2)
    # Provenance: the shard, sequence number and sub-sequence number; the raw user records.
    k = event["Records"][0]["kinesis"]
    shard = event["Records"][0]["eventID"].split(":")[0]
    assert [i.origin for i in items] == [
        f"{shard}/{k['sequenceNumber']}/0",
        f"{shard}/{k['sequenceNumber']}/1",
    ]
    users = kpl.deaggregate(base64.b64decode(k["data"]))
    assert [i.raw for i in items] == [u.data for u in users]
    expected_arrival = datetime.fromtimestamp(k["approximateArrivalTimestamp"], tz=UTC)
    assert all(i.arrived_at == expected_arrival for i in items)
    if arrival is not None:
        assert expected_arrival.isoformat() == arrival
    # From the file, origins name the file and the record.
    from_file = _only(decode_file(fixture(name)), Incoming)
    assert [i.origin.split("#", 1)[1] for i in from_file] == ["Records[0]/0", "Records[0]/1"]
    assert [i.fingerprint for i in from_file] == [i.fingerprint for i in items]


@pytest.mark.parametrize(("event", "decoded"), [(DYNAMODB_EVENT, DYNAMODB_DECODED),
                                                 (ES_EVENT, ES_DECODED)])  # fmt: skip
def test_decoded_ion_text_is_the_same_records(event: str, decoded: str) -> None:
    from_text = _only(decode_file(fixture(decoded)), Incoming)
    from_binary = _only(decode_file(fixture(event)), Incoming)
    assert [i.record.record_id for i in from_text] == [i.record.record_id for i in from_binary]
    # Same content, same fingerprint: a copy read from the text view is a duplicate.
    assert [i.fingerprint for i in from_text] == [i.fingerprint for i in from_binary]
    assert [i.record for i in from_text] == [i.record for i in from_binary]
    assert all(i.raw.startswith(b"\xe0\x01\x00\xea") for i in from_text)
    assert all(i.arrived_at is None for i in from_text)


@pytest.mark.parametrize(("deagg", "event"), [(DYNAMODB_DEAGG, DYNAMODB_EVENT),
                                              (ES_DEAGG, ES_EVENT)])  # fmt: skip
def test_deaggregated_derived_files_hold_a_bytes_repr(deagg: str, event: str) -> None:
    # As-is, kinesis.data is the Python repr of a bytes object ("b'4AEA6...'"): corrupt base64.
    items = _only(decode_file(fixture(deagg)), Rejection)
    assert [i.kind for i in items] == ["base64", "base64"]
    assert all("not valid base64" in i.reason for i in items)
    assert all(i.raw.startswith(b"b'4AEA6") for i in items)
    # Unwrapped, the bytes inside are byte for byte the user records of the aggregated event.
    records = load_json(deagg)["Records"]
    unwrapped = [base64.b64decode(ast.literal_eval(r["kinesis"]["data"])) for r in records]
    users = kpl.deaggregate(base64.b64decode(load_json(event)["Records"][0]["kinesis"]["data"]))
    assert unwrapped == [u.data for u in users]
    # Wrapped in an event as AggregationEnabled=false would deliver them, they decode the same.
    plain = kinesis_event(
        [kinesis_entry(data, seq=r["kinesis"]["sequenceNumber"]) for data, r in
         zip(unwrapped, records, strict=True)]
    )  # fmt: skip
    decoded = _only(decode_event(plain), Incoming)
    aggregated = _only(decode_file(fixture(event)), Incoming)
    assert [i.fingerprint for i in decoded] == [i.fingerprint for i in aggregated]
    assert [i.raw for i in decoded] == [i.raw for i in aggregated]


def test_dmv_literal_block_and_revision() -> None:
    (block,) = _only(decode_file(fixture(DMV_BLOCK)), Incoming)
    (revision,) = _only(decode_file(fixture(DMV_REVISION)), Incoming)
    summary = block.record
    assert isinstance(summary, BlockSummary)
    assert summary.address.sequence_no == 3
    assert block.statement_kinds == ("literal",)
    assert summary.statements[0].text.startswith("INSERT INTO Person <<\n{")
    rev = revision.record
    assert isinstance(rev, RevisionDetails)
    assert rev.document_id == "D35qd3e2prnJYmtKW6kok1" and rev.version == 0
    assert rev.block_id == summary.block_id
    # A day-precision Ion timestamp stays one (lossless raw Ion binary, typed value).
    dob = simpleion.loads(revision.raw)["payload"]["revision"]["data"]["DOB"]
    assert dob.date().isoformat() == "1963-08-19"
    assert int(getattr(dob.precision, "value", dob.precision)) == 2  # TimestampPrecision.DAY


def test_dmv_deaggregated_records() -> None:
    items = _only(decode_file(fixture(DMV_DEAGGREGATED)), Incoming)
    assert [i.record.record_type for i in items] == ["BLOCK_SUMMARY", "REVISION_DETAILS"]
    assert [i.origin.split("#")[1] for i in items] == ["Records[0]/0", "Records[1]/1"]
    assert all(i.arrived_at == datetime.fromtimestamp(1576048851.397, tz=UTC) for i in items)
    # Its data was generated from the sibling .ion fixtures: the same records.
    siblings = decode_file(fixture(DMV_BLOCK)) + decode_file(fixture(DMV_REVISION))
    assert [i.fingerprint for i in items] == [getattr(i, "fingerprint", None) for i in siblings]


def _with(value: Any, **fields: Any) -> bytes:
    """The Ion text record with top-level fields added (Ion binary)."""
    v = dict(value)
    v.update(fields)
    return bytes(simpleion.dumps(v, binary=True))


@pytest.mark.parametrize("name", [OS_BLOCK, OS_REVISION, OS_VEHICLE])
def test_trimmed_samples_are_rejected_naming_the_field(name: str) -> None:
    (item,) = decode_file(fixture(name))
    assert isinstance(item, Rejection)
    assert (item.kind, item.reason) == ("field", "qldbStreamArn is missing")
    assert item.origin == f"{fixture(name)}#0"
    # With a stream ARN added, the next missing field is named.
    value = simpleion.loads(fixture(name).read_text())
    arn = "arn:aws:qldb:us-east-1:466800022684:stream/vehicle-registration/17CR7ArZ1AMHgHOeOk6G9C"
    data = _with(value, qldbStreamArn=arn)
    (again,) = decode_kinesis_data(data, origin="test")
    assert isinstance(again, Rejection) and again.kind == "field"
    expected = {
        OS_BLOCK: "payload.blockAddress is missing",
        OS_REVISION: "payload.tableInfo.tableId is missing",
        OS_VEHICLE: "payload.tableInfo.tableId is missing",
    }[name]
    assert again.reason == expected
    assert again.raw == data


def test_deletion_sample() -> None:
    # The sample is trimmed (no ARN): rejected naming the field, like the others.
    (item,) = decode_file(fixture(OS_DELETE))
    assert isinstance(item, Rejection) and item.reason == "qldbStreamArn is missing"
    sample = simpleion.loads(fixture(OS_DELETE).read_text())
    assert "data" not in sample["payload"]["revision"]
    assert sample["payload"]["revision"]["metadata"]["version"] == 2
    # The same shape, a revision without data, on a complete real record is a deletion.
    real = simpleion.loads(fixture(WALLET_V15).read_text())
    deleted = dict(real)
    payload = dict(real["payload"])
    revision = {k: v for k, v in real["payload"]["revision"].items() if k != "data"}
    payload["revision"] = revision
    deleted["payload"] = payload
    (rev,) = _only(decode_kinesis_data(simpleion.dumps(deleted, binary=True), origin="t"),
                   Incoming)  # fmt: skip
    assert isinstance(rev.record, RevisionDetails)
    assert rev.record.is_deletion and not rev.record.is_redacted
    # And with dataHash instead of data, a redacted revision (kept; the settler quarantines it).
    revision["dataHash"] = bytes(32)
    (red,) = _only(decode_kinesis_data(simpleion.dumps(deleted, binary=True), origin="t"),
                   Incoming)  # fmt: skip
    assert red.record.is_redacted and red.record.data_hash == bytes(32)
    assert red.fingerprint != rev.fingerprint


def test_wallet_revisions() -> None:
    v0, v15, v7 = (
        _only(decode_file(fixture(n)), Incoming)[0] for n in (WALLET_V0, WALLET_V15, WALLET_V7)
    )
    assert [r.record.version for r in (v0, v15, v7)] == [0, 15, 7]
    assert v0.record.document_id == v15.record.document_id == "59NbC9MoyMw4vsTsoNROxX"
    assert v0.record.record_id != v15.record.record_id
    assert v0.record.ledger == "ap-northeast-1:670756400362:test-wallet"
    assert v7.record.ledger == "ap-northeast-1:670756400362:wallet-ledger"
    # The untyped null is kept as an Ion null, not dropped.
    for data in (v15.record.data, simpleion.loads(v15.raw)["payload"]["revision"]["data"]):
        assert getattr(data["txFrom"], "ion_type", None) is IonType.NULL


def test_control_records() -> None:
    (created,) = _only(decode_file(fixture(CONTROL_CREATED)), Incoming)
    (completed,) = _only(decode_file(fixture(CONTROL_COMPLETED)), Incoming)
    assert isinstance(created.record, ControlRecord)
    assert (created.record.control_type, completed.record.control_type) == ("CREATED", "COMPLETED")
    assert created.record.record_id != completed.record.record_id
    assert created.statement_kinds == ()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("INDEX.md", "neither a Lambda Kinesis event (JSON), Ion text nor Ion binary"),
        (SQS_MESSAGE, "an SQS message (eventSource aws:sqs), not a Kinesis event"),
        (PARTIAL, "neither a Lambda Kinesis event (JSON), Ion text nor Ion binary"),
    ],
)
def test_files_that_are_not_input_raise_input_error(name: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode_file(fixture(name))


def test_partial_aggregate_prefix() -> None:
    lines = fixture(PARTIAL).read_text().splitlines()
    text = "".join(line.strip() for line in lines if line and not line.startswith("#"))
    # As quoted it is not whole base64: rejected as base64 by a strict decoder.
    (as_is,) = decode_event(kinesis_event([kinesis_entry(text, seq="1")]))
    assert isinstance(as_is, Rejection) and as_is.kind == "base64"
    assert "Incorrect padding" in as_is.reason or "base64" in as_is.reason
    # Its whole quanta are a truncated aggregate: rejected as such, never passed on as a record.
    whole = text[: len(text) // 4 * 4]
    (item,) = decode_event(kinesis_event([kinesis_entry(whole, seq="2")]))
    assert isinstance(item, Rejection) and item.kind == "aggregate"
    assert item.reason.startswith("truncated: MD5 trailer missing")
    assert item.raw == base64.b64decode(whole)
    assert item.origin == "shardId-000000000000/2"


def test_raw_json_of_an_event_is_kept_for_json_rejections() -> None:
    event = kinesis_event([{"eventSource": "aws:kinesis", "kinesis": {"data": "4AEA6g=="}}])
    (item,) = decode_event(event)
    assert isinstance(item, Rejection) and item.kind == "json"
    assert item.reason == "kinesis.sequenceNumber is missing or not a string"
    assert json.loads(item.raw)["kinesis"]["data"] == "4AEA6g=="
