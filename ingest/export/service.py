"""The export ingest core: every export under a prefix into any ``SettlingBuffer``, verified.

``ingest_export(buffer, store, ledger)`` finds the exports (``ingest.export.manifest``), oldest
first, and reads each strand's data objects in the order of its completed manifest, one object
at a time (never the whole export in memory). Every block is checked as a whole
(``ingest.export.blocks``) and linked to the block before it: inside an export each block must be
the very next one (``sequenceNo`` + 1, ``previousBlockHash`` = that block's ``blockHash``), across
objects too; the first block of a strand in an export is linked to the buffered block before it
when the buffer holds one (an earlier export, or the stream). The records it stands for enter the
buffer through its port, one ``put`` per object, built and decoded exactly as stream records are
(``ingest.decode.decode_user_record``), so the same block from the stream is a duplicate.

Bad input is kept as a rejection (kind ``export``) whose reason names the object key and the block
address, and counted: a damaged or truncated object, a block failing a check, a broken link, an
object listed in a manifest but missing, an object in no manifest, an export of another ledger.
The good blocks before it are stored; nothing after a broken link on that strand is read.
Time is never read here: the caller measures rates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from buffer.port import Incoming, PutReport, Rejection, SettlingBuffer
from ingest.decode import decode_user_record
from ingest.export.blocks import BlockProblem, ExportedBlock, address_of, check_block, from_json
from ingest.export.manifest import OBJECT_RANGE, Export, find_exports
from ingest.export.objects import ObjectDamage, read_object
from ingest.export.origin import export_stream_id
from ingest.export.store import ExportStore, MissingObject
from journal.errors import InputError
from journal.ion_binary import encode
from journal.records import BlockAddress, block_id
from runtime.errors import TransientError

log = logging.getLogger(__name__)

_LEDGER_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:qldb:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"ledger/(?P<name>[A-Za-z0-9_-]{1,32})$"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRef:
    """The ledger an export belongs to. A manifest names the ledger but not its region or account,
    which every deterministic id holds (DESIGN.md), so the operator gives the ledger's ARN."""

    region: str
    account: str
    name: str

    @classmethod
    def from_arn(cls, arn: str) -> LedgerRef:
        m = _LEDGER_ARN.match(arn)
        if m is None:
            raise InputError(
                f"{arn[:120]!r} is not a QLDB ledger ARN (arn:aws:qldb:REGION:ACCOUNT:ledger/NAME)"
            )
        return cls(region=m["region"], account=m["account"], name=m["name"])

    @property
    def key(self) -> str:
        return f"{self.region}:{self.account}:{self.name}"

    def stream_arn(self, export_id: str, fmt: str = "ION_TEXT") -> str:
        """The ``qldbStreamArn`` the export's records carry: ``export`` + the export id
        (``exportjson`` + the id for a JSON Lines export, ``ingest.export.origin``) stands where a
        stream id would, so ids and fingerprints (which leave the stream id out) equal the
        stream's, and a buffered record still tells which source it came from
        (``ingest.export.continuation``) and whether its documents were down-converted."""
        return (
            f"arn:aws:qldb:{self.region}:{self.account}:stream/{self.name}/"
            f"{export_stream_id(export_id, fmt)}"
        )


@dataclass(slots=True)
class StrandSpan:
    """What one export delivered of one strand."""

    export_id: str
    strand_id: str
    first: int | None = None
    last: int | None = None
    blocks: int = 0
    broken: str | None = None


@dataclass(slots=True)
class ExportReport:
    """What an export ingest did (``as_json`` adds to the ``ingest --json`` keys)."""

    exports: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    spans: list[StrandSpan] = field(default_factory=list)
    objects: int = 0
    objects_total: int = 0
    objects_not_read: int = 0
    blocks: int = 0
    records: int = 0
    put: PutReport = field(default_factory=PutReport)
    problems: list[tuple[str, str]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    transient: str | None = None

    @property
    def down_converted(self) -> list[str]:
        """Exports in JSON Lines: their documents lost their Ion types."""
        return [e for e, f in self.formats.items() if f == "JSON"]

    @property
    def needs_attention(self) -> bool:
        return bool(self.problems or self.put.rejected or self.put.conflicts or self.put.late)

    def as_json(self) -> dict[str, object]:
        return {
            "exports": [{"export_id": e, "format": self.formats.get(e)} for e in self.exports],
            "objects": self.objects,
            "objects_not_read": self.objects_not_read,
            "blocks": self.blocks,
            "strands": [
                {
                    "export_id": s.export_id,
                    "strand_id": s.strand_id,
                    "first_block": None if s.first is None else f"{s.strand_id}/{s.first}",
                    "last_block": None if s.last is None else f"{s.strand_id}/{s.last}",
                    "blocks": s.blocks,
                    "broken": s.broken,
                }
                for s in self.spans
            ],
            "problems": [{"origin": o, "reason": r} for o, r in self.problems],
            "gaps": self.gaps,
            "down_converted": self.down_converted,
        }


Progress = Callable[[ExportReport], None]
"""Called after each object with the report so far (objects, objects_total, blocks)."""


class _Stop(Exception):
    pass


class _Run:
    def __init__(
        self,
        buffer: SettlingBuffer,
        store: ExportStore,
        ledger: LedgerRef,
        progress: Progress | None = None,
    ) -> None:
        self.buffer, self.store, self.ledger = buffer, store, ledger
        self.progress = progress
        self.report = ExportReport()
        self.broken_strands: set[str] = set()

    def put(self, records: list[Incoming], rejections: list[Rejection]) -> None:
        """Store one object's records (or a problem's rejection), then report progress."""
        if records or rejections:
            try:
                put = self.buffer.put(records, rejections)
            except TransientError as exc:
                self.report.transient = str(exc)
                raise _Stop from None
            self.report.put.add(put)
            self.report.records += len(records) + len(rejections)
        if self.progress is not None:
            self.progress(self.report)

    def problem(self, origin: str, reason: str, raw: bytes) -> Rejection:
        log.warning("export: %s: %s", origin, reason)
        self.report.problems.append((origin, reason))
        return Rejection(origin=origin, raw=raw, kind="export", reason=reason)

    def previous_hash(self, strand: str, seq: int) -> bytes | None:
        if seq == 0:
            return None
        found = self.buffer.get_block(block_id(self.ledger.key, BlockAddress(strand, seq - 1)))
        return None if found is None else found.summary.block_hash

    def strand(self, export: Export, strand_id: str, keys: Iterable[str]) -> None:
        span = StrandSpan(export_id=export.export_id, strand_id=strand_id)
        self.report.spans.append(span)
        last: ExportedBlock | None = None
        keys = list(keys)
        for n, key in enumerate(keys):
            if strand_id in self.broken_strands:
                self.report.objects_not_read += len(keys) - n
                return
            rel = export.started.relative(key)
            rejections: list[Rejection] = []
            records: list[Incoming] = []
            try:
                data = self.store.read(rel)
            except MissingObject:
                rejections.append(
                    self.problem(
                        f"{self.store.location}/{rel}",
                        f"object {key} is listed in {export.export_id}'s completed manifest but "
                        f"missing; the blocks after "
                        f"{strand_id}/{last.sequence_no if last else '?'} were not read",
                        key.encode(),
                    )
                )
                self._break(span, strand_id, "missing object")
                self.put(records, rejections)
                continue
            self.report.objects += 1
            fmt, items = read_object(data)
            self.report.formats.setdefault(export.export_id, fmt)
            # Each object's records carry its format: JSON Lines ones are marked down-converted.
            arn = self.ledger.stream_arn(export.export_id, fmt)
            first_in_object: int | None = None
            for item in items:
                origin = f"{key}#{item.index}"
                after = f"after block {strand_id}/{last.sequence_no}" if last else "at its start"
                if isinstance(item, ObjectDamage):
                    rejections.append(
                        self.problem(
                            origin, f"object {key} is damaged {after}: {item.reason}", item.raw
                        )
                    )
                    self._break(span, strand_id, "damaged object")
                    break
                value: Any = item.value
                raw = item.raw if fmt == "JSON" else b""
                addr = address_of(value)
                try:
                    if fmt == "JSON":
                        value = from_json(value)
                    block = check_block(value, arn)
                    if block.strand_id != strand_id:
                        raise BlockProblem(f"is on strand {block.strand_id}, not {strand_id}")
                    self._link(last, block)
                except BlockProblem as exc:
                    if not raw:
                        try:
                            raw = encode(value)
                        except Exception:
                            raw = repr(value).encode("utf-8", "replace")[:100_000]
                    rejections.append(
                        self.problem(origin, f"object {key} block {addr}: {exc}", raw)
                    )
                    self._break(span, strand_id, str(exc))
                    break
                if last is None:
                    self._link_to_buffer(block, span)
                last = block
                first_in_object = block.sequence_no if first_in_object is None else first_in_object
                span.first = block.sequence_no if span.first is None else span.first
                span.last = block.sequence_no
                span.blocks += 1
                self.report.blocks += 1
                for j, rec in enumerate(block.records):
                    decoded = decode_user_record(encode(rec), origin=f"{origin}/{j}")
                    if isinstance(decoded, Incoming):
                        records.append(decoded)
                    else:
                        rejections.append(decoded)
            else:
                m = OBJECT_RANGE.search(key)
                if m is not None and (
                    first_in_object != int(m["first"])
                    or (last is not None and last.sequence_no != int(m["last"]))
                ):
                    got = f"{first_in_object}-{last.sequence_no if last else None}"
                    rejections.append(
                        self.problem(
                            key,
                            f"object {key} holds blocks {got}, its name says "
                            f"{m['first']}-{m['last']} (truncated?); nothing after block "
                            f"{strand_id}/{last.sequence_no if last else '?'} was read",
                            key.encode(),
                        )
                    )
                    self._break(span, strand_id, "object shorter than its name")
            self.put(records, rejections)

    def _break(self, span: StrandSpan, strand_id: str, why: str) -> None:
        span.broken = span.broken or why
        self.broken_strands.add(strand_id)

    @staticmethod
    def _link(last: ExportedBlock | None, block: ExportedBlock) -> None:
        if last is None:
            return
        if block.sequence_no != last.sequence_no + 1:
            raise BlockProblem(
                f"follows block {last.address} (expected sequenceNo {last.sequence_no + 1})"
            )
        if block.previous_block_hash != last.block_hash:
            raise BlockProblem(
                f"previousBlockHash {block.previous_block_hash.hex()[:16]}… is not the blockHash "
                f"of block {last.address} ({last.block_hash.hex()[:16]}…): the chain is broken"
            )

    def _link_to_buffer(self, block: ExportedBlock, span: StrandSpan) -> None:
        before = self.previous_hash(block.strand_id, block.sequence_no)
        if before is None:
            if block.sequence_no > 0:
                self.report.gaps.append(
                    f"export {span.export_id} starts at {block.address}; block "
                    f"{block.strand_id}/{block.sequence_no - 1} is not buffered (not linked)"
                )
            return
        if before != block.previous_block_hash:
            raise BlockProblem(
                f"previousBlockHash does not match the buffered block "
                f"{block.strand_id}/{block.sequence_no - 1}: the chain is broken"
            )


def ingest_export(
    buffer: SettlingBuffer,
    store: ExportStore,
    ledger: LedgerRef,
    progress: Progress | None = None,
) -> ExportReport:
    """Ingest every export under ``store``'s prefix (see the module docstring).

    Raises ``InputError`` before anything is stored when there is no export there, a manifest
    cannot be read, or an export is unfinished (no completed manifest). A ``TransientError`` from
    the buffer stops the ingest (``report.transient``); running it again is harmless."""
    exports, others = find_exports(store)
    run = _Run(buffer, store, ledger, progress)
    report = run.report
    listed = {e.started.relative(k) for e in exports for c in e.completed for k in c.keys}
    report.objects_total = len(listed)
    try:
        strays = [k for k in others if k not in listed]
        if strays:
            run.put(
                [],
                [
                    run.problem(
                        f"{store.location}/{k}",
                        f"object {k} is in no completed manifest of this prefix: not ingested",
                        k.encode(),
                    )
                    for k in strays
                ],
            )
        for export in exports:
            report.exports.append(export.export_id)
            if export.started.ledger_name != ledger.name:
                report.formats[export.export_id] = export.started.output_format
                run.put(
                    [],
                    [
                        run.problem(
                            export.started.key,
                            f"export {export.export_id} is of ledger "
                            f"{export.started.ledger_name!r}, not {ledger.name!r}: not ingested",
                            export.started.key.encode(),
                        )
                    ],
                )
                report.objects_not_read += sum(len(c.keys) for c in export.completed)
                continue
            for completed in export.completed:
                run.strand(export, completed.strand_id, completed.keys)
            report.formats.setdefault(export.export_id, export.started.output_format)
    except _Stop:
        pass
    return report
