"""The record model and the hash arithmetic, on the real decoded fixtures (RECORDS.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion

from journal import hashes
from journal.canonical import fingerprint, record_fingerprint
from journal.errors import RecordError
from journal.records import BlockSummary, RevisionDetails, record_from_ion

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "real"
DECODED = (
    "qldb-simple-demo__streams-dynamodb__data.DECODED.DERIVED.ion",
    "qldb-simple-demo__streams-es__data.DECODED.DERIVED.ion",
)

pytestmark = pytest.mark.ingest_env


def _copy(value: Any) -> Any:
    # A round trip, not copy.deepcopy: amazon.ion 0.9.3 loses a timestamp's precision on deepcopy.
    return simpleion.loads(simpleion.dumps(value))


def _load(name: str) -> list[Any]:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared fixtures (../shared/fixtures/real) are needed")
    return list(simpleion.loads(path.read_bytes(), single_value=False))


@pytest.mark.parametrize("name", DECODED)
def test_real_block_hashes_verify(name: str) -> None:
    summary, revision = (record_from_ion(v) for v in _load(name))
    assert isinstance(summary, BlockSummary)
    assert isinstance(revision, RevisionDetails)
    assert hashes.merkle_root(summary.entries_hash_list) == summary.entries_hash
    assert hashes.block_hash(summary.entries_hash, summary.previous_block_hash) == (
        summary.block_hash
    )
    assert revision.hash in summary.entries_hash_list
    assert [r.hash for r in summary.user_revisions] == [revision.hash]
    assert revision.address == summary.address
    assert revision.metadata.tx_id == summary.transaction_id


@pytest.mark.parametrize("name", DECODED)
def test_a_changed_byte_breaks_the_block_hash(name: str) -> None:
    summary = record_from_ion(_load(name)[0])
    assert isinstance(summary, BlockSummary)
    tampered = bytes([summary.entries_hash_list[0][0] ^ 1]) + summary.entries_hash_list[0][1:]
    leaves = (tampered, *summary.entries_hash_list[1:])
    assert hashes.merkle_root(leaves) != summary.entries_hash


def test_real_block_summary_fields() -> None:
    summary = record_from_ion(_load(DECODED[0])[0])
    assert isinstance(summary, BlockSummary)
    assert summary.ledger == "eu-west-1:082136225280:qldb-simple-demo-dev"
    assert (
        summary.block_id == "eu-west-1:082136225280:qldb-simple-demo-dev/JUJgrQeIeI64ZgvXIuqlZ1/545"
    )
    assert [s.text for s in summary.statements] == [
        "SELECT Email FROM BicycleLicence AS b WHERE b.Email = ?",
        "INSERT INTO BicycleLicence ?",
        "UPDATE BicycleLicence as b SET b.GUID = ?, b.LicenceId = ? WHERE b.Name = ?",
    ]
    assert summary.documents[0].statements == (1, 2, 2)
    starts = [s.start_time for s in summary.statements]
    assert starts == sorted(starts) and starts[-1] < summary.block_timestamp


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("payload", "blockAddress"), "payload.blockAddress is missing"),
        (("qldbStreamArn",), "qldbStreamArn is missing"),
        (("payload", "blockAddress", "sequenceNo"), "payload.blockAddress.sequenceNo is missing"),
    ],
)
def test_missing_fields_are_named(path: tuple[str, ...], field: str) -> None:
    value = _copy(_load(DECODED[0])[0])
    target = value
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(RecordError) as info:
        record_from_ion(value)
    assert str(info.value) == field


def test_mistyped_field_is_named() -> None:
    value = _copy(_load(DECODED[0])[0])
    value["payload"]["blockAddress"]["sequenceNo"] = "545"
    with pytest.raises(RecordError, match=r"payload\.blockAddress\.sequenceNo is not an int"):
        record_from_ion(value)


def test_unknown_record_type() -> None:
    value = _copy(_load(DECODED[0])[0])
    value["recordType"] = "BLOCK"
    with pytest.raises(RecordError, match="recordType is not a known record type: 'BLOCK'"):
        record_from_ion(value)


def test_fingerprint_ignores_stream_id_but_not_content() -> None:
    value = _load(DECODED[0])[0]
    other_stream = _copy(value)
    other_stream["qldbStreamArn"] = (
        value["qldbStreamArn"].rsplit("/", 1)[0] + "/Other0Stream0Id0000000"
    )
    assert record_fingerprint(other_stream) == record_fingerprint(value)
    changed = _copy(value)
    changed["payload"]["transactionId"] = "X" + value["payload"]["transactionId"][1:]
    assert record_fingerprint(changed) != record_fingerprint(value)


def test_fingerprint_types_scalars() -> None:
    ints = simpleion.loads("{a: 1}")
    decimals = simpleion.loads("{a: 1.}")
    assert fingerprint(ints) != fingerprint(decimals)
    day = simpleion.loads("{d: 2020-01-01T}")
    ms = simpleion.loads("{d: 2020-01-01T00:00:00.000Z}")
    assert fingerprint(day) != fingerprint(ms)
    assert fingerprint(simpleion.loads("{a: 1, b: 2}")) == fingerprint(
        simpleion.loads("{b: 2, a: 1}")
    )


def test_dot_is_order_independent_and_matches_signed_ordering() -> None:
    a = bytes(range(32))
    b = bytes(range(1, 33))
    assert hashes.dot(a, b) == hashes.dot(b, a)
    assert hashes.dot(a, b"") == a
    with pytest.raises(ValueError, match="32-byte"):
        hashes.dot(b"x", a)


def test_stream_refs_are_shared_per_arn_and_still_checked() -> None:
    """``StreamRef.from_arn`` answers a known ARN from its table (one object per stream, the
    ledger key computed once): the same fields as a fresh parse, and an ARN that is not a QLDB
    stream's is refused whatever came before it (a str subclass, as amazon.ion loads a string,
    is parsed afresh)."""
    from amazon.ion.simple_types import IonPyText

    from journal.records import StreamRef

    arn = "arn:aws:qldb:eu-west-1:123456789012:stream/my-ledger/streamA"
    first, again = StreamRef.from_arn(arn), StreamRef.from_arn(arn)
    assert again is first
    assert (first.region, first.account, first.ledger_name, first.stream_id) == (
        "eu-west-1", "123456789012", "my-ledger", "streamA",
    )  # fmt: skip
    assert first.ledger == "eu-west-1:123456789012:my-ledger"
    as_loaded = StreamRef.from_arn(IonPyText(arn))
    assert as_loaded == first and as_loaded is not first and as_loaded.ledger == first.ledger
    other = StreamRef.from_arn(arn.replace("streamA", "streamB"))
    assert other.ledger == first.ledger and other != first
    for bad in (arn.replace("qldb", "kinesis", 1), arn + "/extra", "", arn[:-9]):
        with pytest.raises(RecordError, match="is not a QLDB stream ARN"):
            StreamRef.from_arn(bad)
        with pytest.raises(RecordError):
            StreamRef.from_arn(bad)  # refused again: a refusal is not remembered as a stream
