"""``SqliteBuffer.put``: one batch of records in the call's transaction, read and written in bulk.

What ``put`` does with each copy is ``buffer.put_policy``'s; this module is how the SQLite store
reads what a decision needs and writes what it means, at as few statements per record as it can:

- **reads by id, in bulk**: before the first record, one ``SELECT … WHERE id IN (…)`` per table
  (per 500 ids) fetches the stored copies of every id of the call and the headers of the blocks
  its revisions name; a record then costs no read. An id this call already wrote is read again
  from the transaction (after the queued inserts are written), so a second copy in the same call
  sees the first exactly as it would across calls;
- **writes in bulk**: new blocks, statements and revisions are queued and written with one
  ``executemany`` per table when the call ends (or before a read that must see them); the
  strands' highest sequence numbers are folded into one upsert per strand; the counters into one
  upsert per counter (``flush_counters``). The rare paths (an earlier copy's provenance, a
  conflicting copy that came first, rejections) write at once, as before.

The whole call is one ``BEGIN IMMEDIATE … COMMIT`` (``SqliteBuffer._tx``): all or nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from buffer import _common as c
from buffer import put_policy as policy
from buffer.port import BlockState, Incoming, PutReport, Rejection
from journal.records import BlockSummary, ControlRecord, RevisionDetails

CHUNK = 500  # ids per IN (...) list

_INSERT_BLOCK = (
    "INSERT INTO blocks (block_id, ledger, strand_id, seq, state, commit_us, tx_id, "
    "block_hash, statements, revisions_expected, body, kinds, fingerprint, raw, arn, "
    "origin, arrived_us, delay_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_STATEMENT = (
    "INSERT INTO statements (block_id, idx, ledger, strand_id, seq, start_us, commit_us, "
    "tx_id, text, digest, kind, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_REVISION = (
    "INSERT INTO revisions (revision_id, block_id, ledger, strand_id, seq, document_id, "
    "version, table_name, table_id, hash, data, data_hash, tx_time_us, tx_id, "
    "fingerprint, raw, arn, origin, arrived_us, late, tx_time_form) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CONTROL = (
    "INSERT INTO control (control_type, fingerprint, raw, arn, origin, arrived_us, "
    "record_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# The columns a block read needs: its stored copy (``_stored``) and its header (``_header``).
_BLOCK_READ = (
    "SELECT block_id, fingerprint, arrived_us, origin, raw, state, purged, statements, reason, "
    "updated_us, actor, body FROM blocks WHERE block_id IN ({marks})"
)
_REVISION_READ = (
    "SELECT revision_id, fingerprint, arrived_us, origin, raw, block_id, late FROM revisions "
    "WHERE revision_id IN ({marks})"
)
_CONTROL_READ = (
    "SELECT record_id, fingerprint, arrived_us, origin, raw FROM control "
    "WHERE record_id IN ({marks})"
)
_WRITES = (_INSERT_BLOCK, _INSERT_STATEMENT, _INSERT_REVISION, _INSERT_CONTROL)


@dataclass(slots=True)
class Batch:
    """Counter deltas of one write transaction (``flush_counters`` writes them)."""

    deltas: Counter[str] = field(default_factory=Counter)


def flush_counters(cur: sqlite3.Cursor, batch: Batch) -> None:
    """Add a transaction's counter deltas to ``counters``, one upsert per counter."""
    changes = [(name, delta) for name, delta in sorted(batch.deltas.items()) if delta]
    cur.executemany(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        changes,
    )


def chunked_read(cur: sqlite3.Cursor, sql: str, ids: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    """Rows of ``sql`` (a ``{marks}`` IN list, the id first in each row) for ``ids``, by id."""
    out: dict[str, tuple[Any, ...]] = {}
    for chunk in c.chunks(list(dict.fromkeys(ids)), CHUNK):
        marks = ",".join("?" * len(chunk))
        for row in cur.execute(sql.format(marks=marks), chunk):
            out[row[0]] = tuple(row[1:])
    return out


class SqlitePut:
    """One ``put`` call inside its write transaction (the module docstring)."""

    def __init__(self, cur: sqlite3.Cursor, records: Sequence[Incoming]) -> None:
        self.cur = cur
        self.batch = Batch()
        self.report = PutReport()
        self._queued: dict[str, list[tuple[Any, ...]]] = {sql: [] for sql in _WRITES}
        self._written: set[tuple[str, str]] = set()  # (table, id) this call changed
        self._strands: dict[tuple[str, str], policy.StrandMarks] = {}
        self._seen: dict[tuple[str, str], tuple[int, int]] = {}  # strand -> (highest, has_blocks)
        summaries = [i.record.record_id for i in records if isinstance(i.record, BlockSummary)]
        revisions = [i.record for i in records if isinstance(i.record, RevisionDetails)]
        controls = [i.record.record_id for i in records if isinstance(i.record, ControlRecord)]
        self._revisions = chunked_read(cur, _REVISION_READ, (r.record_id for r in revisions))
        other_blocks = [row[4] for row in self._revisions.values()]  # a stored copy's block
        asked = [*summaries, *(r.block_id for r in revisions), *other_blocks]
        self._blocks = chunked_read(cur, _BLOCK_READ, asked)
        self._asked_blocks = set(asked)
        self._controls = chunked_read(cur, _CONTROL_READ, controls)

    # --- reads ------------------------------------------------------------------------------------

    def _read(self, table: str, record_id: str) -> tuple[Any, ...] | None:
        """The stored row of an id: prefetched, or read again when this call changed it."""
        if (table, record_id) in self._written:
            self.write_queued()
            sql = {"blocks": _BLOCK_READ, "revisions": _REVISION_READ, "control": _CONTROL_READ}
            return chunked_read(self.cur, sql[table], [record_id]).get(record_id)
        cache = {"blocks": self._blocks, "revisions": self._revisions, "control": self._controls}
        found = cache[table]
        if table == "blocks" and record_id not in self._asked_blocks:  # not asked up front
            self.write_queued()
            found.update(chunked_read(self.cur, _BLOCK_READ, [record_id]))
            self._asked_blocks.add(record_id)
        return found.get(record_id)

    def _changed(self, table: str, record_id: str) -> None:
        """This call changed the stored row in place: a later read goes to the transaction."""
        self._written.add((table, record_id))

    def _before_change(self, table: str, record_id: str) -> None:
        """About to update or delete a row in place: the queued inserts go first (the row may be
        one of them), and later reads of the id go to the transaction."""
        self.write_queued()
        self._changed(table, record_id)

    def _strand(self, ledger: str, strand_id: str) -> policy.StrandMarks:
        key = (ledger, strand_id)
        if key not in self._strands:
            row = self.cur.execute(
                "SELECT replayed_through FROM strands WHERE ledger = ? AND strand_id = ?", key
            ).fetchone()
            gaps = self.cur.execute(
                "SELECT first, last FROM gaps WHERE ledger = ? AND strand_id = ?", key
            ).fetchall()
            self._strands[key] = (row[0] if row else None, [(a, b) for a, b in gaps])
        return self._strands[key]

    # --- writes -----------------------------------------------------------------------------------

    def write_queued(self) -> None:
        """Write the queued inserts (one ``executemany`` per table) and the strands seen."""
        for sql, rows in self._queued.items():
            if rows:
                self.cur.executemany(sql, rows)
                rows.clear()
        if self._seen:
            self.cur.executemany(
                "INSERT INTO strands (ledger, strand_id, highest_seen, has_blocks) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (ledger, strand_id) DO UPDATE SET "
                "highest_seen = max(highest_seen, excluded.highest_seen), "
                "has_blocks = max(has_blocks, excluded.has_blocks)",
                [(a, b, seq, has) for (a, b), (seq, has) in self._seen.items()],
            )
            self._seen.clear()

    def finish(self) -> PutReport:
        self.write_queued()
        flush_counters(self.cur, self.batch)
        return self.report

    def _see(self, ledger: str, strand_id: str, seq: int, block: bool) -> None:
        old = self._seen.get((ledger, strand_id), (-1, 0))
        self._seen[(ledger, strand_id)] = (max(old[0], seq), max(old[1], 1 if block else 0))

    # --- records ----------------------------------------------------------------------------------

    def record(self, item: Incoming) -> None:
        self.report.records += 1
        record = item.record
        if isinstance(record, BlockSummary):
            self._summary(item, record)
        elif isinstance(record, RevisionDetails):
            self._revision(item, record)
        elif isinstance(record, ControlRecord):
            self._control(item, record)
        else:  # pragma: no cover - the type union is closed
            raise TypeError(f"not a stream record: {type(record).__name__}")

    def rejection(self, rejection: Rejection) -> None:
        self.report.records += 1
        self.report.rejected += 1
        self._keep_rejection(rejection, block_id=None)

    def _summary(self, item: Incoming, summary: BlockSummary) -> None:
        block_id = summary.block_id
        row = self._read("blocks", block_id)
        d = policy.decide_summary(
            item,
            summary,
            None if row is None else _stored(row),
            state=None if row is None else row[4],
            purged=False if row is None else bool(row[5]),
            strand=lambda: self._strand(summary.ledger, summary.address.strand_id),
        )
        d.count(self.report, "blocks", len(summary.statements))
        if d.verdict in ("stored", "late"):
            state: BlockState = "late" if d.verdict == "late" else "pending"
            self._queue_summary(item, summary, state)
            self._see(summary.ledger, summary.address.strand_id, summary.address.sequence_no, True)
            self.batch.deltas[f"blocks.{state}"] += 1
            self.batch.deltas["statements"] += len(summary.statements)
        elif d.verdict == "duplicate-earlier":
            self._before_change("blocks", block_id)
            kinds = list(item.statement_kinds)
            self.cur.execute(
                "UPDATE blocks SET raw = ?, arn = ?, origin = ?, arrived_us = ?, delay_ms = ?, "
                "kinds = ? WHERE block_id = ?",
                (
                    item.raw,
                    summary.stream.arn,
                    item.origin,
                    c.opt_us(item.arrived_at),
                    c.delay_ms(item.arrived_at, summary.commit_time),
                    json.dumps(kinds),
                    block_id,
                ),
            )
            self.cur.executemany(
                "UPDATE statements SET kind = ? WHERE block_id = ? AND idx = ?",
                [
                    (kinds[i] if i < len(kinds) else None, block_id, i)
                    for i in range(len(summary.statements))
                ],
            )
        elif d.verdict == "conflict-earlier":  # the stored copy becomes the rejection
            assert row is not None
            self._before_change("blocks", block_id)
            self.cur.execute("DELETE FROM statements WHERE block_id = ?", (block_id,))
            self.cur.execute("DELETE FROM blocks WHERE block_id = ?", (block_id,))
            self._queue_summary(item, summary, "pending")
            self.write_queued()
            self._changed("blocks", block_id)
            self.cur.execute(  # an operator's last word on the block (a retry) stays
                "UPDATE blocks SET reason = ?, updated_us = ?, actor = ? WHERE block_id = ?",
                (*row[7:10], block_id),
            )
            self.batch.deltas["statements"] += len(summary.statements) - row[6]
        self._apply_rejections(d)

    def _queue_summary(self, item: Incoming, summary: BlockSummary, state: BlockState) -> None:
        kinds = item.statement_kinds
        commit_us = c.to_us(summary.commit_time)
        address = summary.address
        ledger, strand_id, seq = summary.ledger, address.strand_id, address.sequence_no
        block_id, tx_id = summary.block_id, summary.transaction_id
        body, arrived, n = c.summary_body_json(summary), c.opt_us(item.arrived_at), len(kinds)
        self._queued[_INSERT_BLOCK].append(
            (
                block_id, ledger, strand_id, seq, state, commit_us, tx_id, summary.block_hash,
                len(summary.statements), len(summary.user_revisions), body,
                json.dumps(list(kinds)), item.fingerprint, item.raw, summary.stream.arn,
                item.origin, arrived, c.delay_ms(item.arrived_at, summary.commit_time),
            )
        )  # fmt: skip
        # What a read of it would give (``_BLOCK_READ``): later copies in this call compare to it.
        self._blocks[block_id] = (
            item.fingerprint, arrived, item.origin, item.raw, state, 0, len(summary.statements),
            None, None, None, body,
        )  # fmt: skip
        self._queued[_INSERT_STATEMENT].extend(
            (
                block_id, s.index, ledger, strand_id, seq, c.to_us(s.start_time), commit_us,
                tx_id, s.text, s.digest, kinds[s.index] if s.index < n else None, state,
            )
            for s in summary.statements
        )  # fmt: skip

    def _header(self, block_id: str, arn: str) -> policy.Header | None:
        row = self._read("blocks", block_id)
        return None if row is None else policy.Header(row[4], bool(row[5]), row[10], arn)

    def _revision(self, item: Incoming, rev: RevisionDetails) -> None:
        row = self._read("revisions", rev.record_id)
        arn = rev.stream.arn
        header = self._header(rev.block_id, arn)
        stored_block = None if row is None else cast(str, row[4])
        stored_header = policy.stored_header_of(
            rev, stored_block, header, lambda block_id: self._header(block_id, arn)
        )
        d = policy.decide_revision(
            item,
            rev,
            None if row is None else _stored(row),
            stored_late=bool(row is not None and row[5]),
            stored_block=stored_block,
            header=header,
            stored_header=stored_header,
            strand=lambda: self._strand(rev.ledger, rev.address.strand_id),
        )
        d.count(self.report, "revisions")
        if d.writes_copy:
            if d.verdict == "conflict-earlier":
                self._before_change("revisions", rev.record_id)
                self.cur.execute("DELETE FROM revisions WHERE revision_id = ?", (rev.record_id,))
            else:
                self.batch.deltas["revisions"] += 1
            self._queue_revision(item, rev, d.verdict == "late")
            self._see(rev.ledger, rev.address.strand_id, rev.address.sequence_no, False)
        elif d.verdict == "duplicate-earlier":
            self._before_change("revisions", rev.record_id)
            self.cur.execute(
                "UPDATE revisions SET raw = ?, arn = ?, origin = ?, arrived_us = ? "
                "WHERE revision_id = ?",
                (item.raw, arn, item.origin, c.opt_us(item.arrived_at), rev.record_id),
            )
        self._apply_rejections(d)

    def _queue_revision(self, item: Incoming, rev: RevisionDetails, late: bool) -> None:
        p = c.RevisionParts.of(rev)
        arrived = c.opt_us(item.arrived_at)
        self._revisions[rev.record_id] = (
            item.fingerprint, arrived, item.origin, item.raw, rev.block_id, 1 if late else 0,
        )  # fmt: skip
        self._queued[_INSERT_REVISION].append(
            (
                rev.record_id, rev.block_id, rev.ledger, p.strand_id, p.sequence_no,
                p.document_id, p.version, p.table_name, p.table_id, p.hash, p.data, p.data_hash,
                p.tx_time_us, p.tx_id, item.fingerprint, item.raw, p.arn, item.origin,
                arrived, 1 if late else 0, p.tx_time_form,
            )
        )  # fmt: skip

    def _control(self, item: Incoming, control: ControlRecord) -> None:
        row = self._read("control", control.record_id)
        values = (
            control.control_type,
            item.fingerprint,
            item.raw,
            control.stream.arn,
            item.origin,
            c.opt_us(item.arrived_at),
            control.record_id,
        )
        d = policy.decide_control(item, control, None if row is None else _stored(row))
        d.count(self.report, "control")
        if d.verdict == "stored":
            self._queued[_INSERT_CONTROL].append(values)
            self._controls[control.record_id] = (item.fingerprint, values[5], item.origin, item.raw)
            self.batch.deltas["control"] += 1
            return
        self._apply_rejections(d)
        if d.verdict in ("duplicate-earlier", "conflict-earlier"):
            self._before_change("control", control.record_id)
            self.cur.execute(
                "UPDATE control SET control_type = ?, fingerprint = ?, raw = ?, arn = ?, "
                "origin = ?, arrived_us = ? WHERE record_id = ?",
                values,
            )

    # --- rejections -------------------------------------------------------------------------------

    def _apply_rejections(self, d: policy.Decision) -> None:
        if d.keep is not None:
            self._keep_rejection(d.keep, d.block)
        if d.forget is not None:
            # This content is the stored copy now (it came first): its other copies, kept as
            # conflicts while a later copy was stored, are duplicates now.
            self.cur.execute(
                "DELETE FROM rejected WHERE rejection_id = ?", (d.forget.rejection_id,)
            )
            self.batch.deltas["conflicts"] -= self.cur.rowcount

    def _keep_rejection(self, rejection: Rejection, block_id: str | None) -> None:
        rid = rejection.rejection_id
        cur = self.cur
        row = cur.execute(
            "SELECT arrived_us, origin, raw_sha256 FROM rejected WHERE rejection_id = ?", (rid,)
        ).fetchone()
        arrived = c.opt_us(rejection.arrived_at)
        raw_sha = c.sha256_hex(rejection.raw) or ""
        if row is None:
            cur.execute(
                "INSERT INTO rejected (rejection_id, kind, reason, raw, raw_sha256, origin, "
                "arrived_us, record_id, block_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rid, rejection.kind, rejection.reason, rejection.raw, raw_sha,
                    rejection.origin, arrived, rejection.record_id, block_id,
                ),
            )  # fmt: skip
            self.batch.deltas["conflicts" if rejection.kind == c.CONFLICT else "rejected"] += 1
            return
        if c.arrival_key(arrived, rejection.origin, raw_sha) < c.arrival_key(*row):
            cur.execute(
                "UPDATE rejected SET origin = ?, arrived_us = ?, raw = ?, raw_sha256 = ? "
                "WHERE rejection_id = ?",
                (rejection.origin, arrived, rejection.raw, raw_sha, rid),
            )


def _stored(row: Sequence[Any]) -> policy.StoredCopy:
    """The stored copy from a row that starts ``fingerprint, arrived_us, origin, raw``."""
    fp, arrived_us, origin, raw = row[:4]
    return policy.StoredCopy(
        fingerprint=fp,
        key=c.copy_key(c.opt_from_us(arrived_us), origin, fp, raw),
        origin=origin,
        arrived_us=arrived_us,
        raw=lambda: cast(bytes, raw),
    )
