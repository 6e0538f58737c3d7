"""The narrow store protocol under the buffer policy: storage verbs only, no decisions.

``buffer.settling.Buffer`` implements the ``SettlingBuffer`` port once, over any ``Store``; a
store holds its client, schema, queries and bulk writes, and decides nothing the port promises
(which copy is kept, what is late, which marks are valid, what a gap or an acknowledgement
means: that is the policy's, with ``buffer.planner`` for ``put``). The verbs:

- ``atomic(write=)``: the verbs called inside are one unit (SQLite: one transaction; memory: one
  lock, rolled back on an exception); a store without transactions makes each write conditional
  instead (``apply`` reports what it lost);
- ``view`` reads the stored copies, headers and strand marks a put's records need, by id
  (``planner.StoreView``); ``apply`` writes a ``planner.PutPlan`` and returns the record ids it
  could not write because another writer changed them meanwhile (the policy plans them again;
  always empty for a transactional store);
- ``headers`` (by ``HeaderQuery``: strand, state, sequence range, commit cutoff, paging by
  ``after``/``limit`` in sequence order) and ``headers_by_id``; ``revisions_of`` (the revisions
  stored for blocks), ``revision_counts``, ``unresolved_conflicts``;
- marks: ``set_states`` (a block's state, reason, actor, time, and its statements' state),
  ``set_through`` and ``through`` (a strand's replayed mark), ``strand_rows``,
  ``oldest_pending_us``;
- ``gap_rows``, ``put_gaps``, ``delete_gaps``; ``rejections``, ``unresolved_among``, ``resolve``,
  ``count_unresolved``;
- ``lease_row`` and ``lease_cas`` (compare-and-set of the one settler lease);
- ``purge`` (a block's statements and revisions; the header stays, flagged purged);
- ``counters`` and ``add_counts`` (the figures ``stats`` reports, kept with the rows they count),
  ``delays`` (the ingest delay sample), ``dump_rows`` (every row, into a ``_common.DumpBuilder``).

Stores: ``buffer.memory.MemoryStore`` (dicts, for unit tests), ``buffer.sqlite_store`` and
``buffer.opensearch_store``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from buffer import _common as c
from buffer import planner
from buffer.port import BlockState, Incoming, Rejection
from journal.records import RevisionDetails

GapKey = tuple[str, str, int, int]  # ledger, strand_id, first, last


@dataclass(frozen=True, slots=True)
class HeaderRow:
    """A stored block header; ``body`` is ``_common.summary_body`` (a mapping or its JSON)."""

    block_id: str
    ledger: str
    strand_id: str
    seq: int
    state: BlockState
    commit_us: int
    statements: int
    revisions_expected: int
    reason: str | None
    updated_us: int | None
    actor: str | None
    purged: bool
    arrived_us: int | None
    body: Mapping[str, Any] | str
    arn: str
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderQuery:
    """Headers of one strand in sequence order (of every strand, by ledger, strand and sequence,
    when ``ledger`` and ``strand_id`` are None): of ``state`` (any if None), with ``seq > after``
    and ``seq <= through``, committed before ``committed_before_us``, not yet purged when
    ``unpurged``; at most ``limit``."""

    ledger: str | None = None
    strand_id: str | None = None
    state: BlockState | None = None
    after: int | None = None
    through: int | None = None
    committed_before_us: int | None = None
    unpurged: bool = False
    limit: int | None = None

    def matches(self, h: HeaderRow) -> bool:
        """Whether ``h`` is one of the query's headers (for a store that filters rows itself)."""
        return (
            (self.ledger is None or h.ledger == self.ledger)
            and (self.strand_id is None or h.strand_id == self.strand_id)
            and (self.state is None or h.state == self.state)
            and (self.after is None or h.seq > self.after)
            and (self.through is None or h.seq <= self.through)
            and (self.committed_before_us is None or h.commit_us < self.committed_before_us)
            and not (self.unpurged and h.purged)
        )


@dataclass(frozen=True, slots=True)
class StateWrite:
    """A block's new state, with who set it, why and when (its statements follow its state)."""

    block_id: str
    state: BlockState
    reason: str | None
    updated_us: int
    actor: str | None


@dataclass(frozen=True, slots=True)
class StrandRow:
    ledger: str
    strand_id: str
    replayed_through: int | None
    highest_seen: int | None
    has_blocks: bool


class Store(Protocol):
    """Storage verbs of a settling buffer (the module docstring)."""

    name: str  # what error messages call the store (a path, an endpoint)

    def atomic(self, *, write: bool) -> AbstractContextManager[None]: ...

    def view(self, records: Sequence[Incoming]) -> planner.StoreView: ...

    def apply(self, plan: planner.PutPlan) -> set[str]: ...

    def headers(self, query: HeaderQuery) -> list[HeaderRow]: ...

    def headers_by_id(self, block_ids: Collection[str]) -> dict[str, HeaderRow]: ...

    def revisions_of(self, block_ids: Sequence[str]) -> dict[str, list[RevisionDetails]]: ...

    def revision_counts(self, block_ids: Sequence[str]) -> dict[str, int]: ...

    def unresolved_conflicts(
        self, block_ids: Collection[str], record_ids: Collection[str]
    ) -> tuple[set[str], set[str]]:
        """Of unresolved conflict rejections: the ``block_ids`` they flag, and the
        ``record_ids`` they were kept for."""
        ...

    def set_states(self, writes: Sequence[StateWrite]) -> None: ...

    def set_through(self, ledger: str, strand_id: str, seq: int, *, raise_only: bool) -> None:
        """The strand's replayed mark becomes ``seq`` (``raise_only``: only if higher)."""
        ...

    def strand_rows(self) -> list[StrandRow]: ...

    def through(self, ledger: str, strand_id: str) -> int | None:
        """The strand's replayed mark (None: none yet)."""
        ...

    def oldest_pending_us(self) -> int | None:
        """The earliest commit time of a pending block (None: no block is pending)."""
        ...

    def gap_rows(self) -> dict[GapKey, int]:
        """Every gap, to its ``passed_at`` in microseconds."""
        ...

    def put_gaps(self, rows: Mapping[GapKey, int]) -> None: ...

    def delete_gaps(self, keys: Iterable[GapKey]) -> int: ...

    def rejections(self) -> list[tuple[str, Rejection]]: ...

    def count_unresolved(self) -> int: ...

    def unresolved_among(self, ids: Collection[str]) -> set[str]: ...

    def resolve(self, ids: Collection[str], reason: str, actor: str, at_us: int) -> None: ...

    def lease_row(self) -> tuple[str, int] | None: ...

    def lease_cas(self, expected: tuple[str, int] | None, new: tuple[str, int] | None) -> bool:
        """Write the lease (owner, expires_us) ``new`` (None: none) if it is ``expected``."""
        ...

    def purge(self, block_ids: Sequence[str]) -> tuple[int, int]:
        """Delete the blocks' statements and revisions, flag the headers purged; returns the
        statements and revisions deleted."""
        ...

    def counters(self) -> dict[str, int]: ...

    def add_counts(self, deltas: Mapping[str, int]) -> None: ...

    def delays(self, sample: int) -> tuple[list[float], float | None]:
        """The ingest delays of the ``sample`` latest arrivals, and the largest of all."""
        ...

    def dump_rows(self, into: c.DumpBuilder) -> None: ...

    def close(self) -> None: ...
