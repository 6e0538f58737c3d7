"""``Buffer``: the ``SettlingBuffer`` port written once, over any ``buffer.store.Store``.

The policy of every verb lives here; the store only reads and writes rows:

- ``put``: read the stored copies by id (``Store.view``), plan with ``buffer.planner``, apply the
  plan (``Store.apply``); ids the store lost to another writer are planned again, at most
  ``MAX_ROUNDS`` times;
- ``mark``: every state known and every block buffered, else ``InputError`` and nothing changes;
  replayed and skipped raise the strand's replayed mark (never lower it); ``repair``: the strand's
  pending blocks at or below the checkpoint become replayed with the reason naming it, and the
  mark becomes the checkpoint;
- gaps: recorded once, keeping the earliest ``passed_at``; withdrawn by key;
- rejections: listed oldest first; acknowledged each id once, only while unresolved;
- ``stats`` and ``dump``: built from the store's counters and rows;
- the lease: taken when free, expired or ours, by compare-and-set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Self

from buffer import _common as c
from buffer import planner
from buffer.port import (
    BLOCK_STATES,
    BlockRow,
    BlockState,
    BufferedBlock,
    BufferStats,
    Gap,
    Incoming,
    Lease,
    Mark,
    PutReport,
    Rejection,
)
from buffer.store import GapKey, HeaderQuery, HeaderRow, StateWrite, Store
from journal.errors import InputError
from runtime.errors import TransientError

MAX_ROUNDS = 8  # plans of one put against a store that lost ids to another writer
LEASE_ROUNDS = 8


Attempt = Callable[
    [Sequence[Incoming], Sequence[Rejection], bool], tuple[planner.PutPlan, set[str]]
]


def put_in_rounds(
    records: Sequence[Incoming],
    rejections: Sequence[Rejection],
    attempt: Attempt,
    what: str,
    rounds: int = MAX_ROUNDS,
) -> PutReport:
    """A put as rounds of ``attempt(records, rejections, again)`` (read, plan, write: the plan
    and the record ids another writer changed meanwhile), each round with the ids the last one
    lost, counting each record once; ``TransientError`` naming ``what`` after ``rounds``."""
    report = PutReport()
    todo, given = list(records), list(rejections)
    for round_ in range(rounds):
        if round_ > 0 and not todo:
            return report
        plan, raced = attempt(todo, given, round_ > 0)
        report.add(plan.report(dropped=raced))
        todo = [i for i in todo if i.record.record_id in raced]
        given = []
    if not todo:
        return report
    raise TransientError(
        f"{what}: concurrent writers kept changing {len(todo)} records; nothing was lost, "
        "run it again"
    )


def repair_reason(sequence_no: int) -> str:
    return f"repaired from the destination checkpoint {sequence_no}"


class Buffer:
    """The ``SettlingBuffer`` port over ``store`` (``buffer.port`` states the guarantees)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- put --------------------------------------------------------------------------------------

    def put(self, records: Sequence[Incoming], rejections: Sequence[Rejection] = ()) -> PutReport:
        store = self.store

        def attempt(
            todo: Sequence[Incoming], given: Sequence[Rejection], again: bool
        ) -> tuple[planner.PutPlan, set[str]]:
            with store.atomic(write=True):
                plan = planner.plan(todo, given, store.view(todo), again=again)
                return plan, store.apply(plan)

        return put_in_rounds(records, rejections, attempt, f"settling buffer {store.name}")

    # --- reading blocks ---------------------------------------------------------------------------

    def strands(self) -> Sequence[tuple[str, str]]:
        with self.store.atomic(write=False):
            rows = self.store.strand_rows()
        return sorted((r.ledger, r.strand_id) for r in rows if r.has_blocks)

    def pending(
        self, ledger: str, strand_id: str, after: int, limit: int
    ) -> Sequence[BufferedBlock]:
        if limit <= 0:
            return []
        query = HeaderQuery(
            ledger=ledger, strand_id=strand_id, state="pending", after=after, limit=limit
        )
        with self.store.atomic(write=False):
            return self._buffered(self.store.headers(query))

    def get_block(self, block_id: str) -> BufferedBlock | None:
        with self.store.atomic(write=False):
            found = self._buffered(list(self.store.headers_by_id([block_id]).values()))
        return found[0] if found else None

    def _buffered(self, headers: list[HeaderRow]) -> list[BufferedBlock]:
        ids = [h.block_id for h in headers]
        revisions = self.store.revisions_of(ids)
        of_revision = {r.record_id: b for b, revs in revisions.items() for r in revs}
        by_block, by_record = self.store.unresolved_conflicts(ids, [*ids, *of_revision])
        conflicted = by_block | {of_revision.get(r, r) for r in by_record}
        out = []
        for h in headers:
            summary = c.summary_from_body(h.body, h.arn)
            out.append(
                BufferedBlock(
                    summary=summary,
                    revisions=c.pick_revisions(summary, revisions.get(h.block_id, ())),
                    statement_kinds=h.kinds,
                    state=h.state,
                    arrived_at=c.opt_from_us(h.arrived_us),
                    conflicted=h.block_id in conflicted,
                    reason=h.reason,
                )
            )
        return out

    def blocks(self, state: BlockState | None = None) -> Sequence[BlockRow]:
        with self.store.atomic(write=False):
            headers = self.store.headers(HeaderQuery(state=state))
            counts = self.store.revision_counts([h.block_id for h in headers])
        return [
            BlockRow(
                block_id=h.block_id,
                ledger=h.ledger,
                strand_id=h.strand_id,
                sequence_no=h.seq,
                state=h.state,
                commit_time=c.from_us(h.commit_us),
                statements=h.statements,
                revisions_expected=h.revisions_expected,
                revisions_buffered=counts.get(h.block_id, 0),
                reason=h.reason,
                updated_at=c.opt_from_us(h.updated_us),
                actor=h.actor,
            )
            for h in headers
        ]

    # --- marks ------------------------------------------------------------------------------------

    def mark(self, marks: Sequence[Mark]) -> None:
        store = self.store
        with store.atomic(write=True):
            headers = store.headers_by_id({m.block_id for m in marks})
            for m in marks:
                if m.state not in BLOCK_STATES:
                    raise InputError(f"{m.state!r} is not a block state {BLOCK_STATES}")
                if m.block_id not in headers:
                    raise InputError(
                        f"block {m.block_id} is not in the settling buffer {store.name}"
                    )
            deltas: Counter[str] = Counter()
            state = {b: h.state for b, h in headers.items()}
            through: dict[tuple[str, str], int] = {}
            for m in marks:
                h = headers[m.block_id]
                deltas[f"blocks.{state[m.block_id]}"] -= 1
                deltas[f"blocks.{m.state}"] += 1
                state[m.block_id] = m.state
                if m.state in ("replayed", "skipped"):
                    key = (h.ledger, h.strand_id)
                    through[key] = max(through.get(key, h.seq), h.seq)
            store.set_states(
                [StateWrite(m.block_id, m.state, m.reason, c.to_us(m.at), m.actor) for m in marks]
            )
            for (ledger, strand_id), seq in through.items():
                store.set_through(ledger, strand_id, seq, raise_only=True)
            store.add_counts(deltas)

    def replayed_through(self, ledger: str, strand_id: str) -> int | None:
        with self.store.atomic(write=False):
            return self.store.through(ledger, strand_id)

    def repair(self, ledger: str, strand_id: str, sequence_no: int, at: datetime) -> int:
        store = self.store
        query = HeaderQuery(
            ledger=ledger, strand_id=strand_id, state="pending", through=sequence_no
        )
        with store.atomic(write=True):
            ids = [h.block_id for h in store.headers(query)]
            reason, at_us = repair_reason(sequence_no), c.to_us(at)
            store.set_states([StateWrite(b, "replayed", reason, at_us, "settler") for b in ids])
            store.set_through(ledger, strand_id, sequence_no, raise_only=False)
            store.add_counts({"blocks.pending": -len(ids), "blocks.replayed": len(ids)})
        return len(ids)

    # --- gaps -------------------------------------------------------------------------------------

    def record_gaps(self, gaps: Sequence[Gap]) -> None:
        if not gaps:
            return
        with self.store.atomic(write=True):
            stored = self.store.gap_rows()
            changed: dict[GapKey, int] = {}
            for gap in gaps:
                key = (gap.ledger, gap.strand_id, gap.first, gap.last)
                us = c.to_us(gap.passed_at)
                known = changed.get(key, stored.get(key))
                if known is None or us < known:
                    changed[key] = us
            self.store.put_gaps(changed)
            self.store.add_counts({"gaps": len(changed.keys() - stored.keys())})

    def withdraw_gaps(self, gaps: Sequence[Gap]) -> None:
        if not gaps:
            return
        keys = dict.fromkeys((g.ledger, g.strand_id, g.first, g.last) for g in gaps)
        with self.store.atomic(write=True):
            self.store.add_counts({"gaps": -self.store.delete_gaps(keys)})

    def gaps(self) -> Sequence[Gap]:
        with self.store.atomic(write=False):
            rows = self.store.gap_rows()
        return [
            Gap(ledger=a, strand_id=b, first=f, last=la, passed_at=c.from_us(rows[(a, b, f, la)]))
            for a, b, f, la in sorted(rows)
        ]

    # --- rejections -------------------------------------------------------------------------------

    def rejected(self) -> Sequence[Rejection]:
        with self.store.atomic(write=False):
            rows = self.store.rejections()

        def oldest(row: tuple[str, Rejection]) -> tuple[bool, int, str, str]:
            rid, r = row
            us = c.opt_us(r.arrived_at)
            return (us is None, us or 0, r.origin, rid)

        return [r for _, r in sorted(rows, key=oldest)]

    def unresolved_rejections(self) -> int:
        with self.store.atomic(write=False):
            return self.store.count_unresolved()

    def acknowledge_rejections(
        self, ids: Sequence[str], reason: str, actor: str, at: datetime
    ) -> int:
        with self.store.atomic(write=True):
            open_ = self.store.unresolved_among(set(ids))
            if open_:
                self.store.resolve(open_, reason, actor, c.to_us(at))
        return len(open_)

    # --- figures, lease, retention ----------------------------------------------------------------

    def stats(self, now: datetime) -> BufferStats:
        store = self.store
        with store.atomic(write=False):
            counts = store.counters()
            strands = sorted(store.strand_rows(), key=lambda r: (r.ledger, r.strand_id))
            oldest = store.oldest_pending_us()
            delays, largest = store.delays(c.DELAY_SAMPLE)
        if largest is not None and (not delays or max(delays) < largest):
            delays.append(float(largest))
        return BufferStats(
            blocks={s: int(counts.get(f"blocks.{s}", 0)) for s in BLOCK_STATES},
            statements=int(counts.get("statements", 0)),
            revisions=int(counts.get("revisions", 0)),
            rejected=int(counts.get("rejected", 0)),
            conflicts=int(counts.get("conflicts", 0)),
            gaps=int(counts.get("gaps", 0)),
            oldest_pending_commit=c.opt_from_us(oldest),
            highest_sequence_seen={
                f"{s.ledger}/{s.strand_id}": s.highest_seen
                for s in strands
                if s.highest_seen is not None
            },
            ingest_delays_ms=delays,
        )

    def acquire_lease(self, owner: str, ttl_seconds: float, now: datetime) -> bool:
        now_us = c.to_us(now)
        new = (owner, now_us + round(ttl_seconds * 1_000_000))
        for _ in range(LEASE_ROUNDS):
            with self.store.atomic(write=True):
                held = self.store.lease_row()
                if held is not None and held[0] != owner and held[1] > now_us:
                    return False
                if self.store.lease_cas(held, new):
                    return True
        raise TransientError(f"settling buffer {self.store.name}: the lease kept changing")

    def release_lease(self, owner: str) -> None:
        for _ in range(LEASE_ROUNDS):
            with self.store.atomic(write=True):
                held = self.store.lease_row()
                if held is None or held[0] != owner or self.store.lease_cas(held, None):
                    return
        raise TransientError(f"settling buffer {self.store.name}: the lease kept changing")

    def lease(self) -> Lease | None:
        with self.store.atomic(write=False):
            held = self.store.lease_row()
        return None if held is None else Lease(owner=held[0], expires_at=c.from_us(held[1]))

    def purge_replayed(self, older_than: datetime) -> int:
        query = HeaderQuery(
            state="replayed", committed_before_us=c.to_us(older_than), unpurged=True
        )
        store = self.store
        with store.atomic(write=True):
            ids = [h.block_id for h in store.headers(query)]
            if ids:
                statements, revisions = store.purge(ids)
                store.add_counts({"statements": -statements, "revisions": -revisions})
        return len(ids)

    # --- dump -------------------------------------------------------------------------------------

    def dump(self) -> Mapping[str, Any]:
        d = c.DumpBuilder()
        with self.store.atomic(write=False):
            self.store.dump_rows(d)
        return d.dump()
