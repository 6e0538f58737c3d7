"""Plan how a verified block is replayed (DESIGN.md rules 2 and 7). Pure: no I/O, no clock.

- **Statement mode** when every statement is ``literal``, ``select`` or ``ddl_id``: the
  statements run in index order, SELECTs skipped; the block's revisions ride along
  (``BlockReplay.revisions``) so the destination can map the source documents they wrote.
- **Revision mode** otherwise (parameters, document ids, non-deterministic functions, statements
  the parser refuses): the block's DDL still runs as statements, first; then one ``RevisionOp``
  per user revision in ``revisionSummaries`` order (insert, replace or delete the copy).
- A revision carrying ``dataHash`` instead of ``data`` (already redacted; verified by that hash,
  ``settler.block_checks``) is replayed as redacted: revision mode (the statement texts still hold
  what was redacted), with a ``RevisionOp`` marked ``redacted`` (``data`` None, ``data_hash`` the
  kept hash); docs/export.md says what each destination stores. ``EXEC REDACT_REVISION`` redacts an
  older revision and changes no current document: it is not replayed.
- A revision from a JSON Lines export (``ingest.export.origin.down_converted``) whose content
  verification could not prove is replayed from its revisions, its ``RevisionOp`` marked
  ``down_converted``: the block's statements would write Ion types its revisions no longer
  show, so the destination could not match them.
- A block the destination's ``limits`` cannot hold in one transaction is split into resumable
  parts (revision mode; each part has its own checkpoint), and the plan says so (it is counted).
  One document of every transaction is kept for the checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from amazon.ion import simpleion

from buffer.port import BufferedBlock
from destination.port import BlockReplay, Limits, RevisionOp, StatementOp
from ingest.export.origin import down_converted
from journal.records import BlockSummary
from settler.block_checks import metadata_struct

STATEMENT_MODE_KINDS = frozenset({"literal", "select", "ddl_id"})
CHECKPOINT_DOCUMENTS = 1
# Bytes counted for an operation besides its data or text (names, ids, framing).
OP_OVERHEAD_BYTES = 256

_REDACT = re.compile(r"^\s*EXEC\s+REDACT_REVISION\b", re.IGNORECASE)
_LEADING = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_DDL_WORDS = frozenset({"CREATE", "DROP", "UNDROP"})

Classifier = Callable[[str], str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """How one block is replayed: ``replays`` (the whole block, or its parts in order), or the
    reason it cannot be (``quarantine``). ``documents`` and ``bytes`` are what it needs of one
    destination transaction (``bytes`` measured only when the destination limits bytes)."""

    block_id: str
    mode: Literal["statements", "revisions"] | None
    replays: tuple[BlockReplay, ...]
    quarantine: str | None = None
    statements: int = 0
    revisions: int = 0
    documents: int = 0
    bytes: int = 0

    @property
    def split(self) -> bool:
        return len(self.replays) > 1

    @classmethod
    def refused(cls, block_id: str, reason: str) -> Plan:
        return cls(block_id=block_id, mode=None, replays=(), quarantine=reason)


def is_redaction(text: str) -> bool:
    return bool(_REDACT.match(text))


def is_ddl(text: str) -> bool:
    """True when the statement is CREATE, DROP or UNDROP (after leading blanks and comments)."""
    rest = text[_LEADING.match(text).end() :]  # type: ignore[union-attr]  # always matches
    word = rest.split(None, 1)[0].upper() if rest.strip() else ""
    return word in _DDL_WORDS


def _default_classifier(text: str) -> str:
    from ledger.classify import classify

    return classify(text).kind


def statement_kinds(block: BufferedBlock, classifier: Classifier | None = None) -> tuple[str, ...]:
    """The kind of each statement: as ingest classified them, or classified now."""
    statements = block.summary.statements
    if len(block.statement_kinds) == len(statements):
        return block.statement_kinds
    classify = classifier or _default_classifier
    return tuple(classify(s.text) for s in statements)


def _size(data: Any) -> int:
    return OP_OVERHEAD_BYTES + (0 if data is None else len(simpleion.dumps(data, binary=True)))


def _no_size(data: Any) -> int:
    return OP_OVERHEAD_BYTES


def _revision_ops(
    block: BufferedBlock, hashed: Mapping[str, tuple[bytes, Any]]
) -> list[RevisionOp]:
    ops = []
    for summary in block.summary.user_revisions:
        assert summary.document_id is not None
        rev = block.revisions[summary.document_id]
        known = hashed.get(rev.document_id)
        data_hash = rev.data_hash if rev.is_redacted else None if known is None else known[0]
        ops.append(
            RevisionOp(
                table_name=rev.table_name,
                table_id=rev.table_id,
                document_id=rev.document_id,
                version=rev.version,
                data=None if rev.is_redacted else rev.data,
                revision_hash=rev.hash,
                metadata=metadata_struct(rev.metadata) if known is None else known[1],
                data_hash=data_hash,
                redacted=rev.is_redacted,
                down_converted=rev.data is not None and down_converted(rev.stream),
            )
        )
    return ops


def _header(s: BlockSummary) -> dict[str, Any]:
    """The block header fields a ``BlockReplay`` carries for destinations that keep the chain."""
    return {
        "transaction_id": s.transaction_id,
        "committed_at": s.block_timestamp,
        "previous_block_hash": s.previous_block_hash,
        "entries_hash": s.entries_hash,
        "entries_hash_list": s.entries_hash_list,
    }


def _table_names(block: BufferedBlock) -> tuple[tuple[str, str], ...]:
    names = {d.table_id: d.table_name for d in block.summary.documents}
    names.update({r.table_id: r.table_name for r in block.revisions.values()})
    return tuple(sorted(names.items()))


def plan_block(
    block: BufferedBlock,
    limits: Limits,
    *,
    classifier: Classifier | None = None,
    force_revisions: bool = False,
    hashed: Mapping[str, tuple[bytes, Any]] | None = None,
) -> Plan:
    """Plan the replay of a complete, verified block under the destination's ``limits``.
    ``force_revisions`` replays it from its revisions whatever its statements (``resolve
    --apply-late``: a late block's statements would run against a newer state). ``hashed``:
    the data hashes and metadata structs verification computed (``Verification.hashed``)."""
    s = block.summary
    bid = s.block_id
    missing = block.missing_revisions
    if missing:
        return Plan.refused(bid, f"block {bid} is missing revisions of {', '.join(missing)}")
    # Revisions the block's statements cannot stand for: redacted ones (replaying the statements
    # would write what was redacted) and down-converted ones not proven by their hash.
    from_revisions = any(
        rev.is_redacted
        or (rev.data is not None and down_converted(rev.stream) and doc_id not in (hashed or {}))
        for doc_id, rev in block.revisions.items()
    )

    kinds = statement_kinds(block, classifier)
    replayed = [(st, kind) for st, kind in zip(s.statements, kinds, strict=True)]
    replayed = [(st, kind) for st, kind in replayed if not is_redaction(st.text)]
    redacted = {r.document_id for r in s.redactions}
    revision_ops = [
        op for op in _revision_ops(block, hashed or {}) if op.document_id not in redacted
    ]
    table_names = _table_names(block)
    doc_cap = None if limits.documents is None else limits.documents - CHECKPOINT_DOCUMENTS
    byte_cap = limits.bytes
    # Serializing revisions to measure them is costly: only when the destination limits bytes.
    size_of = _no_size if byte_cap is None else _size

    if (
        not force_revisions
        and not from_revisions
        and all(kind in STATEMENT_MODE_KINDS for _, kind in replayed)
    ):
        ops = tuple(
            StatementOp(text=st.text, index=st.index) for st, k in replayed if k != "select"
        )
        documents = max(len(revision_ops), len(s.documents))
        size = sum(OP_OVERHEAD_BYTES + len(op.text.encode()) for op in ops) + sum(
            size_of(op.data) for op in revision_ops
        )
        if (doc_cap is None or documents <= doc_cap) and (byte_cap is None or size <= byte_cap):
            replay = BlockReplay(
                block_id=bid,
                ledger=s.ledger,
                address=s.address,
                block_hash=s.block_hash,
                mode="statements",
                ops=ops,
                table_names=table_names,
                revisions=tuple(revision_ops),
                **_header(s),
            )
            return Plan(
                block_id=bid,
                mode="statements",
                replays=(replay,),
                statements=len(ops),
                documents=documents,
                bytes=size,
            )
        # Too big for one transaction: only revisions can be split into resumable parts.

    ddl: list[StatementOp] = []
    for st, kind in replayed:
        if not is_ddl(st.text):
            continue
        if kind == "parameterized":
            return Plan.refused(
                bid, f"block {bid}: DDL statement {st.index} has parameters: {st.text[:80]!r}"
            )
        ddl.append(StatementOp(text=st.text, index=st.index))

    parts: list[list[StatementOp | RevisionOp]] = [list(ddl)]
    part_docs, part_bytes = 0, sum(OP_OVERHEAD_BYTES + len(op.text.encode()) for op in ddl)
    total_bytes = part_bytes
    for op in revision_ops:
        size = size_of(op.data)
        total_bytes += size
        if byte_cap is not None and size > byte_cap:
            return Plan.refused(
                bid,
                f"block {bid}: revision {op.document_id} version {op.version} is {size} bytes, "
                f"over the destination's transaction limit of {byte_cap}",
            )
        full = (doc_cap is not None and part_docs + 1 > doc_cap) or (
            byte_cap is not None and part_bytes + size > byte_cap
        )
        if full and parts[-1]:
            parts.append([])
            part_docs, part_bytes = 0, 0
        parts[-1].append(op)
        part_docs += 1
        part_bytes += size

    n = len(parts)
    replays = tuple(
        BlockReplay(
            block_id=bid,
            ledger=s.ledger,
            address=s.address,
            block_hash=s.block_hash,
            mode="revisions",
            ops=tuple(ops),
            part=None if n == 1 else k,
            parts=None if n == 1 else n,
            table_names=table_names,
            **_header(s),
        )
        for k, ops in enumerate(parts)
    )
    return Plan(
        block_id=bid,
        mode="revisions",
        replays=replays,
        statements=len(ddl),
        revisions=len(revision_ops),
        documents=len(revision_ops),
        bytes=total_bytes,
    )


def fits(plans: Sequence[Plan], limits: Limits) -> bool:
    """True when whole-block plans can share one destination transaction under ``limits``."""
    docs = sum(p.documents for p in plans)
    size = sum(p.bytes for p in plans)
    doc_cap = None if limits.documents is None else limits.documents - CHECKPOINT_DOCUMENTS
    return (doc_cap is None or docs <= doc_cap) and (limits.bytes is None or size <= limits.bytes)
