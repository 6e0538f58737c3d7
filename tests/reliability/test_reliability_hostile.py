"""Hostile input through the whole pipeline: a real simulated stream (real Ion, real QLDB hashes)
with hostile input mixed in goes through the ingest core into a SQLite buffer and is settled into
an embedded replica. Each bad input is rejected with its reason, or halts the settler at its block
with the reason, while every good record around it is stored and replayed.

tests/ingest covers the decoder's outcome for each kind of bad input on the real fixtures; this
module checks what happens around them, end to end, on a realistic stream."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buffer.port import Incoming, Rejection
from ingest import kpl
from ingest.decode import MAX_KINESIS_DATA, decode_event, decode_kinesis_data
from ingest.service import ingest_items
from journal.ion_binary import BVM
from journal.records import MAX_STATEMENT_CHARS, BlockSummary, RevisionDetails
from settler.compare import compare

from .hostile import (
    Pipeline,
    Stream,
    aggregate,
    altered,
    event,
    packed,
    protobuf_broken_md5_right,
    simulated_stream,
    unchained,
    with_nested_data,
    wrong_block_hash,
)


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    return simulated_stream(tmp_path_factory.mktemp("hostile-sim") / "sim")


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline.open(tmp_path)
    yield p
    p.close()


def _block_with(stream: Stream, kind: str, *, after: int = 6) -> BlockSummary:
    """The first block past ``after`` with a statement of that classification."""
    for b in stream.blocks():
        item = stream.records[b.record_id]
        if b.address.sequence_no > after and kind in item.statement_kinds:
            return b
    raise AssertionError(f"the simulated stream has no block with a {kind} statement")


def hostile_inputs(stream: Stream) -> dict[str, tuple[bytes | str, str, str]]:
    """name → (Kinesis data, rejection kind, reason fragment), each built from the stream."""
    rng = random.Random(11)
    block = _block_with(stream, "literal")
    block_raw = stream.raw_of(block.record_id)
    revision = stream.revisions_of(_block_with(stream, "parameterized"))[0]
    good_aggregate = aggregate(stream.raws[:4])
    flipped = bytearray(good_aggregate)
    flipped[len(flipped) // 2] ^= 0x10
    long_text = "INSERT INTO Person {'Name': '" + "x" * MAX_STATEMENT_CHARS + "'}"

    def long_statement(value: Any) -> None:
        statements = value["payload"]["transactionInfo"]["statements"]
        statements[0]["statement"] = long_text

    def mistyped(value: Any) -> None:
        value["payload"]["revision"]["metadata"]["version"] = "one"

    def missing(value: Any) -> None:
        del value["payload"]["blockAddress"]

    def unknown_type(value: Any) -> None:
        value["recordType"] = "JOURNAL_BLOCK"

    return {
        "random bytes": (rng.randbytes(300), "ion", "does not start with the version marker"),
        "random bytes after the KPL magic": (kpl.MAGIC + rng.randbytes(300), "aggregate", "MD5"),
        "truncated aggregate": (good_aggregate[: len(good_aggregate) // 2], "aggregate", "trunc"),
        "bit-flipped aggregate": (bytes(flipped), "aggregate", "MD5 mismatch"),
        "MD5 right, protobuf wrong": (
            protobuf_broken_md5_right(stream.raws[:3]),
            "aggregate",
            "protobuf: ",
        ),
        "invalid Ion": (BVM + b"\xde\x9f\x8a\x01", "ion", "invalid Ion binary"),
        "deeply nested Ion": (
            with_nested_data(revision.raw, 5000),
            "ion",
            "nested deeper than",
        ),
        "oversized record": (BVM + b"\x0f" * MAX_KINESIS_DATA, "oversized", "over the 1 MiB"),
        "oversized statement": (
            altered(block_raw, long_statement),
            "oversized",
            f"over QLDB's limit of {MAX_STATEMENT_CHARS}",
        ),
        "unknown record type": (altered(block_raw, unknown_type), "record-type", "JOURNAL_BLOCK"),
        "missing field": (
            altered(block_raw, missing),
            "field",
            "payload.blockAddress is missing",
        ),
        "mistyped field": (
            altered(revision.raw, mistyped),
            "field",
            "payload.revision.metadata.version is not an int",
        ),
        "corrupt base64": ("4AEA6u4C!!not-base64", "base64", "not valid base64"),
    }


def test_hostile_input_is_rejected_with_its_reason_and_the_stream_around_it_replays(
    stream: Stream, pipeline: Pipeline
) -> None:
    bad = hostile_inputs(stream)
    good = packed(stream.raws)
    datas: list[bytes | str] = list(good)
    rng = random.Random(5)
    for data, _, _ in bad.values():
        datas.insert(rng.randrange(len(datas) + 1), data)
    # A bad user record inside an otherwise good aggregate loses only itself.
    inner_bad = bad["mistyped field"][0]
    assert isinstance(inner_bad, bytes)
    datas.append(aggregate([stream.raws[0], inner_bad, stream.raws[1]]))

    report = ingest_items(pipeline.buffer, decode_event(event(datas)), batch_size=7)

    put = report.put
    distinct = {i.record.record_type for i in stream.records.values()}
    assert distinct <= {"BLOCK_SUMMARY", "REVISION_DETAILS"}
    assert put.stored["blocks"] + put.stored["revisions"] == len(stream.records)
    assert put.duplicates == 2  # the two good records of the mixed aggregate
    assert put.conflicts == 0 and put.late == 0
    kept = {(r.kind, r.raw): r for r in pipeline.buffer.rejected()}
    for name, (data, kind, reason) in bad.items():
        raw = data.encode() if isinstance(data, str) else data
        assert (kind, raw) in kept, f"{name}: not kept as a {kind} rejection"
        assert reason in kept[(kind, raw)].reason, (name, kept[(kind, raw)].reason)
    assert len(kept) == len(bad)  # the mistyped record inside the aggregate is the same one
    assert put.rejected == len(bad) + 1

    # The rejections hold no block (no gap in this stream): the settler replays everything.
    cycle = pipeline.settle()
    assert not cycle.halted, cycle.halt_reason
    assert cycle.blocks == len(stream.blocks())
    assert pipeline.equals_source(stream.source)


def _replace(stream: Stream, record_id: str, raw: bytes) -> list[bytes]:
    original = stream.raw_of(record_id)
    return [raw if r == original else r for r in stream.raws]


def _settle_halts_at(
    stream: Stream, pipeline: Pipeline, raws: list[bytes], block: BlockSummary
) -> str:
    """Ingest ``raws`` (all stored), settle, and check that every block before ``block`` was
    replayed, ``block`` was quarantined, and nothing after it was; returns the halt reason."""
    report = ingest_items(pipeline.buffer, decode_event(event(packed(raws))))
    assert report.put.rejected == 0 and report.put.stored["blocks"] == len(stream.blocks())
    cycle = pipeline.settle()
    seq = block.address.sequence_no
    assert cycle.halted
    assert [b for b, _ in cycle.quarantined_now] == [block.block_id]
    states = {r.sequence_no: r.state for r in pipeline.buffer.blocks()}
    assert all(states[s] == "replayed" for s in states if s < seq)
    assert states[seq] == "quarantined"
    assert all(states[s] == "pending" for s in states if s > seq)
    assert cycle.checkpoints[0].sequence_no == seq - 1
    # The replica holds exactly what the blocks before it wrote.
    latest: dict[str, RevisionDetails] = {}
    for item in stream.records.values():
        rec = item.record
        if isinstance(rec, RevisionDetails) and rec.address.sequence_no < seq:
            key = rec.document_id
            if key not in latest or rec.version > latest[key].version:
                latest[key] = rec
    expected = [(r.table_name, r.data) for r in latest.values() if r.data is not None]
    assert compare("stream before the block", expected, pipeline.documents()).equal
    return cycle.halt_reason or ""


def test_a_statement_altered_after_its_digest_halts_the_settler_at_its_block(
    stream: Stream, pipeline: Pipeline
) -> None:
    block = _block_with(stream, "literal", after=10)
    kinds = stream.records[block.record_id].statement_kinds
    index = kinds.index("literal")

    def change(value: Any) -> None:
        statement = value["payload"]["transactionInfo"]["statements"][index]
        statement["statement"] = statement["statement"].replace("'", "'X", 1)

    raw = altered(stream.raw_of(block.record_id), change)
    reason = _settle_halts_at(stream, pipeline, _replace(stream, block.record_id, raw), block)
    assert "does not match its statementDigest" in reason, reason


@pytest.mark.parametrize(
    ("damage", "says"),
    [(unchained, "does not link to block"), (wrong_block_hash, "is not dot(entriesHash")],
    ids=["consistent-but-unchained", "wrong-blockHash"],
)
def test_a_block_whose_hashes_do_not_chain_halts_the_settler_at_it(
    stream: Stream, pipeline: Pipeline, damage: Any, says: str
) -> None:
    blocks = stream.blocks()
    block = blocks[len(blocks) // 2]
    raw = damage(stream.raw_of(block.record_id))
    reason = _settle_halts_at(stream, pipeline, _replace(stream, block.record_id, raw), block)
    assert says in reason, reason


def test_a_revision_naming_another_table_than_its_block_is_refused(
    stream: Stream, pipeline: Pipeline
) -> None:
    block = _block_with(stream, "parameterized")
    revision = stream.revisions_of(block)[0]
    record = revision.record
    assert isinstance(record, RevisionDetails)
    other = next(
        i.record
        for i in stream.records.values()
        if isinstance(i.record, RevisionDetails) and i.record.table_name != record.table_name
    )
    assert isinstance(other, RevisionDetails)

    def change(value: Any) -> None:
        value["payload"]["tableInfo"]["tableName"] = other.table_name
        value["payload"]["tableInfo"]["tableId"] = other.table_id

    raw = altered(revision.raw, change)
    _settle_halts_at(stream, pipeline, _replace(stream, record.record_id, raw), block)


@pytest.mark.parametrize("depth", [400, 700])
def test_ion_nested_too_deep_for_the_pipeline_is_refused_with_a_reason(
    stream: Stream, pipeline: Pipeline, depth: int
) -> None:
    block = _block_with(stream, "parameterized")
    revision = stream.revisions_of(block)[0]
    deep = with_nested_data(revision.raw, depth)
    raws = [r for r in stream.raws if r != revision.raw]
    datas = [*packed(raws), deep]
    report = ingest_items(pipeline.buffer, decode_event(event(datas)))
    assert report.put.stored["blocks"] == len(stream.blocks())
    cycle = pipeline.settle()
    # Refused at the door (the block then misses a revision and holds the line with a reason),
    # or stored and quarantined at its block: either way said, never a crash.
    assert cycle.halted and cycle.halt_reason


def test_a_good_record_is_stored_whatever_follows_it_in_its_aggregate(stream: Stream) -> None:
    raw = stream.raws[0]
    items = decode_kinesis_data(aggregate([raw, b"\x00garbage"]), origin="s/1")
    assert isinstance(items[0], Incoming) and items[0].raw == raw
    assert isinstance(items[1], Rejection) and items[1].kind == "ion"
