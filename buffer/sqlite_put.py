"""``SqliteBuffer.put``: one batch of records in the call's transaction, read and written in bulk.

What ``put`` does is ``buffer.planner``'s (over ``buffer.put_policy``'s decisions); this module is
how the SQLite store reads what the plan needs and writes what it means, at as few statements
per record as it can:

- **reads by id, in bulk**: one ``SELECT … WHERE id IN (…)`` per table (per 500 ids) fetches the
  stored copies of every id of the call and the headers of the blocks its revisions name, and one
  each the replayed marks and passed gaps of its strands (``planner.StoreView``);
- **writes in bulk**: the plan's new and replacing copies are written with one ``executemany``
  per table, its provenance replacements likewise, the strands' highest sequence numbers folded
  into one upsert per strand, the rejections kept and dropped in bulk, and the counters into one
  upsert per counter (``flush_counters``).

The whole call is one ``BEGIN IMMEDIATE … COMMIT`` (``SqliteStore.atomic``): all or nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from buffer import _common as c
from buffer import planner
from buffer import put_policy as policy
from buffer.port import Incoming
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
# The columns a block read needs: its stored copy (``_stored``) and its header. The body only
# of a purged block: a header's body is read for nothing else (``put_policy.decide_revision``).
_BLOCK_READ = (
    "SELECT block_id, fingerprint, arrived_us, origin, raw, state, purged, statements, reason, "
    "updated_us, actor, CASE WHEN purged THEN body ELSE '' END, arn FROM blocks "
    "WHERE block_id IN ({marks})"
)
_REVISION_READ = (
    "SELECT revision_id, fingerprint, arrived_us, origin, raw, block_id, late FROM revisions "
    "WHERE revision_id IN ({marks})"
)
_CONTROL_READ = (
    "SELECT record_id, fingerprint, arrived_us, origin, raw FROM control "
    "WHERE record_id IN ({marks})"
)
_REJECTED_READ = (
    "SELECT rejection_id, arrived_us, origin, raw_sha256 FROM rejected "
    "WHERE rejection_id IN ({marks})"
)
_STRANDS_PER_QUERY = 250  # (ledger, strand) pairs per row-value IN list


@dataclass(slots=True)
class Batch:
    """Counter deltas of one write transaction (``flush_counters`` writes them)."""

    deltas: Counter[str] = field(default_factory=Counter)


def _many(cur: sqlite3.Cursor, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """``executemany`` of ``rows``, skipped when there are none (most kinds of write are absent
    from most puts: each call costs a statement look-up and reset even with no rows)."""
    if rows:
        cur.executemany(sql, rows)


def flush_counters(cur: sqlite3.Cursor, deltas: Mapping[str, int]) -> None:
    """Add a transaction's counter deltas to ``counters``, one upsert per counter."""
    changes = [(name, delta) for name, delta in sorted(deltas.items()) if delta]
    _many(
        cur,
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
    """One ``put`` call inside its write transaction (the module docstring): ``view`` reads,
    ``apply`` writes the plan made over it (``buffer.settling.Buffer.put`` plans)."""

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self.cur = cur
        self.batch = Batch()
        self._blocks: dict[str, tuple[Any, ...]] = {}

    # --- reads ------------------------------------------------------------------------------------

    def view(self, records: Sequence[Incoming]) -> planner.StoreView:
        """What the store holds for the ids of ``records``, in one read per table."""
        cur, want = self.cur, planner.Wanted.of(records)
        revs = chunked_read(cur, _REVISION_READ, (r.record_id for r in want.revisions))
        # with the blocks of the stored copies
        self._blocks = blocks = chunked_read(
            cur, _BLOCK_READ, want.blocks(r[4] for r in revs.values())
        )
        return planner.StoreView(
            # the stored copies of the put's summaries (the other blocks read are headers: of
            # the blocks its revisions name)
            summaries={b: _stored(blocks[b]) for b in want.summaries if b in blocks},
            headers={
                b: policy.Header(row[4], bool(row[5]), row[10], row[11])
                for b, row in blocks.items()
            },
            revisions={
                r: planner.StoredRevision(_stored(row), row[4], bool(row[5]))
                for r, row in revs.items()
            },
            controls={
                r: _stored(row)
                for r, row in chunked_read(cur, _CONTROL_READ, want.controls).items()
            },
            strands=self._strands(want.strands),
        )

    def _strands(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], policy.StrandMarks]:
        """The replayed mark and passed gaps of each strand, one read of each per 250 strands."""
        marks: dict[tuple[str, str], int | None] = {}
        gaps: dict[tuple[str, str], list[tuple[int, int]]] = {k: [] for k in keys}
        for i in range(0, len(keys), _STRANDS_PER_QUERY):
            chunk = keys[i : i + _STRANDS_PER_QUERY]
            pairs = ",".join("(?, ?)" for _ in chunk)
            args = [v for k in chunk for v in k]
            where = f"WHERE (ledger, strand_id) IN (VALUES {pairs})"
            for ledger, strand_id, mark in self.cur.execute(
                f"SELECT ledger, strand_id, replayed_through FROM strands {where}", args
            ):
                marks[(ledger, strand_id)] = mark
            for ledger, strand_id, first, last in self.cur.execute(
                f"SELECT ledger, strand_id, first, last FROM gaps {where}", args
            ):
                gaps[(ledger, strand_id)].append((first, last))
        return {k: (marks.get(k), gaps[k]) for k in keys}

    # --- writes -----------------------------------------------------------------------------------

    def apply(self, plan: planner.PutPlan) -> None:
        """Write a plan: replaced copies out, new and replacing copies in, provenance, strands,
        rejections and counters, each kind in one ``executemany`` (none for a kind absent)."""
        cur, deltas = self.cur, self.batch.deltas
        deltas.update(plan.counts)
        blocks = plan.of_kind("blocks")
        revisions = plan.of_kind("revisions")
        controls = plan.of_kind("control")
        replaced = [(w.record_id,) for w in blocks if w.action == "replace"]
        if replaced:  # conflicting copies that came first: the stored ones become rejections
            _many(cur, "DELETE FROM statements WHERE block_id = ?", replaced)
            _many(cur, "DELETE FROM blocks WHERE block_id = ?", replaced)
            deltas["statements"] -= sum(int(self._blocks[b][6]) for (b,) in replaced)
        for table, column, writes in (
            ("revisions", "revision_id", revisions),
            ("control", "record_id", controls),
        ):
            gone = [(w.record_id,) for w in writes if w.action == "replace"]
            if gone:
                _many(cur, f"DELETE FROM {table} WHERE {column} = ?", gone)
        block_rows: list[tuple[Any, ...]] = []
        statement_rows: list[tuple[Any, ...]] = []
        for w in blocks:
            if w.action != "provenance":
                _summary_rows(w, block_rows, statement_rows)
        _many(cur, _INSERT_BLOCK, block_rows)
        _many(cur, _INSERT_STATEMENT, statement_rows)
        _many(
            cur, _INSERT_REVISION, [_revision_row(w) for w in revisions if w.action != "provenance"]
        )
        _many(cur, _INSERT_CONTROL, [_control_row(w) for w in controls if w.action != "provenance"])
        if replaced:  # an operator's last word on the block (a retry) stays
            _many(
                cur,
                "UPDATE blocks SET reason = ?, updated_us = ?, actor = ? WHERE block_id = ?",
                [(*self._blocks[b][7:10], b) for (b,) in replaced],
            )
        self._provenance(blocks, revisions, controls)
        if plan.seen:
            _many(
                cur,
                "INSERT INTO strands (ledger, strand_id, highest_seen, has_blocks) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (ledger, strand_id) DO UPDATE SET "
                "highest_seen = max(highest_seen, excluded.highest_seen), "
                "has_blocks = max(has_blocks, excluded.has_blocks)",
                [(a, b, seq, int(has)) for (a, b), (seq, has) in plan.seen.items()],
            )
        self._rejections(plan)
        flush_counters(cur, self.batch.deltas)

    def _provenance(
        self,
        blocks: list[planner.Write],
        revisions: list[planner.Write],
        controls: list[planner.Write],
    ) -> None:
        """Duplicates that came first: their provenance replaces the stored copy's."""
        cur = self.cur
        summaries = [w for w in blocks if w.action == "provenance"]
        if summaries:
            _many(
                cur,
                "UPDATE blocks SET raw = ?, arn = ?, origin = ?, arrived_us = ?, delay_ms = ?, "
                "kinds = ? WHERE block_id = ?",
                [
                    (
                        w.item.raw, w.record.stream.arn, w.item.origin,
                        c.opt_us(w.item.arrived_at),
                        c.delay_ms(w.item.arrived_at, cast(BlockSummary, w.record).commit_time),
                        json.dumps(list(w.item.statement_kinds)), w.record_id,
                    )
                    for w in summaries
                ],
            )  # fmt: skip
            _many(
                cur,
                "UPDATE statements SET kind = ? WHERE block_id = ? AND idx = ?",
                [
                    (kinds[i] if i < len(kinds) else None, w.record_id, i)
                    for w in summaries
                    for kinds in [w.item.statement_kinds]
                    for i in range(len(cast(BlockSummary, w.record).statements))
                ],
            )
        _many(
            cur,
            "UPDATE revisions SET raw = ?, arn = ?, origin = ?, arrived_us = ? "
            "WHERE revision_id = ?",
            [
                (w.item.raw, w.record.stream.arn, w.item.origin, c.opt_us(w.item.arrived_at),
                 w.record_id)
                for w in revisions
                if w.action == "provenance"
            ],
        )  # fmt: skip
        _many(
            cur,
            "UPDATE control SET control_type = ?, fingerprint = ?, raw = ?, arn = ?, "
            "origin = ?, arrived_us = ? WHERE record_id = ?",
            [_control_row(w) for w in controls if w.action == "provenance"],
        )

    def _rejections(self, plan: planner.PutPlan) -> None:
        """Drop the conflicts the plan forgets; keep its rejections, each id once, the earliest
        copy's provenance and bytes."""
        cur, deltas = self.cur, self.batch.deltas
        if plan.forget:
            cur.executemany(
                "DELETE FROM rejected WHERE rejection_id = ?", [(rid,) for rid in plan.forget]
            )
            deltas["conflicts"] -= cur.rowcount
        if not plan.keep:
            return
        stored = chunked_read(cur, _REJECTED_READ, plan.keep)
        new: list[tuple[Any, ...]] = []
        earlier: list[tuple[Any, ...]] = []
        for rid, kept in plan.keep.items():
            r = kept.rejection
            arrived = c.opt_us(r.arrived_at)
            raw_sha = c.sha256_hex(r.raw) or ""
            row = stored.get(rid)
            if row is None:
                new.append(
                    (rid, r.kind, r.reason, r.raw, raw_sha, r.origin, arrived, r.record_id,
                     kept.block_id)
                )  # fmt: skip
                deltas["conflicts" if r.kind == c.CONFLICT else "rejected"] += 1
            elif c.arrival_key(arrived, r.origin, raw_sha) < c.arrival_key(*row):
                earlier.append((r.origin, arrived, r.raw, raw_sha, rid))
        _many(
            cur,
            "INSERT INTO rejected (rejection_id, kind, reason, raw, raw_sha256, origin, "
            "arrived_us, record_id, block_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            new,
        )
        _many(
            cur,
            "UPDATE rejected SET origin = ?, arrived_us = ?, raw = ?, raw_sha256 = ? "
            "WHERE rejection_id = ?",
            earlier,
        )


def _summary_rows(
    w: planner.Write, blocks: list[tuple[Any, ...]], statements: list[tuple[Any, ...]]
) -> None:
    item, summary, state = w.item, cast(BlockSummary, w.record), w.state
    kinds = item.statement_kinds
    commit_us = c.to_us(summary.commit_time)
    address = summary.address
    ledger, strand_id, seq = summary.ledger, address.strand_id, address.sequence_no
    block_id, tx_id, n = summary.block_id, summary.transaction_id, len(kinds)
    blocks.append(
        (
            block_id, ledger, strand_id, seq, state, commit_us, tx_id, summary.block_hash,
            len(summary.statements), len(summary.user_revisions), c.summary_body_json(summary),
            json.dumps(list(kinds)), item.fingerprint, item.raw, summary.stream.arn,
            item.origin, c.opt_us(item.arrived_at),
            c.delay_ms(item.arrived_at, summary.commit_time),
        )
    )  # fmt: skip
    statements.extend(
        (
            block_id, s.index, ledger, strand_id, seq, c.to_us(s.start_time), commit_us,
            tx_id, s.text, s.digest, kinds[s.index] if s.index < n else None, state,
        )
        for s in summary.statements
    )  # fmt: skip


def _revision_row(w: planner.Write) -> tuple[Any, ...]:
    item, rev = w.item, cast(RevisionDetails, w.record)
    p = c.RevisionParts.of(rev)
    return (
        rev.record_id, rev.block_id, rev.ledger, p.strand_id, p.sequence_no,
        p.document_id, p.version, p.table_name, p.table_id, p.hash, p.data, p.data_hash,
        p.tx_time_us, p.tx_id, item.fingerprint, item.raw, p.arn, item.origin,
        c.opt_us(item.arrived_at), 1 if w.late else 0, p.tx_time_form,
    )  # fmt: skip


def _control_row(w: planner.Write) -> tuple[Any, ...]:
    item, control = w.item, cast(ControlRecord, w.record)
    return (
        control.control_type, item.fingerprint, item.raw, control.stream.arn, item.origin,
        c.opt_us(item.arrived_at), control.record_id,
    )  # fmt: skip


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
