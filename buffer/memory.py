"""An in-memory store for unit tests: ``MemoryStore`` (the ``buffer.store`` verbs over dicts)
and ``MemoryBuffer`` (the ``buffer.settling.Buffer`` policy over it).

Rows are kept named as ``_common.DumpBuilder`` reads them. ``atomic`` holds one lock and, for a
write, rolls every table back when the block raises, so a call is all or nothing as in SQLite.
``memory_buffer(key)`` opens a buffer over the store shared by ``key`` in this process (two
instances with one key see one buffer, as two ``SqliteBuffer`` of one file do).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from buffer import _common as c
from buffer import planner
from buffer import put_policy as policy
from buffer.port import Incoming, Rejection
from buffer.settling import Buffer
from buffer.store import GapKey, HeaderQuery, HeaderRow, StateWrite, StrandRow
from journal.records import BlockSummary, ControlRecord, RevisionDetails

Row = dict[str, Any]
_TABLES = ("blocks", "statements", "revisions", "control", "rejected", "strands", "gaps")


class MemoryStore:
    """The storage verbs of ``buffer.store.Store`` over dicts (the module docstring)."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._lock = threading.RLock()
        self._depth = 0
        self.blocks: dict[str, Row] = {}
        self.statements: dict[tuple[str, int], Row] = {}
        self.revisions: dict[str, Row] = {}
        self.control: dict[str, Row] = {}
        self.rejected: dict[str, Row] = {}
        self.strands: dict[tuple[str, str], Row] = {}
        self.gaps: dict[GapKey, int] = {}
        self.lease: tuple[str, int] | None = None
        self.counts: Counter[str] = Counter()

    @contextmanager
    def atomic(self, *, write: bool) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0 and write
            saved = self._snapshot() if outer else None
            self._depth += 1
            try:
                yield
            except BaseException:
                if saved is not None:
                    self._restore(saved)
                raise
            finally:
                self._depth -= 1

    def _snapshot(self) -> dict[str, Any]:
        saved: dict[str, Any] = {
            t: {k: dict(v) if isinstance(v, dict) else v for k, v in getattr(self, t).items()}
            for t in _TABLES
        }
        saved["lease"], saved["counts"] = self.lease, Counter(self.counts)
        return saved

    def _restore(self, saved: dict[str, Any]) -> None:
        for name, value in saved.items():
            setattr(self, name, value)

    def close(self) -> None:
        pass

    # --- put --------------------------------------------------------------------------------------

    def view(self, records: Sequence[Incoming]) -> planner.StoreView:
        want = planner.Wanted.of(records)
        stored_revs = {
            r.record_id: self.revisions[r.record_id]
            for r in want.revisions
            if r.record_id in self.revisions
        }
        ids = want.blocks(row["block_id"] for row in stored_revs.values())
        blocks = {b: self.blocks[b] for b in ids if b in self.blocks}
        return planner.StoreView(
            summaries={b: _stored(row) for b, row in blocks.items()},
            headers={
                b: policy.Header(row["state"], row["purged"], row["body"], row["arn"])
                for b, row in blocks.items()
            },
            revisions={
                r: planner.StoredRevision(_stored(row), row["block_id"], row["late"])
                for r, row in stored_revs.items()
            },
            controls={r: _stored(self.control[r]) for r in want.controls if r in self.control},
            strands={k: self._marks(k) for k in want.strands},
        )

    def _marks(self, key: tuple[str, str]) -> policy.StrandMarks:
        strand = self.strands.get(key)
        gaps = [(f, la) for (a, b, f, la) in self.gaps if (a, b) == key]
        return (None if strand is None else strand["replayed_through"], gaps)

    def apply(self, plan: planner.PutPlan) -> set[str]:
        deltas = Counter(plan.counts)
        for w in plan.writes.values():
            table = self._table(w.kind)
            if w.action == "provenance":
                self._provenance(w, table[w.record_id])
                continue
            kept: dict[str, Any] = {}
            if w.action == "replace":
                old = table.pop(w.record_id)
                if w.kind == "blocks":  # an operator's last word on the block stays
                    kept = {k: old[k] for k in ("reason", "updated_us", "actor")}
                    deltas["statements"] -= self._drop_statements(w.record_id)
            if w.kind == "blocks":
                self._write_summary(w)
                table[w.record_id].update(kept)
            elif w.kind == "revisions":
                table[w.record_id] = _revision_row(w)
            else:
                table[w.record_id] = _control_row(w)
        for (ledger, strand_id), (seq, has) in plan.seen.items():
            row = self._strand(ledger, strand_id)
            row["highest_seen"] = max(row["highest_seen"], seq)
            row["has_blocks"] = row["has_blocks"] or has
        for rid in plan.forget:
            if self.rejected.pop(rid, None) is not None:
                deltas["conflicts"] -= 1
        for rid, kept_r in plan.keep.items():
            r = kept_r.rejection
            arrived, raw_sha = c.opt_us(r.arrived_at), c.sha256_hex(r.raw) or ""
            known = self.rejected.get(rid)
            if known is None:
                self.rejected[rid] = {
                    "rejection_id": rid, "kind": r.kind, "reason": r.reason, "raw": r.raw,
                    "raw_sha256": raw_sha, "origin": r.origin, "arrived_us": arrived,
                    "record_id": r.record_id, "block_id": kept_r.block_id, "resolved_us": None,
                    "resolved_by": None, "resolution": None,
                }  # fmt: skip
                deltas["conflicts" if r.kind == c.CONFLICT else "rejected"] += 1
            elif c.arrival_key(arrived, r.origin, raw_sha) < c.arrival_key(
                known["arrived_us"], known["origin"], known["raw_sha256"]
            ):
                known.update(origin=r.origin, arrived_us=arrived, raw=r.raw, raw_sha256=raw_sha)
        self.add_counts(deltas)
        return set()

    def _table(self, kind: planner.Kind) -> dict[str, Row]:
        return {"blocks": self.blocks, "revisions": self.revisions, "control": self.control}[kind]

    def _drop_statements(self, block_id: str) -> int:
        gone = [k for k in self.statements if k[0] == block_id]
        for k in gone:
            del self.statements[k]
        return len(gone)

    def _write_summary(self, w: planner.Write) -> None:
        item, summary = w.item, cast(BlockSummary, w.record)
        kinds = item.statement_kinds
        self.blocks[w.record_id] = {
            "block_id": w.record_id, "ledger": summary.ledger,
            "strand_id": summary.address.strand_id, "sequence_no": summary.address.sequence_no,
            "state": w.state, "commit_us": c.to_us(summary.commit_time),
            "transaction_id": summary.transaction_id, "block_hash": summary.block_hash.hex(),
            "fingerprint": item.fingerprint, "statements": len(summary.statements),
            "revisions_expected": len(summary.user_revisions),
            "statement_kinds": list(kinds), "reason": None, "actor": None, "updated_us": None,
            "purged": False, "body": c.summary_body(summary),
            **_provenance(item, summary.stream.arn),
            "delay_ms": c.delay_ms(item.arrived_at, summary.commit_time),
        }  # fmt: skip
        for s in summary.statements:
            self.statements[(w.record_id, s.index)] = {
                "block_id": w.record_id, "index": s.index, "start_us": c.to_us(s.start_time),
                "text": s.text, "digest": s.digest.hex(),
                "kind": kinds[s.index] if s.index < len(kinds) else None, "state": w.state,
            }  # fmt: skip

    def _provenance(self, w: planner.Write, row: Row) -> None:
        item = w.item
        row.update(_provenance(item, w.record.stream.arn))
        if w.kind == "blocks":
            summary = cast(BlockSummary, w.record)
            kinds = item.statement_kinds
            row["delay_ms"] = c.delay_ms(item.arrived_at, summary.commit_time)
            row["statement_kinds"] = list(kinds)
            for i in range(len(summary.statements)):
                self.statements[(w.record_id, i)]["kind"] = kinds[i] if i < len(kinds) else None
        elif w.kind == "control":
            row.update(_control_row(w))

    def _strand(self, ledger: str, strand_id: str) -> Row:
        key = (ledger, strand_id)
        if key not in self.strands:
            self.strands[key] = {"replayed_through": None, "highest_seen": -1, "has_blocks": False}
        return self.strands[key]

    # --- reads ------------------------------------------------------------------------------------

    def headers(self, query: HeaderQuery) -> list[HeaderRow]:
        rows = sorted(
            (h for h in map(_header, self.blocks.values()) if query.matches(h)),
            key=lambda h: (h.ledger, h.strand_id, h.seq),
        )
        return rows if query.limit is None else rows[: query.limit]

    def headers_by_id(self, block_ids: Collection[str]) -> dict[str, HeaderRow]:
        return {b: _header(self.blocks[b]) for b in block_ids if b in self.blocks}

    def revisions_of(self, block_ids: Sequence[str]) -> dict[str, list[RevisionDetails]]:
        wanted = set(block_ids)
        out: dict[str, list[RevisionDetails]] = {b: [] for b in block_ids}
        for rid in sorted(self.revisions):
            row = self.revisions[rid]
            if row["block_id"] in wanted:
                out[row["block_id"]].append(row["parts"].revision())
        return out

    def revision_counts(self, block_ids: Sequence[str]) -> dict[str, int]:
        wanted = set(block_ids)
        return dict(
            Counter(r["block_id"] for r in self.revisions.values() if r["block_id"] in wanted)
        )

    def unresolved_conflicts(
        self, block_ids: Collection[str], record_ids: Collection[str]
    ) -> tuple[set[str], set[str]]:
        blocks, records = set(block_ids), set(record_ids)
        open_ = [
            r
            for r in self.rejected.values()
            if r["kind"] == c.CONFLICT and r["resolved_us"] is None
        ]
        return (
            {r["block_id"] for r in open_ if r["block_id"] in blocks},
            {r["record_id"] for r in open_ if r["record_id"] in records},
        )

    # --- marks, gaps, rejections ------------------------------------------------------------------

    def set_states(self, writes: Sequence[StateWrite]) -> None:
        for w in writes:
            self.blocks[w.block_id].update(
                state=w.state, reason=w.reason, updated_us=w.updated_us, actor=w.actor
            )
            for (block_id, _), s in self.statements.items():
                if block_id == w.block_id:
                    s["state"] = w.state

    def set_through(self, ledger: str, strand_id: str, seq: int, *, raise_only: bool) -> None:
        row = self._strand(ledger, strand_id)
        old = row["replayed_through"]
        row["replayed_through"] = max(seq, -1 if old is None else old) if raise_only else seq

    def strand_rows(self) -> list[StrandRow]:
        return [
            StrandRow(a, b, r["replayed_through"], _seen(r["highest_seen"]), bool(r["has_blocks"]))
            for (a, b), r in sorted(self.strands.items())
        ]

    def through(self, ledger: str, strand_id: str) -> int | None:
        row = self.strands.get((ledger, strand_id))
        return None if row is None else row["replayed_through"]

    def oldest_pending_us(self) -> int | None:
        pending = [h.commit_us for h in map(_header, self.blocks.values()) if h.state == "pending"]
        return min(pending, default=None)

    def gap_rows(self) -> dict[GapKey, int]:
        return dict(self.gaps)

    def put_gaps(self, rows: Mapping[GapKey, int]) -> None:
        self.gaps.update(rows)

    def delete_gaps(self, keys: Iterable[GapKey]) -> int:
        return sum(self.gaps.pop(k, None) is not None for k in keys)

    def rejections(self) -> list[tuple[str, Rejection]]:
        return [
            (rid, Rejection(
                origin=r["origin"], raw=r["raw"], kind=r["kind"], reason=r["reason"],
                arrived_at=c.opt_from_us(r["arrived_us"]), record_id=r["record_id"],
                resolved_at=c.opt_from_us(r["resolved_us"]), resolved_by=r["resolved_by"],
                resolution=r["resolution"],
            ))
            for rid, r in self.rejected.items()
        ]  # fmt: skip

    def count_unresolved(self) -> int:
        return sum(r["resolved_us"] is None for r in self.rejected.values())

    def unresolved_among(self, ids: Collection[str]) -> set[str]:
        return {i for i in ids if i in self.rejected and self.rejected[i]["resolved_us"] is None}

    def resolve(self, ids: Collection[str], reason: str, actor: str, at_us: int) -> None:
        for i in ids:
            self.rejected[i].update(resolved_us=at_us, resolved_by=actor, resolution=reason)

    # --- lease, retention, figures ----------------------------------------------------------------

    def lease_row(self) -> tuple[str, int] | None:
        return self.lease

    def lease_cas(self, expected: tuple[str, int] | None, new: tuple[str, int] | None) -> bool:
        if self.lease != expected:
            return False
        self.lease = new
        return True

    def purge(self, block_ids: Sequence[str]) -> tuple[int, int]:
        wanted = set(block_ids)
        statements = sum(self._drop_statements(b) for b in block_ids)
        gone = [r for r, row in self.revisions.items() if row["block_id"] in wanted]
        for r in gone:
            del self.revisions[r]
        for b in block_ids:
            self.blocks[b]["purged"] = True
        return statements, len(gone)

    def counters(self) -> dict[str, int]:
        return dict(self.counts)

    def add_counts(self, deltas: Mapping[str, int]) -> None:
        self.counts.update(deltas)

    def delays(self, sample: int) -> tuple[list[float], float | None]:
        arrived = sorted(
            (b for b in self.blocks.values() if b["arrived_us"] is not None),
            key=lambda b: b["arrived_us"],
            reverse=True,
        )
        known = [b["delay_ms"] for b in self.blocks.values() if b["delay_ms"] is not None]
        return [float(b["delay_ms"]) for b in arrived[:sample]], max(known, default=None)

    def dump_rows(self, into: c.DumpBuilder) -> None:
        for row in self.blocks.values():
            into.block(row)
        for s in self.statements.values():
            into.statement(s)
        for r in self.revisions.values():
            into.revision(r)
        for r in self.control.values():
            into.control_record(r)
        for r in self.rejected.values():
            into.rejection(r)
        for t in self.strand_rows():
            into.strand(
                f"{t.ledger}/{t.strand_id}", t.replayed_through, t.highest_seen, t.has_blocks
            )
        for (a, b, f, la), us in sorted(self.gaps.items()):
            into.gap(a, b, f, la, c.from_us(us))


def _seen(highest: int) -> int | None:
    return None if highest < 0 else highest


def _provenance(item: Incoming, arn: str) -> Row:
    return {
        "origin": item.origin,
        "arrived_us": c.opt_us(item.arrived_at),
        "raw": item.raw,
        "raw_sha256": c.sha256_hex(item.raw),
        "arn": arn,
    }


def _revision_row(w: planner.Write) -> Row:
    rev = cast(RevisionDetails, w.record)
    return {
        "revision_id": w.record_id, "block_id": rev.block_id, "document_id": rev.document_id,
        "version": rev.metadata.version, "fingerprint": w.item.fingerprint, "late": w.late,
        "parts": c.RevisionParts.of(rev), **_provenance(w.item, rev.stream.arn),
    }  # fmt: skip


def _control_row(w: planner.Write) -> Row:
    control = cast(ControlRecord, w.record)
    return {
        "record_id": w.record_id, "control_type": control.control_type,
        "fingerprint": w.item.fingerprint, **_provenance(w.item, control.stream.arn),
    }  # fmt: skip


def _stored(row: Row) -> policy.StoredCopy:
    raw = row["raw"]
    return policy.StoredCopy(
        fingerprint=row["fingerprint"],
        key=c.stored_copy_key(
            row["arrived_us"], row["origin"], row["fingerprint"], row["raw_sha256"]
        ),
        origin=row["origin"],
        arrived_us=row["arrived_us"],
        raw=lambda: cast(bytes, raw),
    )


def _header(b: Row) -> HeaderRow:
    return HeaderRow(
        block_id=b["block_id"], ledger=b["ledger"], strand_id=b["strand_id"],
        seq=b["sequence_no"], state=b["state"], commit_us=b["commit_us"],
        statements=b["statements"], revisions_expected=b["revisions_expected"],
        reason=b["reason"], updated_us=b["updated_us"], actor=b["actor"], purged=b["purged"],
        arrived_us=b["arrived_us"], body=b["body"], arn=b["arn"],
        kinds=tuple(b["statement_kinds"]),
    )  # fmt: skip


class MemoryBuffer(Buffer):
    """The ``SettlingBuffer`` port in memory (``buffer.settling.Buffer`` over a ``MemoryStore``)."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        super().__init__(store or MemoryStore())


_SHARED: dict[str, MemoryStore] = {}
_SHARED_LOCK = threading.Lock()


def memory_buffer(key: str) -> MemoryBuffer:
    """A buffer over the store of ``key`` in this process (created on first use)."""
    with _SHARED_LOCK:
        store = _SHARED.get(key)
        if store is None:
            store = _SHARED[key] = MemoryStore(f"memory:{key}")
    return MemoryBuffer(store)
