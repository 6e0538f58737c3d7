"""The QLDB destination's checkpoint document: one per (ledger, strand) in the internal table
``qldb_settle_checkpoint``, read and written inside the ``apply`` transaction (``destination.qldb``
says how the compare-and-set uses it).

Its fields: ``ledger``, ``strandId``, ``sequenceNo``, ``part`` (null for a whole block),
``blockHash``; ``applyId``, the id of the ``apply`` that wrote it (a retry of a commit whose answer
was lost finds its own id and knows it landed); ``tableIds``, source table id -> replica table id
(``statement_replay.learn_table_ids``), kept here so that learning them costs no document of the
transaction's 40. Changing this layout changes what a replica already written holds: a field
added must read as absent from older documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from destination.port import Checkpoint

CHECKPOINT_TABLE = "qldb_settle_checkpoint"


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint document as read: the checkpoint, the ``apply`` that wrote it, the table ids."""

    checkpoint: Checkpoint
    apply_id: str | None
    table_ids: dict[str, str]


def is_null(value: Any) -> bool:
    """Whether an Ion value read from QLDB is absent or an Ion null."""
    from amazon.ion.simple_types import IonPyNull

    return value is None or isinstance(value, IonPyNull)


def read_checkpoint(executor: Any, ledger: str, strand_id: str) -> StoredCheckpoint | None:
    """The checkpoint document of the strand, or None (``executor``: pyqldb's)."""
    rows = list(
        executor.execute_statement(
            f"SELECT * FROM {CHECKPOINT_TABLE} AS c WHERE c.strandId = ? AND c.ledger = ?",
            strand_id,
            ledger,
        )
    )
    if not rows:
        return None
    doc = rows[0]
    part = doc.get("part")
    apply_id = doc.get("applyId")
    ids = doc.get("tableIds")
    return StoredCheckpoint(
        checkpoint=Checkpoint(
            ledger=str(doc["ledger"]),
            strand_id=str(doc["strandId"]),
            sequence_no=int(doc["sequenceNo"]),
            block_hash=bytes(doc["blockHash"]),
            part=None if is_null(part) else int(part),
        ),
        apply_id=None if is_null(apply_id) else str(apply_id),
        table_ids={str(k): str(v) for k, v in ids.items()} if isinstance(ids, Mapping) else {},
    )


def write_checkpoint(
    executor: Any, new: Checkpoint, apply_id: str, table_ids: dict[str, str], *, exists: bool
) -> None:
    """Insert the strand's checkpoint document (``exists`` False) or move it to ``new``."""
    if not exists:
        doc = {
            "ledger": new.ledger,
            "strandId": new.strand_id,
            "sequenceNo": new.sequence_no,
            "part": new.part,
            "blockHash": new.block_hash,
            "applyId": apply_id,
            "tableIds": table_ids,
        }
        executor.execute_statement(f"INSERT INTO {CHECKPOINT_TABLE} ?", doc)
        return
    executor.execute_statement(
        f"UPDATE {CHECKPOINT_TABLE} AS c SET c.sequenceNo = ?, c.part = ?, c.blockHash = ?, "
        "c.applyId = ?, c.tableIds = ? WHERE c.strandId = ? AND c.ledger = ?",
        new.sequence_no,
        new.part,
        new.block_hash,
        apply_id,
        table_ids,
        new.strand_id,
        new.ledger,
    )
