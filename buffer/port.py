"""The ``SettlingBuffer`` port: where stream records wait until the settler releases them.

Guarantees every adapter gives (the contract suite in ``tests/contract/test_buffer_contract.py``
checks each of them against every adapter):

- ``put`` is create-if-absent by the deterministic record id of DESIGN.md. A record whose id is
  already stored with the same fingerprint is a *duplicate*; with a different fingerprint it is a
  *conflict*: the first copy stays, the other is kept with the rejected records, and the block it
  belongs to is flagged so the settler quarantines it when it comes up. "First" is the copy that
  came first in the stream, the earliest ``(arrived_at, origin)`` (unknown arrival last), so the
  outcome does not depend on the order ``put`` sees the copies; a copy already released (its block
  no longer pending) stays whatever arrives later; a block whose copy is displaced keeps its
  mark (reason, actor, time). Of duplicates, the earliest copy's provenance
  is kept likewise. The flag lasts until the operator acknowledges the conflict's rejection.
  A block summary whose sequence number is at or below the strand's replayed mark, or inside a
  gap the settler passed, is stored as *late*; so is a revision of such a block. Every record
  (and every rejection) given to ``put`` is counted exactly once in the report.
- ``put`` is idempotent and order-insensitive: any permutation of the same records, any
  repetition and any split into calls leaves the same state (``dump`` is equal).
- Rejected input is kept with its raw bytes and reason and listed by ``rejected``, deduplicated by
  ``Rejection.rejection_id`` (raw bytes, kind, reason; for a conflict, the record id and the
  content, whichever stream carried it), until an operator acknowledges it.
- ``pending`` returns blocks of one strand in commit order (``sequenceNo``) strictly after a
  sequence number, with the revisions buffered for them; its cost grows with ``limit``, not with
  what is buffered behind it.
- Marks and the lease are conditional writes: two settlers never both hold the lease.
- Retention may delete the statements and revisions of replayed blocks, never block headers: a
  block (or a revision of it) re-delivered after ``purge_replayed`` is still a duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from journal.records import BlockSummary, RevisionDetails, StreamRecord

BlockState = Literal["pending", "replayed", "quarantined", "late", "skipped"]
BLOCK_STATES: tuple[BlockState, ...] = ("pending", "replayed", "quarantined", "late", "skipped")


@dataclass(frozen=True, slots=True, kw_only=True)
class Incoming:
    """A decoded stream record on its way into the buffer.

    ``raw`` is the record's Ion binary exactly as received; ``fingerprint`` is
    ``journal.canonical.record_fingerprint`` of its Ion value (content, not bytes); ``origin`` says
    where it came from (``shardId-000000000001/4960…/3`` or ``events/0001.json#Records[2]/3``);
    ``arrived_at`` is Kinesis' approximate arrival time when known. ``statement_kinds`` holds, for
    a block summary, the classification of each statement (``ingest.classify``), in index order.
    """

    record: StreamRecord
    raw: bytes
    fingerprint: str
    origin: str
    arrived_at: datetime | None = None
    statement_kinds: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Input that could not become a stored record, kept for an operator with its reason.

    ``kind`` is one of ``base64``, ``aggregate``, ``gzip``, ``json``, ``ion``, ``record-type``,
    ``field``, ``oversized``, ``conflict``, ``failed-range`` (a failed stream range ``redrive``
    could not read: its records may be the settler's missing blocks). ``record_id`` is set for
    conflicts (the id whose first copy was kept). ``resolved_at``/``resolved_by``/``resolution``
    are set by the buffer once an operator acknowledged the rejection
    (``SettlingBuffer.acknowledge_rejections``).
    """

    origin: str
    raw: bytes
    kind: str
    reason: str
    arrived_at: datetime | None = None
    record_id: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None

    @property
    def rejection_id(self) -> str:
        """Stable id of a rejection: the same bytes rejected for the same reason are one."""
        return rejection_id(self.raw, self.kind, self.reason)


def rejection_id(raw: bytes, kind: str, reason: str) -> str:
    """24 hex digits of SHA-256 over (kind, reason, SHA-256 of the raw bytes). A conflict's reason
    names the record id and the copy's content fingerprint, and its id leaves the bytes out: the
    same conflicting content is one rejection whichever stream (ARN) carried it."""
    digest = b"" if kind == "conflict" else hashlib.sha256(raw).digest()
    return hashlib.sha256(f"{kind}\n{reason}\n".encode() + digest).hexdigest()[:24]


@dataclass(slots=True)
class PutReport:
    """What one ``put`` did with each record it was given (each counted exactly once)."""

    records: int = 0
    stored: dict[str, int] = field(
        default_factory=lambda: {"blocks": 0, "statements": 0, "revisions": 0, "control": 0}
    )
    duplicates: int = 0
    conflicts: int = 0
    late: int = 0
    rejected: int = 0

    def add(self, other: PutReport) -> None:
        self.records += other.records
        for k, v in other.stored.items():
            self.stored[k] = self.stored.get(k, 0) + v
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts
        self.late += other.late
        self.rejected += other.rejected


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferedBlock:
    """A block as the settler sees it: its summary, the revisions buffered for it (by document
    id), the classification of each statement, and whether any of its records had a conflicting
    copy."""

    summary: BlockSummary
    revisions: Mapping[str, RevisionDetails]
    statement_kinds: tuple[str, ...]
    state: BlockState
    arrived_at: datetime | None
    conflicted: bool = False
    reason: str | None = None

    @property
    def block_id(self) -> str:
        return self.summary.block_id

    @property
    def missing_revisions(self) -> tuple[str, ...]:
        """Document ids of ``revisionSummaries`` entries whose REVISION_DETAILS is not buffered."""
        return tuple(
            r.document_id
            for r in self.summary.user_revisions
            if r.document_id is not None and r.document_id not in self.revisions
        )

    @property
    def complete(self) -> bool:
        return not self.missing_revisions


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """A state change of one block, written by the settler or by an operator's ``resolve``."""

    block_id: str
    state: BlockState
    at: datetime
    reason: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Gap:
    """Sequence numbers the settler passed without a block (read-only blocks, or lost ones)."""

    ledger: str
    strand_id: str
    first: int
    last: int
    passed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """Who holds the settler lease, and until when (an expired lease is anyone's)."""

    owner: str
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockRow:
    """One line of ``qldb-settle blocks``."""

    block_id: str
    ledger: str
    strand_id: str
    sequence_no: int
    state: BlockState
    commit_time: datetime
    statements: int
    revisions_expected: int
    revisions_buffered: int
    reason: str | None
    updated_at: datetime | None
    actor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BufferStats:
    """``stats(now)``: counts by state and the figures an operator tunes by."""

    blocks: Mapping[str, int]
    statements: int
    revisions: int
    rejected: int
    conflicts: int
    gaps: int
    oldest_pending_commit: datetime | None
    highest_sequence_seen: Mapping[str, int]
    ingest_delays_ms: Sequence[float]


class SettlingBuffer(Protocol):
    """Port of the settling buffer. Adapters: ``SqliteBuffer``, ``OpenSearchBuffer`` and
    ``MemoryBuffer`` (unit tests)."""

    def put(self, records: Sequence[Incoming], rejections: Sequence[Rejection] = ()) -> PutReport:
        """Store records create-if-absent and keep rejections; report each record once."""
        ...

    def strands(self) -> Sequence[tuple[str, str]]:
        """Every (ledger, strandId) with at least one buffered block."""
        ...

    def pending(
        self, ledger: str, strand_id: str, after: int, limit: int
    ) -> Sequence[BufferedBlock]:
        """Pending blocks of the strand with ``sequenceNo > after``, in commit order, at most
        ``limit``, each with the revisions buffered for it."""
        ...

    def get_block(self, block_id: str) -> BufferedBlock | None:
        """One block in whatever state, or None."""
        ...

    def mark(self, marks: Sequence[Mark]) -> None:
        """Record state changes of blocks (replayed, quarantined, late, skipped, pending), all or
        nothing. Marking a block replayed or skipped raises the strand's replayed mark to its
        sequence number. A mark naming a block that is not buffered raises ``InputError`` and
        changes nothing."""
        ...

    def replayed_through(self, ledger: str, strand_id: str) -> int | None:
        """The strand's replayed mark: the highest sequence number known replayed, or None."""
        ...

    def repair(self, ledger: str, strand_id: str, sequence_no: int, at: datetime) -> int:
        """Make the buffer's marks agree with the destination's checkpoint: every pending block
        of the strand at or below ``sequence_no`` becomes replayed, and the strand's replayed mark
        becomes ``sequence_no``. Returns the number of blocks whose mark changed."""
        ...

    def record_gaps(self, gaps: Sequence[Gap]) -> None:
        """Remember gaps the settler is about to pass, in one write (blocks later found inside
        them are late). Idempotent: a gap recorded again keeps its earliest ``passed_at``."""
        ...

    def withdraw_gaps(self, gaps: Sequence[Gap]) -> None:
        """Forget gaps recorded for a destination transaction that did not commit them (the
        settler stopped before the blocks after them): they were never passed."""
        ...

    def gaps(self) -> Sequence[Gap]: ...

    def blocks(self, state: BlockState | None = None) -> Sequence[BlockRow]:
        """Blocks in commit order, optionally of one state (``qldb-settle blocks``)."""
        ...

    def rejected(self) -> Sequence[Rejection]:
        """Every kept rejection, oldest first (``qldb-settle rejected``)."""
        ...

    def unresolved_rejections(self) -> int:
        """Rejections not yet resolved by an operator (they may hold a missing block)."""
        ...

    def acknowledge_rejections(
        self, ids: Sequence[str], reason: str, actor: str, at: datetime
    ) -> int:
        """Mark rejections (by ``Rejection.rejection_id``) resolved by an operator, with who, why
        and when; a conflict's block is no longer flagged once its rejections are acknowledged.
        Returns how many were newly acknowledged (unknown or already resolved ids count 0)."""
        ...

    def purge_replayed(self, older_than: datetime) -> int:
        """Retention: delete the statements and revisions of replayed blocks committed before
        ``older_than``; block headers stay. Returns the number of blocks purged."""
        ...

    def stats(self, now: datetime) -> BufferStats:
        """Counts (``rejected`` without conflicts, ``conflicts`` the conflicting copies kept),
        the oldest pending commit time, the highest sequence number seen per ``ledger/strand``
        (block summaries and revisions), and a bounded sample of ingest delays (arrival − commit
        of block summaries, in ms, the largest observed always included)."""
        ...

    def acquire_lease(self, owner: str, ttl_seconds: float, now: datetime) -> bool:
        """Take or renew the settler lease; False when another owner holds an unexpired one."""
        ...

    def release_lease(self, owner: str) -> None: ...

    def lease(self) -> Lease | None:
        """The lease as stored (expired or not); None when nobody took it or it was released."""
        ...

    def dump(self) -> Mapping[str, Any]:
        """A canonical, JSON-able dump of every stored record, mark and count (for tests)."""
        ...

    def close(self) -> None: ...
