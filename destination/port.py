"""The ``Destination`` port: where settled blocks are replayed, exactly once.

Guarantees every adapter gives (``tests/contract/test_destination_contract.py`` checks them):

- The destination holds the checkpoint of each (ledger, strand): the last block (and, for a block
  applied in parts, the last part) it applied, with that block's hash.
- ``apply`` runs every operation of every given block part, and writes the new checkpoint, in one
  destination transaction. Inside that transaction it first compares the stored checkpoint with
  ``expected``; when they differ it applies nothing and raises ``CheckpointMismatch``. A driver that
  retries a commit whose answer was lost therefore cannot apply a block twice.
- Revision operations map source document ids to destination document ids in the destination,
  in the same transaction, so a later revision of the same source document finds its copy.
- Nothing is half-applied: an operation that fails aborts the whole transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from journal.records import BlockAddress


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """The last applied position of one strand. ``part`` is None when block ``sequence_no`` was
    applied whole; ``k`` when only its parts ``0..k`` were (a block split by a transaction
    limit, DESIGN.md rule 2)."""

    ledger: str
    strand_id: str
    sequence_no: int
    block_hash: bytes
    part: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementOp:
    """Run a literal PartiQL statement as the source ran it."""

    text: str
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RevisionOp:
    """Make the destination's copy of a source document equal a revision: insert it (no copy
    yet), replace it (``data`` set), or delete it (``data`` None, not ``redacted``). ``data`` is
    the Ion value of the REVISION_DETAILS, passed to the destination as an Ion value (never as
    text)."""

    table_name: str
    table_id: str
    document_id: str
    version: int
    data: Any
    # The revision's hash and its ``metadata`` struct as QLDB hashed it (typed Ion values), for
    # destinations that keep a verifiable history (PostgreSQL's ``qldb_history``).
    revision_hash: bytes | None = None
    metadata: Any = None
    # The Ion hash of ``data`` as the settler's verification computed it (None: not computed),
    # so that a destination comparing content does not hash the revision a second time; for a
    # redacted revision, the data hash the source kept.
    data_hash: bytes | None = None
    # A redacted revision (``data`` None, its hash and ``data_hash`` kept): the content the source
    # committed is gone. Not a deletion: the destination removes its copy's content and keeps
    # what the source kept (docs/export.md says what each destination stores).
    redacted: bool = False
    # ``data`` came from a JSON Lines export: QLDB down-converted it, its Ion types are lost
    # (``ingest.export.origin``); a destination replaying it says so loudly.
    down_converted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockReplay:
    """One block, or one part of a block; ``part``/``parts`` are None for a whole block."""

    block_id: str
    ledger: str
    address: BlockAddress
    block_hash: bytes
    mode: Literal["statements", "revisions"]
    ops: tuple[StatementOp | RevisionOp, ...]
    part: int | None = None
    parts: int | None = None
    # Source table id -> table name, so DDL naming source ids can be translated (rule 7).
    table_names: tuple[tuple[str, str], ...] = ()
    # "statements" mode only: the block's user revisions (in revisionSummaries order), so the
    # destination can record, in the same transaction, which document its statements wrote is
    # the copy of which source document (the one whose data equals the revision's data); a later
    # block replayed from revisions then finds that copy. Empty in "revisions" mode.
    revisions: tuple[RevisionOp, ...] = ()
    # The block's header, for destinations that keep the block chain (PostgreSQL's
    # ``qldb_blocks``): ``blockHash = dot(entriesHash, previousBlockHash)`` and ``entriesHash`` is
    # the Merkle root of ``entriesHashList``, so the replica can check its history alone.
    transaction_id: str = ""
    committed_at: datetime | None = None
    previous_block_hash: bytes = b""
    entries_hash: bytes = b""
    entries_hash_list: tuple[bytes, ...] = ()

    @property
    def is_last_part(self) -> bool:
        return self.part is None or self.parts is None or self.part == self.parts - 1

    def checkpoint(self) -> Checkpoint:
        """The checkpoint that applying this block (part) moves the strand to."""
        return Checkpoint(
            ledger=self.ledger,
            strand_id=self.address.strand_id,
            sequence_no=self.address.sequence_no,
            block_hash=self.block_hash,
            part=None if self.is_last_part else self.part,
        )


@dataclass(slots=True)
class ApplyReport:
    statements: int = 0
    revisions: int = 0
    documents_written: int = 0
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What one destination transaction may hold; None means unbounded."""

    documents: int | None = None
    bytes: int | None = None


def strand_of(blocks: Sequence[BlockReplay]) -> tuple[str, str]:
    """The ``(ledger, strand id)`` of the blocks one ``apply`` takes; ``ValueError`` when there
    are none or they are of more than one strand."""
    if not blocks:
        raise ValueError("apply needs at least one block")
    last = blocks[-1]
    key = (last.ledger, last.address.strand_id)
    if any((b.ledger, b.address.strand_id) != key for b in blocks):
        raise ValueError("apply takes blocks of one strand")
    return key


def describe(checkpoint: Checkpoint | None) -> str:
    """A checkpoint as a ``CheckpointMismatch`` names it: ``strand/sequence[ part k] (hash)``."""
    if checkpoint is None:
        return "none"
    part = "" if checkpoint.part is None else f" part {checkpoint.part}"
    return (
        f"{checkpoint.strand_id}/{checkpoint.sequence_no}{part} "
        f"({checkpoint.block_hash.hex()[:12]})"
    )


class Destination(Protocol):
    """Port of the replica. Adapters: ``EmbeddedDestination`` (the embedded ledger),
    ``QldbDestination`` (pyqldb), ``PostgresDestination`` (psycopg 3)."""

    limits: Limits

    def checkpoint(self, ledger: str, strand_id: str) -> Checkpoint | None:
        """The stored checkpoint of the strand, or None when nothing was applied yet."""
        ...

    def apply(self, blocks: Sequence[BlockReplay], expected: Checkpoint | None) -> ApplyReport:
        """Apply the blocks in order and move the checkpoint to the last one's, atomically, if and
        only if the stored checkpoint equals ``expected``; else raise ``CheckpointMismatch``."""
        ...

    def close(self) -> None: ...
