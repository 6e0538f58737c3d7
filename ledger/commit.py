"""The commit: validate a transaction optimistically and seal its block.

``commit_in`` runs inside the ledger's SQLite write transaction (or savepoint), as named steps:
``validate`` (OCC against the blocks committed since each read), ``check_base_versions``,
``previous_block``, ``user_revisions`` and ``system_revisions`` (each hashed with the Ion hash),
``seal`` (the compact record, ``entriesHash`` the Merkle root of the entries, ``blockHash =
dot(entriesHash, previousBlockHash)``), then the storage writes of ``ledger.storage``. Changes
when the journal's hashing or the conflict rules do.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from journal.hashes import HASH_SIZE, dot, merkle_root
from journal.ion_binary import decode
from ledger.blocks import (
    CommittedBlock,
    Revision,
    block_payload,
    epoch_ms,
    ion_struct,
    ion_time,
    transaction_info,
)
from ledger.errors import OccConflict
from ledger.evaluate import kind
from ledger.hashing import ion_hash, metadata_hash
from ledger.redaction import redaction_record, store_redactions
from ledger.storage import (
    append_block,
    build_new_indexes,
    index_key,
    store_ddl,
    store_revisions,
)

if TYPE_CHECKING:
    from ledger.engine import EmbeddedLedger
    from ledger.transaction import Transaction


@dataclass(frozen=True, slots=True)
class Sealed:
    """A block's compact record with its hashes (what ``append_block`` stores)."""

    record: dict[str, Any]
    info: dict[str, Any]
    entries_hash: bytes
    block_hash: bytes


def commit_in(led: EmbeddedLedger, conn: sqlite3.Connection, tx: Transaction) -> CommittedBlock:
    """Validate ``tx`` and append its block (the caller holds the write lock and rolls back on
    any exception)."""
    tip = led._tip(conn)
    validate(conn, tx, tip)
    check_base_versions(conn, tx)
    unit = led._unit_cache()
    last = None if unit is None else unit.last_block
    if last is not None and last[0] == tip:
        prev_hash, prev_ms = last[1], last[2]  # the unit's own last commit
    else:
        prev_hash, prev_ms = previous_block(conn, tip, led.strand_id)
    last_start = max((ms for _, ms, _ in tx._statements), default=0)
    tx_ms = max(epoch_ms(led.clock()), last_start + 1, prev_ms)
    block_ms = tx_ms + 1
    seq = tip + 1
    revisions = user_revisions(tx, tx_ms)
    system = system_revisions(conn, tx)
    sealed = seal(
        tx, seq=seq, tx_ms=tx_ms, block_ms=block_ms, prev_hash=prev_hash, revisions=revisions,
        system=system,
    )  # fmt: skip
    if tx._ddl:
        led._forget_schema()
    store_ddl(conn, tx)
    store_revisions(conn, tx, revisions, seq, led._online_indexes)
    if tx._redactions:
        store_redactions(conn, tx, seq)
    build_new_indexes(conn, tx, led._decoded)
    append_block(
        conn, sealed.record, block_hash=sealed.block_hash, ddl=bool(tx._ddl),
        id_counter=None if unit is not None else led._counter,  # a unit stores it once, at its end
    )  # fmt: skip
    return CommittedBlock(
        strand_id=led.strand_id, sequence_no=seq, transaction_id=tx.id,
        timestamp_ms=block_ms, block_hash=sealed.block_hash, entries_hash=sealed.entries_hash,
        previous_block_hash=prev_hash,
        payload=block_payload(sealed.record, led.strand_id, sealed.info),
        revisions=tuple(revisions),
    )  # fmt: skip


def validate(conn: sqlite3.Connection, tx: Transaction, tip: int) -> None:
    """Optimistic concurrency: ``OccConflict`` when a block committed after a read changed what
    the transaction read (a document, a scanned table, an indexed predicate, or the schema)."""
    marks = [*tx._reads.values(), *tx._scans.values(), *tx._preds.values()]
    if tx._ddl_seen is not None:
        marks.append(tx._ddl_seen)
    if not marks:
        return
    low = min(marks)
    if low >= tip:
        return
    if tx._statements:
        row = conn.execute(
            "SELECT min(seq) FROM ledger_blocks WHERE seq > ? AND ddl = 1", (low,)
        ).fetchone()
        if row[0] is not None:
            raise OccConflict(tx.id, f"block {row[0]} changed tables or indexes meanwhile")
    preds_by_table: dict[str, list[tuple[str, str, int]]] = {}
    for (table_id, fld, key), seen in tx._preds.items():
        preds_by_table.setdefault(table_id, []).append((fld, key, seen))
    for rid, version, table_id, seq, data in conn.execute(
        "SELECT id, version, table_id, block_seq, data FROM ledger_revisions WHERE block_seq > ?",
        (low,),
    ).fetchall():
        read_at = tx._reads.get(rid)
        if read_at is not None and seq > read_at:
            raise OccConflict(tx.id, f"document {rid} was changed by block {seq}")
        scanned_at = tx._scans.get(table_id)
        if scanned_at is not None and seq > scanned_at:
            raise OccConflict(
                tx.id, f"a table it scanned was changed by block {seq} (document {rid})"
            )
        for fld, key, seen in preds_by_table.get(table_id, ()):
            if seq <= seen:
                continue
            values = [data]
            if version > 0:
                prev = conn.execute(
                    "SELECT data FROM ledger_revisions WHERE id = ? AND version = ?",
                    (rid, version - 1),
                ).fetchone()
                if prev is not None:
                    values.append(prev[0])
            for raw in values:
                if raw is None:
                    continue
                doc = decode(raw)
                if kind(doc) == "struct" and fld in doc and index_key(doc[fld]) == key:
                    raise OccConflict(
                        tx.id, f"document {rid} with {fld} it read was changed by block {seq}"
                    )


def check_base_versions(conn: sqlite3.Connection, tx: Transaction) -> None:
    """Each document the transaction changed is still at the version it changed."""
    for doc_id, w in tx._writes.items():
        if w.base_version is None:
            continue
        row = conn.execute(
            "SELECT version FROM ledger_documents WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None or row[0] != w.base_version:
            raise OccConflict(tx.id, f"document {doc_id} was changed meanwhile")


def previous_block(conn: sqlite3.Connection, tip: int, strand_id: str) -> tuple[bytes, int]:
    """The hash and timestamp of the block at ``tip`` (the genesis hash and 0 when none)."""
    previous = conn.execute(
        "SELECT block_hash, ts_ms FROM ledger_blocks WHERE seq = ?", (tip,)
    ).fetchone()
    if previous is None:
        return hashlib.sha256(f"qldb-settle genesis {strand_id}".encode()).digest(), 0
    return bytes(previous[0]), int(previous[1])


def user_revisions(tx: Transaction, tx_ms: int) -> list[Revision]:
    """One revision per document written, its hash ``dot(data hash, metadata hash)`` (the
    metadata hash alone for a deletion)."""
    revisions: list[Revision] = []
    for doc_id, w in tx._writes.items():
        version = 0 if w.base_version is None else w.base_version + 1
        meta_hash = metadata_hash(doc_id, version, ion_time(tx_ms), tx.id)
        h = meta_hash if w.data_hash is None else dot(w.data_hash, meta_hash)
        revisions.append(
            Revision(
                table_name=w.table_name,
                table_id=w.table_id,
                document_id=doc_id,
                version=version,
                raw=w.data,
                hash=h,
                tx_time_ms=tx_ms,
                tx_id=tx.id,
            )
        )
    return revisions


def system_revisions(conn: sqlite3.Connection, tx: Transaction) -> list[bytes]:
    """The hash of one system revision per DDL statement (the information schema entry it
    changed)."""
    system: list[bytes] = []
    for d in tx._ddl:
        t = tx._tables.get(d.table_id) or tx._table_by_id(conn, d.table_id)
        entry = ion_struct(
            kind=d.kind, tableId=d.table_id, tableName=t.name if t else "",
            indexId=d.index_id or "", txId=tx.id, statement=d.statement,
        )  # fmt: skip
        system.append(ion_hash(entry))
    return system


def seal(
    tx: Transaction,
    *,
    seq: int,
    tx_ms: int,
    block_ms: int,
    prev_hash: bytes,
    revisions: list[Revision],
    system: list[bytes],
) -> Sealed:
    """The block's compact record and its entries, entries hash and block hash."""
    record: dict[str, Any] = {
        "seq": seq, "tx": tx.id, "ts": block_ms, "tx_ms": tx_ms, "prev": prev_hash.hex(),
        "statements": [[text, ms, digest.hex()] for text, ms, digest in tx._statements],
        "documents": [
            [r.document_id, r.table_name, r.table_id, tx._writes[r.document_id].statements]
            for r in revisions
        ],
        "summaries": [[r.hash.hex(), r.document_id] for r in revisions]
        + [[h.hex(), None] for h in system],
    }  # fmt: skip
    if tx._redactions:
        record["redactions"] = redaction_record(tx)
    info = transaction_info(record)
    entries = [ion_hash(info), *(r.hash for r in revisions), *system]
    entries_hash = merkle_root(entries)
    block_hash = dot(entries_hash, prev_hash)
    assert len(block_hash) == HASH_SIZE
    record["entries"] = [h.hex() for h in entries]
    record["hash"] = block_hash.hex()
    record["entries_hash"] = entries_hash.hex()
    return Sealed(record, info, entries_hash, block_hash)
