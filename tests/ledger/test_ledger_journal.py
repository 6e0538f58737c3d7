"""The ledger's journal: blocks chain, and the stream records it emits are QLDB's records,
accepted and verified by the ingest path and the settler's verification."""

from __future__ import annotations

from typing import Any

import ionhash  # noqa: F401  (adds ion_hash to amazon.ion's values: an independent check)
from amazon.ion import simpleion

from buffer.port import BufferedBlock
from destination.port import Checkpoint
from ingest.decode import decode_bytes
from journal.hashes import dot, merkle_root
from journal.records import BlockSummary, RevisionDetails, record_from_ion
from ledger import EmbeddedLedger
from settler.block_checks import verify_block


def _ion_hash(value: Any) -> bytes:
    return bytes(simpleion.loads(simpleion.dumps(value, binary=True)).ion_hash("SHA256"))


def _workload(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE Person")
    led.execute("CREATE INDEX ON Person (GovId)")
    tx = led.begin()
    tx.execute("SELECT * FROM Person AS p WHERE p.GovId = 'A1'")
    tx.execute("INSERT INTO Person ?", {"GovId": "A1", "Balance": simpleion.loads("12.50")})
    tx.execute("UPDATE Person AS p SET p.Tier = ?, p.Tags = [] WHERE p.GovId = ?", "gold", "A1")
    tx.execute("INSERT INTO Person << {'GovId': 'B2', 'DOB': `1967-07-03T`, 'Tags': []} >>")
    tx.commit()
    led.execute("FROM Person AS p WHERE p.GovId = 'B2' INSERT INTO p.Tags VALUE 'x' AT 0")
    led.execute("DELETE FROM Person AS p WHERE p.GovId = 'A1'")
    led.execute("SELECT * FROM Person")


def test_blocks_chain_and_hash_like_qldb(led: EmbeddedLedger) -> None:
    _workload(led)
    blocks = list(led.blocks())
    assert [b.sequence_no for b in blocks] == list(range(6))
    previous = None
    for b in blocks:
        payload = b.payload
        entries = [bytes(h) for h in payload["entriesHashList"]]
        assert b.entries_hash == merkle_root(entries)
        assert b.block_hash == dot(b.entries_hash, b.previous_block_hash)
        if previous is not None:
            assert b.previous_block_hash == previous.block_hash
            assert b.timestamp_ms > previous.timestamp_ms
        for r in b.revisions:
            meta = r.metadata()
            expected = (
                _ion_hash(meta) if r.data is None else dot(_ion_hash(r.data), _ion_hash(meta))
            )
            assert r.hash == expected and r.hash in entries
        previous = b
    assert [len(b.revisions) for b in blocks] == [0, 0, 2, 1, 1, 0]
    # the same blocks read back from the file as returned by commit
    again = list(led.blocks(after=1))
    assert [b.block_hash for b in again] == [b.block_hash for b in blocks[2:]]


def test_stream_records_are_accepted_and_verified(led: EmbeddedLedger) -> None:
    _workload(led)
    arn = led.stream_arn("StreamA0000000000000000")
    previous: Checkpoint | None = None
    for b in led.blocks():
        values = b.stream_records(arn)
        # as QLDB writes them to Kinesis: each record a complete Ion binary stream
        raw = b"".join(simpleion.dumps(v, binary=True) for v in values)
        items = decode_bytes(raw, name=f"block-{b.sequence_no}")
        records = [getattr(i, "record", None) for i in items]
        assert all(r is not None for r in records), items
        summary = records[0]
        assert isinstance(summary, BlockSummary)
        assert summary.ledger == led.ledger and summary.address.sequence_no == b.sequence_no
        details = {r.document_id: r for r in records[1:] if isinstance(r, RevisionDetails)}
        assert set(details) == {r.document_id for r in summary.user_revisions}
        for st in summary.statements:
            assert summary.block_timestamp > st.start_time
        for rev in details.values():
            assert rev.metadata.tx_id == summary.transaction_id
            assert rev.metadata.tx_time < summary.block_timestamp
        block = BufferedBlock(
            summary=summary, revisions=details, statement_kinds=(), state="pending",
            arrived_at=None,
        )  # fmt: skip
        check = verify_block(block, previous)
        assert check.ok, check.failure
        assert check.revisions_checked == len([r for r in details.values() if r.data is not None])
        if previous is not None:
            assert check.chain_checked
        literal = [s for s in summary.statements if "?" not in s.text]
        assert check.digests_verified == len(literal)
        previous = Checkpoint(
            ledger=summary.ledger, strand_id=summary.address.strand_id,
            sequence_no=summary.address.sequence_no, block_hash=summary.block_hash,
        )  # fmt: skip


def test_statement_digests_fold_in_the_parameters(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    doc = {"a": 1}
    led.execute("INSERT INTO T ?", doc)
    tx = led.begin()
    tx.execute("UPDATE T AS t SET t.b = ?, t.c = ? WHERE t.a = 1", "x", simpleion.loads("1.0"))
    block = tx.commit()
    [st] = block.payload["transactionInfo"]["statements"]
    expected = dot(
        dot(_ion_hash("UPDATE T AS t SET t.b = ?, t.c = ? WHERE t.a = 1"), _ion_hash("x")),
        _ion_hash(simpleion.loads("1.0")),
    )
    assert bytes(st["statementDigest"]) == expected
    ddl = next(led.blocks())
    [create] = ddl.payload["transactionInfo"]["statements"]
    assert bytes(create["statementDigest"]) == _ion_hash("CREATE TABLE T")


def test_records_have_the_documented_shape(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T VALUE {'a': 1}")
    block = list(led.blocks())[-1]
    summary, detail = block.stream_records(led.stream_arn())
    assert summary["recordType"] == "BLOCK_SUMMARY" and detail["recordType"] == "REVISION_DETAILS"
    payload = summary["payload"]
    assert list(payload) == [
        "blockAddress", "transactionId", "blockTimestamp", "blockHash", "entriesHash",
        "previousBlockHash", "entriesHashList", "transactionInfo", "revisionSummaries",
    ]  # fmt: skip
    [(doc_id, info)] = list(payload["transactionInfo"]["documents"].items())
    assert info["tableName"] == "T" and list(info["statements"]) == [0]
    revision = detail["payload"]["revision"]
    assert list(revision) == ["blockAddress", "hash", "data", "metadata"]
    assert list(revision["metadata"]) == ["id", "version", "txTime", "txId"]
    assert revision["metadata"]["id"] == doc_id and len(doc_id) == 22
    loaded = record_from_ion(simpleion.loads(simpleion.dumps(detail, binary=True)))
    assert isinstance(loaded, RevisionDetails) and not loaded.is_deletion
    # the CREATE TABLE block carries a system revision: a summary without a document id
    create = next(led.blocks())
    assert [dict(r).keys() for r in create.payload["revisionSummaries"]] == [{"hash": 0}.keys()]
