"""Issue 14: revision replay carries the data hash verification proved into the replica instead
of hashing the data again. What that shortcut must not lose: a revision whose data does not hash
to its revision hash is still quarantined before anything is replayed (so no unproved hash is
ever carried), and a replayed revision's hash in the replica's journal is the one recomputed
from the Ion the replica stored."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from settler_blocks import Built, Chain, Rev, ion, put

from buffer.sqlite import SqliteBuffer
from destination.embedded import EmbeddedDestination
from journal.hashes import dot
from ledger import EmbeddedLedger
from ledger.blocks import ion_struct, ion_time
from ledger.hashing import ion_hash
from settler.cycle import SettlePolicy, settle

NOW = datetime(2100, 1, 1, tzinfo=UTC)
DOC = "D" * 22


def _blocks(data: dict[str, object]) -> tuple[Built, Built]:
    chain = Chain()
    create = chain.block(["CREATE TABLE Person"])
    insert = chain.block([("INSERT INTO Person ?", [data])], [Rev("Person", DOC, 0, data)])
    return create, insert


def _tampered(built: Built) -> Built:
    """The revision's data changed after the source hashed it (its hash left as it was)."""
    [value] = built.revision_values
    changed = ion(value)
    changed["payload"]["revision"]["data"]["name"] = "Mallory"
    return Built(
        summary_value=built.summary_value, revision_values=[ion(changed)], commit=built.commit
    )


def _settle(tmp_path: Path, *blocks: Built) -> tuple[int, int, str | None]:
    buffer = SqliteBuffer(tmp_path / "b.db")
    put(buffer, *blocks)
    dest = EmbeddedDestination(tmp_path / "r.db")
    try:
        report = settle(buffer, dest, now=NOW, policy=SettlePolicy(window_seconds=120))
    finally:
        dest.close()
        buffer.close()
    return report.blocks, report.quarantined, report.halt_reason


def test_tampered_revision_data_is_quarantined_before_replay(tmp_path: Path) -> None:
    create, insert = _blocks({"name": "Alice", "n": 1})
    blocks, quarantined, reason = _settle(tmp_path, create, _tampered(insert))
    assert (blocks, quarantined) == (1, 1)
    assert reason is not None and "not the revision hash" in reason
    with EmbeddedLedger(tmp_path / "r.db", ledger_name="replica") as replica:
        assert [t for t, _, _ in replica.documents()] == []


def test_the_replicas_revision_hash_is_recomputed_from_its_stored_ion(tmp_path: Path) -> None:
    create, insert = _blocks({"name": "Alice", "n": 1, "tags": ["a", 2]})
    assert _settle(tmp_path, create, insert)[:2] == (2, 0)
    with EmbeddedLedger(tmp_path / "r.db", ledger_name="replica") as replica:
        [block] = [b for b in replica.blocks() if b.revisions]
        [rev] = block.revisions
        meta = ion_struct(
            id=rev.document_id, version=rev.version, txTime=ion_time(rev.tx_time_ms),
            txId=rev.tx_id,
        )  # fmt: skip
        assert rev.raw is not None
        assert rev.hash == dot(ion_hash(rev.data), ion_hash(meta))
        assert [d for _, _, d in replica.documents()] == [
            {"name": "Alice", "n": 1, "tags": ["a", 2]}
        ]
