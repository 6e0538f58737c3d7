"""Records lost and blocks skipped, measured: what the stream delivered against what the buffer
holds in the end, and what the source committed against what was replayed in order.

The stream side decodes every event file the campaign delivered (the same decoder as the ingest,
in this process) into distinct record ids, with the number of copies delivered. The buffer side
is read the way an operator reads it, through the CLI (``blocks --json``, ``rejected --json``),
and, for the revision ids that no command lists, directly through the buffer's adapter. Every
distinct record must then be stored (in a block of any state; ``late`` when its block is late)
or kept as a rejection; anything else is lost. Copies beyond the first are the duplicates.

Blocks (``account_blocks``): every block of the simulated source ledger that the stream must
carry (all but read-only blocks, which the simulator, like QLDB as far as the evidence goes, does
not stream) must end replayed in order: marked replayed and inside no gap the settler passed.
One that is missing, pending, quarantined, late or skipped, or whose sequence number lies in a
recorded gap (it was passed over, then arrived: applied, if ever, only as a late block), is a
block skipped. Gaps over read-only blocks alone are what the window rule is for, and are counted
apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from buffer.port import Gap, Incoming, Rejection
from compose.roots import open_buffer
from compose.settings import Settings
from ingest.decode import decode_file
from journal.records import BlockSummary, ControlRecord, RevisionDetails, StreamRecord

from .harness import Cli
from .streams import delivered_at


@dataclass(slots=True)
class StreamInventory:
    """Distinct records of the delivered stream: id → kind (block, revision, control), its Ion
    binary, its block; the copies delivered in all; decode rejections."""

    kinds: dict[str, str] = field(default_factory=dict)
    records: dict[str, StreamRecord] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    block_of: dict[str, str] = field(default_factory=dict)
    fingerprints: dict[str, set[str]] = field(default_factory=dict)
    rejection_ids: set[str] = field(default_factory=set)
    first_delay_s: dict[str, float] = field(default_factory=dict)
    copies: int = 0

    def add_files(self, files: Iterable[Path]) -> None:
        """Decode files in delivery order; for simulated event files (whose name holds the
        delivery instant) also note each block summary's first delivery delay."""
        for path in files:
            try:
                at: datetime | None = delivered_at(path)
            except ValueError:
                at = None
            for item in decode_file(path):
                self.add(item)
                rec = getattr(item, "record", None)
                if at is not None and isinstance(rec, BlockSummary):
                    delay = (at - rec.block_timestamp) / timedelta(seconds=1)
                    self.first_delay_s.setdefault(rec.block_id, delay)

    def add(self, item: Incoming | Rejection) -> None:
        if isinstance(item, Rejection):
            self.rejection_ids.add(item.rejection_id)
            return
        rec = item.record
        self.copies += 1
        rid = rec.record_id
        if isinstance(rec, BlockSummary):
            kind, block = "block", rec.block_id
        elif isinstance(rec, RevisionDetails):
            kind, block = "revision", rec.block_id
        else:
            assert isinstance(rec, ControlRecord)
            kind, block = "control", ""
        self.kinds[rid] = kind
        self.records.setdefault(rid, rec)
        self.raw.setdefault(rid, item.raw)
        self.block_of[rid] = block
        self.fingerprints.setdefault(rid, set()).add(item.fingerprint)

    @property
    def distinct(self) -> int:
        return len(self.kinds)

    def records_of(self, block_ids: Iterable[str]) -> list[str]:
        wanted = set(block_ids)
        return sorted(r for r, b in self.block_of.items() if b in wanted)


@dataclass(slots=True)
class BufferInventory:
    blocks: dict[str, str]  # block id -> state
    revisions: set[str]
    rejected: list[dict[str, Any]]
    gaps: list[Gap] = field(default_factory=list)


def read_buffer(cli: Cli, buffer_url: str, env: Mapping[str, str]) -> BufferInventory:
    """The buffer's blocks and rejections through the CLI, its revision ids through the
    adapter (``get_block`` of every block)."""
    blocks_run = cli.run(["blocks", "--buffer", buffer_url, "--json"])
    if blocks_run.code not in (0, 1):
        raise RuntimeError(f"blocks failed: {blocks_run.describe()}")
    blocks = {b["id"]: b["state"] for b in blocks_run.json()["blocks"]}
    rejected_run = cli.run(["rejected", "--buffer", buffer_url, "--json"])
    if rejected_run.code not in (0, 1):
        raise RuntimeError(f"rejected failed: {rejected_run.describe()}")
    rejected = list(rejected_run.json()["rejected"])
    settings = Settings.from_env(env, buffer=buffer_url)
    buffer = open_buffer(
        settings, opensearch_auth="none" if "opensearch:" in buffer_url else "auto"
    )
    revisions: set[str] = set()
    try:
        for block_id in blocks:
            found = buffer.get_block(block_id)
            if found is None:
                raise RuntimeError(f"blocks lists {block_id} but get_block does not find it")
            revisions.update(r.record_id for r in found.revisions.values())
        gaps = list(buffer.gaps())
    finally:
        buffer.close()
    return BufferInventory(blocks=blocks, revisions=revisions, rejected=rejected, gaps=gaps)


@dataclass(slots=True)
class Accounting:
    """Each distinct stream record in exactly one class; ``lost`` are those in none."""

    distinct: int
    delivered: int
    duplicates: int
    stored: int
    late: int
    conflicts: int
    rejected: int
    lost: list[str]
    unexpected: list[str]
    blocks: dict[str, int]
    control_unchecked: int

    @property
    def records_lost(self) -> int:
        return len(self.lost)

    def as_json(self) -> dict[str, Any]:
        return {
            "stream_records": self.distinct,
            "delivered_copies": self.delivered,
            "duplicates": self.duplicates,
            "stored": self.stored,
            "late": self.late,
            "conflicts": self.conflicts,
            "rejected": self.rejected,
            "records_lost": self.records_lost,
            "lost": self.lost[:20],
            "unexpected_in_buffer": len(self.unexpected),
            "blocks_by_state": self.blocks,
            "control_records_unchecked": self.control_unchecked,
        }


def account(stream: StreamInventory, buf: BufferInventory) -> Accounting:
    conflict_ids = {r["record_id"] for r in buf.rejected if r["kind"] == "conflict"}
    kept_rejections = {r["id"] for r in buf.rejected if r["kind"] != "conflict"}
    stored = late = control = 0
    # Input that could not be decoded has no record id: it must be kept as a rejection.
    lost = [f"rejection {r}" for r in sorted(stream.rejection_ids - kept_rejections)]
    for rid, kind in stream.kinds.items():
        if kind == "control":
            control += 1  # no command lists control records; the simulator streams none
            continue
        held = rid in buf.blocks if kind == "block" else rid in buf.revisions
        if not held:
            lost.append(rid)
            continue
        if buf.blocks.get(stream.block_of[rid]) == "late":
            late += 1
        else:
            stored += 1
    known = set(stream.kinds)
    unexpected = sorted((set(buf.blocks) | buf.revisions) - known)
    return Accounting(
        distinct=stream.distinct,
        delivered=stream.copies,
        duplicates=stream.copies - stream.distinct,
        stored=stored,
        late=late,
        conflicts=len(conflict_ids & known),
        rejected=len(stream.rejection_ids & kept_rejections),
        lost=sorted(lost),
        unexpected=unexpected,
        blocks=dict(Counter(buf.blocks.values())),
        control_unchecked=control,
    )


@dataclass(frozen=True, slots=True)
class SourceBlock:
    strand_id: str
    sequence_no: int
    read_only: bool  # it revised nothing (no revisionSummaries): not streamed


def source_blocks(source_db: Path) -> list[SourceBlock]:
    """The blocks of a simulated source ledger (``simulate``'s ``source.db``), read-only ones
    marked as the simulator counts them (a block summary without ``revisionSummaries``: a
    transaction that revised nothing, such as only SELECTs or an UPDATE matching nothing)."""
    from ledger import EmbeddedLedger

    ledger = EmbeddedLedger(source_db)
    try:
        return [
            SourceBlock(
                strand_id=b.strand_id,
                sequence_no=b.sequence_no,
                read_only="revisionSummaries" not in b.payload,
            )
            for b in ledger.blocks()
        ]
    finally:
        ledger.close()


@dataclass(slots=True)
class BlockAccount:
    """The source's blocks against the replica's order: ``skipped`` are the blocks the stream
    must carry that were not replayed in order (strand/sequence, why)."""

    source: int
    read_only: int
    must_replay: int
    replayed_in_order: int
    skipped: list[tuple[str, str]]
    gaps_passed: int
    gaps_over_read_only_only: int

    @property
    def blocks_skipped(self) -> int:
        return len(self.skipped)

    def as_json(self) -> dict[str, Any]:
        return {
            "source_blocks": self.source,
            "read_only_blocks": self.read_only,
            "blocks_to_replay": self.must_replay,
            "replayed_in_order": self.replayed_in_order,
            "blocks_skipped": self.blocks_skipped,
            "skipped": [f"{b}: {why}" for b, why in self.skipped[:20]],
            "gaps_passed": self.gaps_passed,
            "gaps_over_read_only_blocks_only": self.gaps_over_read_only_only,
        }


def account_blocks(
    source: Iterable[SourceBlock], buf: BufferInventory, streamed: Iterable[str] = ()
) -> BlockAccount:
    """Each block the stream must carry (not read-only, or carried anyway: ``streamed`` block
    ids) replayed, and in no gap the settler passed; else skipped."""
    state: dict[tuple[str, int], str] = {}
    for block_id, block_state in buf.blocks.items():
        _, strand, seq = block_id.rsplit("/", 2)
        state[(strand, int(seq))] = block_state
    carried = set()
    for block_id in streamed:
        _, strand, seq = block_id.rsplit("/", 2)
        carried.add((strand, int(seq)))
    blocks = list(source)
    must = [b for b in blocks if not b.read_only or (b.strand_id, b.sequence_no) in carried]
    must_keys = {(b.strand_id, b.sequence_no) for b in must}

    def in_gap(strand: str, seq: int) -> Gap | None:
        return next(
            (g for g in buf.gaps if g.strand_id == strand and g.first <= seq <= g.last), None
        )

    skipped: list[tuple[str, str]] = []
    for b in must:
        key = (b.strand_id, b.sequence_no)
        st = state.get(key)
        gap = in_gap(*key)
        name = f"{b.strand_id}/{b.sequence_no}"
        if st is None:
            skipped.append((name, "never buffered"))
        elif st != "replayed":
            skipped.append((name, f"ends {st}"))
        elif gap is not None:
            skipped.append((name, f"replayed, but inside the gap {gap.first}..{gap.last} passed"))
    over_read_only = sum(
        1
        for g in buf.gaps
        if not any((g.strand_id, seq) in must_keys for seq in range(g.first, g.last + 1))
    )
    return BlockAccount(
        source=len(blocks),
        read_only=sum(1 for b in blocks if b.read_only),
        must_replay=len(must),
        replayed_in_order=len(must) - len(skipped),
        skipped=skipped,
        gaps_passed=len(buf.gaps),
        gaps_over_read_only_only=over_read_only,
    )
