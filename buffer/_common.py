"""Adapter-independent policy of the settling buffer, shared by ``SqliteBuffer`` and
``OpenSearchBuffer`` so both decide the same way:

- which copy of a record is kept: ``copy_key`` orders copies by ``(arrived_at, origin)`` (unknown
  arrival last, then fingerprint and raw bytes as tie-breakers), ``classify_copy`` says whether a
  copy of a stored id is a duplicate or a conflict and whether it replaces the stored copy;
- when a new record is late (``is_late``);
- how a conflicting copy becomes a rejection (``conflict_rejection``) and which block it flags
  (``concerned_block``);
- how a block summary is flattened to a JSON-able body and rebuilt without parsing Ion
  (``summary_body`` / ``summary_from_body``: amazon.ion 0.9.3 needs milliseconds per record, JSON
  microseconds), and how revision data is kept lossless as Ion binary, written by the faster
  writer of the environment (``encode_data`` /
  ``decode_data``, ``revision_from_parts``);
- time as integer microseconds since the epoch (``to_us`` / ``from_us``), ingest delays;
- which copy of a rejection is kept (``arrival_key``), the conflict a copy makes
  (``conflict_of``), id lists cut into query-sized chunks (``chunks``);
- the canonical ``dump`` shape (``DUMP_KEYS``), so tests read both adapters' dumps alike; each
  adapter hands its rows, named as below, to a ``DumpBuilder``:

  ``blocks``      {block_id: {ledger, strand_id, sequence_no, state, commit_time, transaction_id,
                  block_hash, fingerprint, statements, revisions_expected, statement_kinds,
                  reason, actor, updated_at, purged}}
  ``statements``  {statement_id: {block_id, index, start_time, text, digest, kind, state}}
  ``revisions``   {revision_id: {block_id, document_id, version, fingerprint, late}}
  ``control``     {record_id: {control_type, fingerprint}}
  ``rejected``    {rejection_id: {kind, reason, record_id, block_id, raw_sha256, resolved_at,
                  resolved_by, resolution}}
  ``strands``     {"ledger/strand": {replayed_through, highest_sequence_seen, has_blocks}}
  ``gaps``        [{ledger, strand_id, first, last, passed_at}]
  ``counts``      {blocks: {state: n}, statements, revisions, control, rejected, conflicts, gaps}
  ``provenance``  {record or rejection id: {origin, arrived_at, raw_sha256, arn}}

  Everything but ``provenance`` is content: equal input gives equal content whatever the order,
  repetition or split. ``provenance`` (which copy, from where, when) is equal too when the same
  copies are given, but differs when the same records come through a different KPL grouping.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from amazon.ion import simpleion

from buffer.port import BLOCK_STATES, Incoming, Rejection
from journal.ion_binary import FAST_READER, decode, encode
from journal.records import (
    BlockAddress,
    BlockSummary,
    DocumentInfo,
    RedactedRevision,
    RevisionDetails,
    RevisionMetadata,
    RevisionSummary,
    StatementInfo,
    StreamRecord,
    StreamRef,
)

CONFLICT = "conflict"
DELAY_SAMPLE = 10_000

DUMP_KEYS = (
    "blocks", "statements", "revisions", "control", "rejected", "strands", "gaps", "counts",
    "provenance",
)  # fmt: skip

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


# --- time -----------------------------------------------------------------------------------------


def to_us(value: datetime) -> int:
    """Integer microseconds since the epoch; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // _US


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def opt_us(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


def opt_from_us(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def timestamp_form(value: datetime) -> str | None:
    """What an Ion timestamp carries beyond its instant, as ``"offset_seconds,PRECISION,
    fractional_precision"`` (None for a plain datetime), so ``timestamp_from`` rebuilds it exactly
    (a revision's ``txTime`` is part of what its hash covers)."""
    precision = getattr(value, "precision", None)
    if precision is None:
        return None
    offset = value.utcoffset()
    off = "" if offset is None else str(int(offset.total_seconds()))
    fraction = getattr(value, "fractional_precision", None)
    return f"{off},{precision.name},{'' if fraction is None else int(fraction)}"


def timestamp_from(us: int, form: str | None) -> datetime:
    """The instant ``us`` as an Ion timestamp of ``form`` (``timestamp_form``), else UTC."""
    utc = from_us(us)
    if not form:
        return utc
    from amazon.ion.core import Timestamp, TimestampPrecision

    off, precision, fraction = form.split(",")
    tz = timezone(timedelta(seconds=int(off))) if off else UTC
    local = utc.astimezone(tz)
    rebuilt: datetime = Timestamp(
        local.year, local.month, local.day, local.hour, local.minute, local.second,
        local.microsecond, tzinfo=tz, precision=getattr(TimestampPrecision, precision),
        fractional_precision=int(fraction) if fraction else None,
    )  # fmt: skip
    return rebuilt


def time_text(value: datetime | None) -> str | None:
    """ISO 8601 UTC with microseconds (dump and storage text)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def delay_ms(arrived_at: datetime | None, commit_time: datetime) -> float | None:
    """Ingest delay: arrival − commit, in milliseconds (None when the arrival is unknown)."""
    if arrived_at is None:
        return None
    return (to_us(arrived_at) - to_us(commit_time)) / 1000.0


# --- which copy is kept ---------------------------------------------------------------------------

CopyKey = tuple[int, int, str, str, str]
Outcome = Literal["duplicate", "duplicate-earlier", "conflict", "conflict-earlier"]


def copy_key(arrived_at: datetime | None, origin: str, fingerprint: str, raw: bytes) -> CopyKey:
    """Total order of the copies of one record: the smallest came first in the stream."""
    return stored_copy_key(opt_us(arrived_at), origin, fingerprint, hashlib.sha256(raw).hexdigest())


def stored_copy_key(arrived_us: int | None, origin: str, fingerprint: str, raw_sha: str) -> CopyKey:
    """``copy_key`` from a stored copy's fields (its arrival in microseconds, the SHA-256 of its
    bytes), for a store that does not read the bytes to compare."""
    if arrived_us is None:
        return (1, 0, str(origin), str(fingerprint), str(raw_sha))
    return (0, int(arrived_us), str(origin), str(fingerprint), str(raw_sha))


def incoming_key(item: Incoming) -> CopyKey:
    return copy_key(item.arrived_at, item.origin, item.fingerprint, item.raw)


def classify_copy(
    *,
    stored_fingerprint: str,
    stored_key: CopyKey,
    fingerprint: str,
    key: CopyKey,
    replaceable: bool,
) -> Outcome:
    """A copy of an id that is already stored.

    ``duplicate``: same content, the stored copy stays as it is; ``duplicate-earlier``: same
    content, this copy came first: keep its provenance (raw bytes, origin, arrival, ARN) instead.
    ``conflict``: other content, this copy goes to the rejected records; ``conflict-earlier``:
    other content and this copy came first while the stored one is still ``replaceable`` (its
    block not released): this copy is stored, the stored one goes to the rejected records, and a
    rejection kept earlier for this copy's content (a later copy of it that lost to the stored
    one) is dropped: those copies are duplicates of the stored copy now.
    """
    earlier = key < stored_key
    if fingerprint == stored_fingerprint:
        return "duplicate-earlier" if earlier else "duplicate"
    return "conflict-earlier" if earlier and replaceable else "conflict"


def is_late(
    sequence_no: int, replayed_through: int | None, gaps: Iterable[tuple[int, int]]
) -> bool:
    """A new record of a block at or below the strand's replayed mark, or inside a passed gap."""
    if replayed_through is not None and sequence_no <= replayed_through:
        return True
    return any(first <= sequence_no <= last for first, last in gaps)


def arrival_key(arrived_us: int | None, origin: str, raw_sha: str) -> tuple[int, int, str, str]:
    """Which copy of a rejection is kept: the earliest arrival (unknown last), then origin, then
    the bytes (their SHA-256)."""
    return (1, 0, origin, raw_sha) if arrived_us is None else (0, arrived_us, origin, raw_sha)


def rejection_key(r: Rejection) -> tuple[int, int, str, str]:
    return arrival_key(opt_us(r.arrived_at), r.origin, sha256_hex(r.raw) or "")


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """``items`` in lists of at most ``size`` (ids per query)."""
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def concerned_block(record: StreamRecord) -> str | None:
    """The block a record belongs to (None for a control record)."""
    if isinstance(record, BlockSummary | RevisionDetails):
        return record.block_id
    return None


def conflict_rejection(
    *, record_id: str, fingerprint: str, raw: bytes, origin: str, arrived_at: datetime | None
) -> Rejection:
    """The rejection kept for a conflicting copy. Its reason depends on that copy's content alone
    (its id, ``Rejection.rejection_id``, leaves the bytes out), so the set of rejections does not
    depend on the order the copies came in; of several copies of one conflicting content, the
    earliest ``copy_key`` is kept, as for duplicates."""
    return Rejection(
        origin=origin,
        raw=raw,
        kind=CONFLICT,
        reason=(
            f"conflicting copy of {record_id}: same id, different content "
            f"(this copy's fingerprint {fingerprint}); the first copy is kept"
        ),
        arrived_at=arrived_at,
        record_id=record_id,
    )


def conflict_of(item: Incoming, record_id: str) -> Rejection:
    """The rejection ``item`` makes when it conflicts with the stored copy of ``record_id``."""
    return conflict_rejection(
        record_id=record_id,
        fingerprint=item.fingerprint,
        raw=item.raw,
        origin=item.origin,
        arrived_at=item.arrived_at,
    )


# --- block summary body ---------------------------------------------------------------------------


def summary_body(summary: BlockSummary) -> dict[str, Any]:
    """The block summary without its stream (kept apart: it is provenance) as JSON-able data."""
    return {
        "strand": summary.address.strand_id,
        "seq": summary.address.sequence_no,
        "tx": summary.transaction_id,
        "ts": to_us(summary.block_timestamp),
        "bh": summary.block_hash.hex(),
        "eh": summary.entries_hash.hex(),
        "pbh": summary.previous_block_hash.hex(),
        "ehl": [h.hex() for h in summary.entries_hash_list],
        "st": [[s.text, to_us(s.start_time), s.digest.hex()] for s in summary.statements],
        "docs": [
            [d.document_id, d.table_name, d.table_id, list(d.statements)] for d in summary.documents
        ],
        "rs": [[r.hash.hex(), r.document_id] for r in summary.revision_summaries],
        "red": [
            [r.address.strand_id, r.address.sequence_no, r.table_id, r.document_id, r.version]
            for r in summary.redactions
        ],
    }


def summary_body_json(summary: BlockSummary) -> str:
    return json.dumps(summary_body(summary), separators=(",", ":"), ensure_ascii=False)


def summary_from_body(body: Mapping[str, Any] | str, arn: str) -> BlockSummary:
    """Rebuild the ``BlockSummary`` (timestamps as UTC datetimes, microsecond precision)."""
    b: Mapping[str, Any] = json.loads(body) if isinstance(body, str) else body
    return BlockSummary(
        stream=StreamRef.from_arn(arn),
        address=BlockAddress(strand_id=b["strand"], sequence_no=b["seq"]),
        transaction_id=b["tx"],
        block_timestamp=from_us(b["ts"]),
        block_hash=bytes.fromhex(b["bh"]),
        entries_hash=bytes.fromhex(b["eh"]),
        previous_block_hash=bytes.fromhex(b["pbh"]),
        entries_hash_list=tuple(bytes.fromhex(h) for h in b["ehl"]),
        statements=tuple(
            StatementInfo(index=i, text=t, start_time=from_us(us), digest=bytes.fromhex(d))
            for i, (t, us, d) in enumerate(b["st"])
        ),
        documents=tuple(
            DocumentInfo(document_id=i, table_name=n, table_id=t, statements=tuple(s))
            for i, n, t, s in b["docs"]
        ),
        revision_summaries=tuple(
            RevisionSummary(hash=bytes.fromhex(h), document_id=d) for h, d in b["rs"]
        ),
        redactions=tuple(
            RedactedRevision(
                address=BlockAddress(strand_id=s, sequence_no=q),
                table_id=t,
                document_id=d,
                version=v,
            )
            for s, q, t, d, v in b["red"]
        ),
    )


def user_revision_hashes(summary: BlockSummary) -> dict[str, bytes]:
    """Document id → revision hash of the summary's user revisions."""
    return {r.document_id: r.hash for r in summary.user_revisions if r.document_id is not None}


# --- revisions ------------------------------------------------------------------------------------


def _simpleion_dumps(data: Any) -> bytes:
    encoded: bytes = simpleion.dumps(data, binary=True)
    return encoded


# The faster Ion binary writer here: the project's own (``journal.ion_binary.encode``, ~20x
# ``simpleion.dumps`` under amazon.ion 0.9.3), unless amazon.ion writes through its C extension
# (0.15 in the ingest Lambda, ~3x faster still). Both write Ion 1.0 binary, which ``decode_data``
# reads whichever wrote it: the stored format is the same, buffers written before read unchanged.
ENCODE: Callable[[Any], bytes] = encode if FAST_READER else _simpleion_dumps


def encode_data(data: Any) -> bytes | None:
    """A revision's document as self-contained Ion binary (None: deletion or redacted)."""
    return None if data is None else ENCODE(data)


def decode_data(data: bytes | None) -> Any:
    """A revision's document back from its Ion binary: what ``simpleion.loads`` gives, read by
    ``journal.ion_binary.decode`` (fast with amazon.ion 0.9.3)."""
    return None if data is None else decode(data)


@dataclass(frozen=True, slots=True, kw_only=True)
class RevisionParts:
    """A revision flattened for storage; ``data`` is Ion binary."""

    arn: str
    table_name: str
    table_id: str
    strand_id: str
    sequence_no: int
    hash: bytes
    data: bytes | None
    data_hash: bytes | None
    document_id: str
    version: int
    tx_time_us: int
    tx_id: str
    tx_time_form: str | None = None  # ``timestamp_form`` of txTime: its Ion precision and offset

    @classmethod
    def of(cls, rev: RevisionDetails, arn: str | None = None) -> RevisionParts:
        return cls(
            arn=arn or rev.stream.arn,
            table_name=rev.table_name,
            table_id=rev.table_id,
            strand_id=rev.address.strand_id,
            sequence_no=rev.address.sequence_no,
            hash=rev.hash,
            data=rev.data_ion if rev.data_ion is not None else encode_data(rev.data),
            data_hash=rev.data_hash,
            document_id=rev.metadata.id,
            version=rev.metadata.version,
            tx_time_us=to_us(rev.metadata.tx_time),
            tx_id=rev.metadata.tx_id,
            tx_time_form=timestamp_form(rev.metadata.tx_time),
        )

    def revision(self) -> RevisionDetails:
        return RevisionDetails(
            stream=StreamRef.from_arn(self.arn),
            table_name=self.table_name,
            table_id=self.table_id,
            address=BlockAddress(strand_id=self.strand_id, sequence_no=self.sequence_no),
            hash=self.hash,
            data=decode_data(self.data),
            data_hash=self.data_hash,
            metadata=RevisionMetadata(
                id=self.document_id,
                version=self.version,
                tx_time=timestamp_from(self.tx_time_us, self.tx_time_form),
                tx_id=self.tx_id,
            ),
        )


def revision_from(values: Mapping[str, Any]) -> RevisionDetails:
    """A revision from its stored fields, named as ``RevisionParts``'s and decoded (bytes for
    ``hash``, ``data`` and ``data_hash``); ``tx_time_form`` may be absent (then UTC)."""
    return RevisionParts(
        arn=values["arn"],
        table_name=values["table_name"],
        table_id=values["table_id"],
        strand_id=values["strand_id"],
        sequence_no=int(values["sequence_no"]),
        hash=values["hash"],
        data=values["data"],
        data_hash=values["data_hash"],
        document_id=values["document_id"],
        version=int(values["version"]),
        tx_time_us=int(values["tx_time_us"]),
        tx_id=values["tx_id"],
        tx_time_form=values.get("tx_time_form"),
    ).revision()


def pick_revisions(
    summary: BlockSummary, revisions: Iterable[RevisionDetails]
) -> dict[str, RevisionDetails]:
    """Document id → revision for a block. Should two revisions of one document claim the block,
    the one whose hash the summary names wins, else the highest version."""
    wanted = user_revision_hashes(summary)
    chosen: dict[str, RevisionDetails] = {}
    for rev in revisions:
        doc = rev.document_id
        old = chosen.get(doc)
        if old is None:
            chosen[doc] = rev
            continue
        old_ok, new_ok = old.hash == wanted.get(doc), rev.hash == wanted.get(doc)
        if (new_ok, rev.version) > (old_ok, old.version):
            chosen[doc] = rev
    return chosen


def sha256_hex(raw: bytes | None) -> str | None:
    return None if raw is None else hashlib.sha256(raw).hexdigest()


def assemble_dump(
    *,
    blocks: Mapping[str, Mapping[str, Any]],
    statements: Mapping[str, Any],
    revisions: Mapping[str, Any],
    control: Mapping[str, Any],
    rejected: Mapping[str, Mapping[str, Any]],
    strands: Mapping[str, Any],
    gaps: list[Any],
    provenance: Mapping[str, Any],
) -> dict[str, Any]:
    """The canonical ``dump()`` both adapters return, from their rows keyed by id: every map
    sorted by key, and the counts derived from the rows (so two adapters holding the same records
    dump equal)."""
    by_state = Counter(b["state"] for b in blocks.values())
    counts = {
        "blocks": {s: by_state.get(s, 0) for s in BLOCK_STATES},
        "statements": len(statements),
        "revisions": len(revisions),
        "control": len(control),
        "rejected": sum(1 for r in rejected.values() if r["kind"] != CONFLICT),
        "conflicts": sum(1 for r in rejected.values() if r["kind"] == CONFLICT),
        "gaps": len(gaps),
    }

    def ordered(d: Mapping[str, Any]) -> dict[str, Any]:
        return {k: d[k] for k in sorted(d)}

    return {
        "blocks": ordered(blocks),
        "statements": ordered(statements),
        "revisions": ordered(revisions),
        "control": ordered(control),
        "rejected": ordered(rejected),
        "strands": ordered(strands),
        "gaps": gaps,
        "counts": counts,
        "provenance": ordered(provenance),
    }


class DumpBuilder:
    """Collects an adapter's rows into the canonical ``dump`` (``assemble_dump``).

    Rows are mappings named as the OpenSearch documents are: a block's ``block_id, ledger,
    strand_id, sequence_no, state, commit_us, transaction_id, block_hash`` (hex), ``fingerprint,
    statements, revisions_expected, statement_kinds`` (a list), ``reason, actor, updated_us,
    purged``; a statement's ``block_id, index, start_us, text, digest`` (hex), ``kind, state``; a
    revision's ``revision_id, block_id, document_id, version, fingerprint, late``; a control
    record's ``record_id, control_type, fingerprint``; a rejection's ``rejection_id, kind, reason,
    record_id, block_id, raw_sha256, resolved_us, resolved_by, resolution``. Stored records also
    carry their provenance: ``origin, arrived_us, raw_sha256, arn`` (a rejection: ``origin,
    arrived_us``). Optional fields may be absent."""

    __slots__ = (
        "blocks",
        "control",
        "gaps",
        "provenance",
        "rejected",
        "revisions",
        "statements",
        "strands",
    )  # fmt: skip

    def __init__(self) -> None:
        self.blocks: dict[str, Any] = {}
        self.statements: dict[str, Any] = {}
        self.revisions: dict[str, Any] = {}
        self.control: dict[str, Any] = {}
        self.rejected: dict[str, Any] = {}
        self.strands: dict[str, Any] = {}
        self.gaps: list[Any] = []
        self.provenance: dict[str, Any] = {}

    @staticmethod
    def _provenance(row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "origin": row["origin"],
            "arrived_at": time_text(opt_from_us(row.get("arrived_us"))),
            "raw_sha256": row["raw_sha256"],
            "arn": row["arn"],
        }

    def block(self, h: Mapping[str, Any]) -> None:
        self.blocks[h["block_id"]] = {
            "ledger": h["ledger"],
            "strand_id": h["strand_id"],
            "sequence_no": int(h["sequence_no"]),
            "state": h["state"],
            "commit_time": time_text(from_us(int(h["commit_us"]))),
            "transaction_id": h["transaction_id"],
            "block_hash": h["block_hash"],
            "fingerprint": h["fingerprint"],
            "statements": int(h["statements"]),
            "revisions_expected": int(h["revisions_expected"]),
            "statement_kinds": list(h.get("statement_kinds") or []),
            "reason": h.get("reason"),
            "actor": h.get("actor"),
            "updated_at": time_text(opt_from_us(h.get("updated_us"))),
            "purged": bool(h.get("purged")),
        }
        self.provenance[h["block_id"]] = self._provenance(h)

    def statement(self, s: Mapping[str, Any]) -> None:
        self.statements[f"{s['block_id']}/{s['index']}"] = {
            "block_id": s["block_id"],
            "index": int(s["index"]),
            "start_time": time_text(from_us(int(s["start_us"]))),
            "text": s["text"],
            "digest": s["digest"],
            "kind": s.get("kind"),
            "state": s["state"],
        }

    def revision(self, r: Mapping[str, Any]) -> None:
        self.revisions[r["revision_id"]] = {
            "block_id": r["block_id"],
            "document_id": r["document_id"],
            "version": int(r["version"]),
            "fingerprint": r["fingerprint"],
            "late": bool(r["late"]),
        }
        self.provenance[r["revision_id"]] = self._provenance(r)

    def control_record(self, r: Mapping[str, Any]) -> None:
        self.control[r["record_id"]] = {
            "control_type": r["control_type"],
            "fingerprint": r["fingerprint"],
        }
        self.provenance[r["record_id"]] = self._provenance(r)

    def rejection(self, r: Mapping[str, Any]) -> None:
        self.rejected[r["rejection_id"]] = {
            "kind": r["kind"],
            "reason": r["reason"],
            "record_id": r.get("record_id"),
            "block_id": r.get("block_id"),
            "raw_sha256": r["raw_sha256"],
            "resolved_at": time_text(opt_from_us(r.get("resolved_us"))),
            "resolved_by": r.get("resolved_by"),
            "resolution": r.get("resolution"),
        }
        self.provenance[r["rejection_id"]] = {
            "origin": r["origin"],
            "arrived_at": time_text(opt_from_us(r.get("arrived_us"))),
        }

    def strand(
        self, key: str, replayed_through: int | None, highest: int | None, has_blocks: bool
    ) -> None:
        """A strand, by its key ``"ledger/strand_id"``."""
        self.strands[key] = {
            "replayed_through": replayed_through,
            "highest_sequence_seen": highest,
            "has_blocks": has_blocks,
        }

    def gap(self, ledger: str, strand_id: str, first: int, last: int, passed_at: datetime) -> None:
        """A gap; call in ``(ledger, strand_id, first, last)`` order."""
        self.gaps.append(
            {
                "ledger": ledger,
                "strand_id": strand_id,
                "first": first,
                "last": last,
                "passed_at": time_text(passed_at),
            }
        )

    def dump(self) -> dict[str, Any]:
        return assemble_dump(
            blocks=self.blocks,
            statements=self.statements,
            revisions=self.revisions,
            control=self.control,
            rejected=self.rejected,
            strands=self.strands,
            gaps=self.gaps,
            provenance=self.provenance,
        )
