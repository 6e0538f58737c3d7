"""QLDB's stored procedure ``EXEC redact_revision block-address, 'table-id', 'document-id'``.

The QLDB Developer Guide's REDACT_REVISION: the user data of one *inactive* revision (not the
latest revision of its document) is removed from the journal and from history, and its data hash
is kept (``dataHash`` replaces ``data``), so the revision hash, the block's entries hash and the
chain stay what they were and every proof still verifies. One redaction per transaction; the
statement returns ``{blockAddress, tableId, documentId, version}`` of the revision it redacts. The
block of the redacting transaction carries ``redactionInfo`` (RECORDS.md) and no document
revision. QLDB completes a redaction asynchronously; here it is done when the transaction
commits.

``redact_revision`` checks and stages the request (a ``StatementRun`` calls it);
``store_redactions`` applies the staged ones inside the commit's SQLite transaction
(``ledger.blocks.redaction_info`` shows them in the block's payload). The
``ledger_redactions`` table (``ledger.storage``'s schema) holds ``(id, version) -> data
hash`` of every redacted revision.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from journal.hashes import dot
from journal.ion_binary import decode
from ledger.blocks import ion_struct, ion_time
from ledger.errors import OccConflict
from ledger.evaluate import evaluate, kind, text_of
from ledger.hashing import ion_hash
from ledger.nodes import MISSING, Exec

if TYPE_CHECKING:
    from ledger.execute import StatementRun
    from ledger.transaction import Transaction

PROCEDURE = "redact_revision"


@dataclass(frozen=True, slots=True)
class Redaction:
    """A revision to redact: where it was committed, whose it is, and the hash of its data."""

    block_seq: int
    table_id: str
    document_id: str
    version: int
    data_hash: bytes


def redact_revision(run: StatementRun, s: Exec) -> list[Any]:
    """Check an ``EXEC redact_revision`` request and stage it on the transaction."""
    if s.procedure.lower() != PROCEDURE:
        raise run.fail(f"no stored procedure named {s.procedure!r} (QLDB has {PROCEDURE})")
    if len(s.args) != 3:
        raise run.fail(
            f"{PROCEDURE} takes 3 arguments (block address, table id, document id), "
            f"{len(s.args)} given"
        )
    scope = run.scope((), MISSING, None, None)
    address, table_id, doc_id = (evaluate(a, scope) for a in s.args)
    led = run.tx._ledger
    seq = _address(run, address, led.strand_id)
    if kind(table_id) != "string" or kind(doc_id) != "string":
        raise run.fail(f"{PROCEDURE}: the table id and the document id must be strings")
    table_id, doc_id = text_of(table_id), text_of(doc_id)
    if run.tx._redactions:
        raise run.fail(f"{PROCEDURE}: a transaction may redact one revision only")
    conn = run.conn
    row = conn.execute(
        "SELECT r.version, r.table_id, r.data, r.hash, b.tx_id, b.tx_ms FROM ledger_revisions r "
        "JOIN ledger_blocks b ON b.seq = r.block_seq WHERE r.id = ? AND r.block_seq = ?",
        (doc_id, seq),
    ).fetchone()
    where = f"document {doc_id} at block {seq}"
    if row is None:
        raise run.fail(f"{PROCEDURE}: no revision of {where}")
    version, rev_table, data, stored_hash, tx_id, tx_ms = row
    if rev_table != table_id:
        raise run.fail(f"{PROCEDURE}: the revision of {where} is not in table {table_id}")
    if is_redacted(conn, doc_id, version):
        raise run.fail(f"{PROCEDURE}: the revision of {where} is already redacted")
    latest = conn.execute(
        "SELECT max(version) FROM ledger_revisions WHERE id = ?", (doc_id,)
    ).fetchone()[0]
    if version == latest or data is None or doc_id in run.tx._writes:
        raise run.fail(
            f"{PROCEDURE}: the revision of {where} is the latest revision of its document; "
            "only an inactive revision can be redacted"
        )
    data_hash = ion_hash(decode(bytes(data)))
    meta = ion_struct(id=doc_id, version=version, txTime=ion_time(int(tx_ms)), txId=tx_id)
    if dot(data_hash, ion_hash(meta)) != bytes(stored_hash):
        raise run.fail(f"{PROCEDURE}: the revision of {where} does not match its stored hash")
    run.tx._redactions.append(Redaction(seq, table_id, doc_id, int(version), data_hash))
    return [
        ion_struct(
            blockAddress=ion_struct(strandId=led.strand_id, sequenceNo=seq),
            tableId=table_id,
            documentId=doc_id,
            version=int(version),
        )
    ]


def _address(run: StatementRun, value: Any, strand_id: str) -> int:
    if kind(value) != "struct" or "strandId" not in value or "sequenceNo" not in value:
        raise run.fail(f"{PROCEDURE}: the block address must be {{strandId, sequenceNo}}")
    strand, seq = value["strandId"], value["sequenceNo"]
    if kind(strand) != "string" or text_of(strand) != strand_id:
        raise run.fail(f"{PROCEDURE}: strand {strand!r} is not this ledger's ({strand_id})")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise run.fail(f"{PROCEDURE}: sequenceNo {seq!r} is not a block sequence number")
    return int(seq)


def is_redacted(conn: sqlite3.Connection, doc_id: str, version: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM ledger_redactions WHERE id = ? AND version = ?", (doc_id, version)
        ).fetchone()
        is not None
    )


def store_redactions(conn: sqlite3.Connection, tx: Transaction, seq: int) -> None:
    """Remove the staged revisions' data, keeping their data hashes (inside the commit). A
    revision another transaction redacted meanwhile is an ``OccConflict``."""
    for r in tx._redactions:
        try:
            conn.execute(
                "INSERT INTO ledger_redactions (id, version, data_hash, redacted_in) "
                "VALUES (?, ?, ?, ?)",
                (r.document_id, r.version, r.data_hash, seq),
            )
        except sqlite3.IntegrityError:
            raise OccConflict(
                tx.id, f"revision {r.version} of document {r.document_id} was redacted meanwhile"
            ) from None
        conn.execute(
            "UPDATE ledger_revisions SET data = NULL WHERE id = ? AND version = ?",
            (r.document_id, r.version),
        )


def redaction_record(tx: Transaction) -> list[list[Any]]:
    """The redactions as the block's stored record keeps them."""
    return [[r.block_seq, r.table_id, r.document_id, r.version] for r in tx._redactions]
