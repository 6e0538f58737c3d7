"""The embedded destination end to end: a source ledger's blocks replayed into a replica, with
DDL naming source ids translated, statement writes mapped, divergence refused, and the replica's
own journal."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from destination.embedded import EmbeddedDestination
from destination.port import BlockReplay, RevisionOp, StatementOp
from journal.canonical import fingerprint
from journal.errors import ReplayError
from journal.hashes import dot, merkle_root
from journal.records import BlockAddress
from ledger import EmbeddedLedger
from ledger.classify import classify
from ledger.engine import CommittedBlock


def replay_of(
    block: CommittedBlock, ledger: str, mode: Literal["statements", "revisions"] | None = None
) -> BlockReplay:
    """The ``BlockReplay`` the settler would build for a source block (rule 7)."""
    kinds = [classify(s).kind for s in block.statements]
    if mode is None:
        mode = "statements" if all(k in ("literal", "select", "ddl_id") for k in kinds) else (
            "revisions"
        )  # fmt: skip
    revisions = tuple(
        RevisionOp(
            table_name=r.table_name,
            table_id=r.table_id,
            document_id=r.document_id,
            version=r.version,
            data=r.data,
        )
        for r in block.revisions
    )
    if mode == "statements":
        ops: tuple[Any, ...] = tuple(
            StatementOp(text=s, index=i)
            for i, (s, k) in enumerate(zip(block.statements, kinds, strict=True))
            if k != "select"
        )
    else:
        ops = revisions
    return BlockReplay(
        block_id=f"{ledger}/{block.strand_id}/{block.sequence_no}",
        ledger=ledger,
        address=BlockAddress(block.strand_id, block.sequence_no),
        block_hash=block.block_hash,
        mode=mode,
        ops=ops,
        table_names=tuple({(r.table_id, r.table_name) for r in block.revisions}),
        revisions=revisions if mode == "statements" else (),
    )


def replay(source: EmbeddedLedger, dest: EmbeddedDestination, after: int = -1) -> None:
    cp = dest.checkpoint(source.ledger, source.strand_id)
    for b in source.blocks(after=cp.sequence_no if cp else after):
        r = replay_of(b, source.ledger)
        dest.apply([r], cp)
        cp = r.checkpoint()


def same_documents(a: EmbeddedLedger, b: EmbeddedLedger) -> None:
    def contents(led: EmbeddedLedger) -> list[tuple[str, str]]:
        return sorted((t, fingerprint(d)) for t, _, d in led.documents())

    assert contents(a) == contents(b)


@pytest.fixture
def pair(
    tmp_path: Path, led: EmbeddedLedger
) -> Iterator[tuple[EmbeddedLedger, EmbeddedDestination]]:
    dest = EmbeddedDestination(tmp_path / "replica.db", id_seed=99)
    yield led, dest
    dest.close()


def test_a_source_ledger_replays_exactly(pair: Any) -> None:
    source, dest = pair
    source.execute("CREATE TABLE Person")
    source.execute("CREATE INDEX ON Person (GovId)")
    source.execute("INSERT INTO Person << {'GovId': 'A', 'n': 1.50}, {'GovId': 'B', 'n': 2} >>")
    source.execute("INSERT INTO Person ?", {"GovId": "C", "n": 3})  # parameterized: revisions
    source.execute("UPDATE Person AS p SET p.n = p.n + 1 WHERE p.GovId = 'A'")
    pid = source.execute("SELECT i FROM Person AS p BY i WHERE p.GovId = 'B'")[0]["i"]
    source.execute("UPDATE Person AS p BY i SET p.x = 'by id' WHERE i = ?", pid)
    source.execute("FROM Person AS p WHERE p.GovId = 'C' INSERT INTO p VALUE [] AT 'Tags'")
    source.execute("DELETE FROM Person AS p WHERE p.GovId = 'A'")
    replay(source, dest)
    same_documents(source, dest.ledger)
    # the replica knows which source document each copy is
    src_ids = {d for _, d, _ in source.documents()}
    assert set(dest.source_ids().values()) == src_ids
    # its own journal: one block per replayed block that ran something, chained and hashed
    blocks = list(dest.ledger.blocks())
    assert len(blocks) == len(list(source.blocks())) - 1  # the SELECT-only block ran nothing
    for prev, b in itertools.pairwise(blocks):
        assert b.previous_block_hash == prev.block_hash
        entries = [bytes(h) for h in b.payload["entriesHashList"]]
        assert b.block_hash == dot(merkle_root(entries), b.previous_block_hash)
    assert all(not t.startswith("settle_") for t, _, _ in dest.ledger.tables())


def test_ddl_naming_source_ids_is_translated(pair: Any) -> None:
    source, dest = pair
    table_id = source.execute("CREATE TABLE Vehicle")[0]["tableId"]
    index_id = source.execute("CREATE INDEX ON Vehicle (VIN)")[0]["indexId"]
    source.execute("INSERT INTO Vehicle VALUE {'VIN': 'V1'}")
    source.execute("DROP TABLE Vehicle")
    replay(source, dest)
    assert list(dest.ledger.documents()) == []
    source.execute(f'UNDROP TABLE "{table_id}"')
    source.execute(f'DROP INDEX "{index_id}" ON Vehicle WITH (purge = true)')
    replay(source, dest)
    same_documents(source, dest.ledger)
    assert dest.ledger.indexes("Vehicle") == []
    replica_ids = {i for _, i, _ in dest.ledger.tables()}
    assert table_id not in replica_ids  # the replica's table has an id of its own


def test_an_undrop_of_an_unknown_source_table_halts(pair: Any) -> None:
    source, dest = pair
    bad = BlockReplay(
        block_id="b/1", ledger=source.ledger, address=BlockAddress("S" * 22, 1),
        block_hash=b"\x01" * 32, mode="statements",
        ops=(StatementOp(text='UNDROP TABLE "NeverSeenTable00000000x"', index=0),),
    )  # fmt: skip
    with pytest.raises(ReplayError, match="was never seen with a table name"):
        dest.apply([bad], None)
    assert dest.checkpoint(source.ledger, "S" * 22) is None


def test_statements_that_do_not_reproduce_the_revisions_are_refused(pair: Any) -> None:
    source, dest = pair
    source.execute("CREATE TABLE T")
    replay(source, dest)
    source.execute("INSERT INTO T VALUE {'a': 1}")
    [block] = list(source.blocks(after=source.tip() - 1))
    r = replay_of(block, source.ledger)
    tampered = BlockReplay(
        block_id=r.block_id, ledger=r.ledger, address=r.address, block_hash=r.block_hash,
        mode="statements", ops=(StatementOp(text="INSERT INTO T VALUE {'a': 2}", index=0),),
        revisions=r.revisions,
    )  # fmt: skip
    before = dest.checkpoint(source.ledger, source.strand_id)
    with pytest.raises(ReplayError, match="the replica would diverge"):
        dest.apply([tampered], before)
    assert list(dest.ledger.documents()) == []
    assert dest.checkpoint(source.ledger, source.strand_id) == before
    dest.apply([r], before)
    same_documents(source, dest.ledger)


def test_a_carried_data_hash_still_refuses_statements_that_do_not_reproduce(pair: Any) -> None:
    """The settler carries the data hash its verification computed (``RevisionOp.data_hash``),
    so the destination does not hash the revision again; the comparison still catches a replay
    that diverges, and a carried hash that is not the data's."""
    from dataclasses import replace

    from ledger.hashing import ion_hash

    source, dest = pair
    source.execute("CREATE TABLE T")
    replay(source, dest)
    source.execute("INSERT INTO T VALUE {'a': 1}")
    [block] = list(source.blocks(after=source.tip() - 1))
    r = replay_of(block, source.ledger)
    carried = tuple(replace(op, data_hash=ion_hash(op.data)) for op in r.revisions)
    wrong = tuple(replace(op, data_hash=ion_hash({"a": 2})) for op in r.revisions)
    before = dest.checkpoint(source.ledger, source.strand_id)
    for ops, revisions in (
        ((StatementOp(text="INSERT INTO T VALUE {'a': 2}", index=0),), carried),
        (r.ops, wrong),
    ):
        attempt = replace(r, ops=ops, revisions=revisions)
        with pytest.raises(ReplayError, match="the replica would diverge"):
            dest.apply([attempt], before)
        assert list(dest.ledger.documents()) == []
        assert dest.checkpoint(source.ledger, source.strand_id) == before
    dest.apply([replace(r, revisions=carried)], before)
    same_documents(source, dest.ledger)


def test_revision_mode_replays_a_whole_history(pair: Any) -> None:
    source, dest = pair
    source.execute("CREATE TABLE T")
    for i in range(5):
        source.execute("INSERT INTO T ?", {"k": i, "v": [i]})
    source.execute("UPDATE T AS t SET t.v = [] REMOVE t.k WHERE t.k = 3")
    source.execute("DELETE FROM T AS t WHERE t.k = 1")
    cp = None
    for b in source.blocks():
        r = replay_of(b, source.ledger, mode="revisions" if b.revisions else "statements")
        dest.apply([r], cp)
        cp = r.checkpoint()
    same_documents(source, dest.ledger)
