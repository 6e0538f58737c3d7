"""The ingest core: decoded items into the settling buffer, in bounded batches, with a report.

``ingest_items`` is what the Lambda handler and the CLI share: it puts ``Incoming`` records and
``Rejection`` items into any ``SettlingBuffer`` in batches of at most ``batch_size``, adds up the
buffer's ``PutReport``s, counts what it received by record type, and measures the ingest delay
(arrival − commit) and the out-of-orderness (highest sequence number seen so far on the strand −
the record's) for metrics. A ``TransientError`` from the buffer stops it: the report says from
which item on nothing was stored (``unstored_from``), so the caller can have exactly those
retried. Time is never read here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from buffer.port import Incoming, PutReport, Rejection, SettlingBuffer
from ingest.decode import DecodedItem, decode_file
from journal.errors import InputError
from journal.records import BlockSummary, RevisionDetails
from runtime import deadline
from runtime.distribution import distribution
from runtime.errors import TransientError

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500

Progress = Callable[[int, int, int], None]
"""Called with (bytes done, bytes in all, records received so far) as files are ingested."""


@dataclass(slots=True)
class IngestReport:
    """What an ingest did. ``records`` counts every item received (records and rejections);
    ``put`` sums the buffer's reports; ``received`` counts by record type (``CONTROL``,
    ``BLOCK_SUMMARY``, ``REVISION_DETAILS``) and ``rejected`` by kind of rejection.

    ``unstored_from`` is the index (into the items given) of the first item not stored because
    of ``transient`` (a ``TransientError``); None when everything was stored. ``unreadable``
    lists the files that were not input at all (``ingest_paths``)."""

    records: int = 0
    put: PutReport = field(default_factory=PutReport)
    received: dict[str, int] = field(default_factory=dict)
    rejected_by_kind: dict[str, int] = field(default_factory=dict)
    ingest_delays_ms: list[float] = field(default_factory=list)
    out_of_orderness: list[int] = field(default_factory=list)
    unstored_from: int | None = None
    transient: str | None = None
    files: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        """Something an operator should look at: rejected records, conflicts, or late records
        (applied only by an operator's ``resolve --apply-late``)."""
        return bool(self.put.rejected or self.put.conflicts or self.put.late)

    def as_json(self) -> dict[str, object]:
        """The ``qldb-settle ingest --json`` object (DESIGN.md keys, plus ``late``, the two
        distributions and ``unreadable``)."""
        return {
            "records": self.records,
            "stored": dict(self.put.stored),
            "duplicates": self.put.duplicates,
            "conflicts": self.put.conflicts,
            "rejected": self.put.rejected,
            "late": self.put.late,
            "ingest_delay_ms": distribution(self.ingest_delays_ms),
            "out_of_orderness": distribution([float(v) for v in self.out_of_orderness]),
            "unreadable": [{"file": f, "reason": r} for f, r in self.unreadable],
        }


class _Ingestor:
    """Accumulates one report over several calls (``ingest_paths``: across files)."""

    def __init__(
        self,
        buffer: SettlingBuffer,
        batch_size: int,
        highest_seen: Mapping[tuple[str, str], int] | None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.buffer = buffer
        self.batch_size = batch_size
        self.report = IngestReport()
        self.highest: dict[tuple[str, str], int] = dict(highest_seen or {})

    def _observe(self, item: DecodedItem) -> None:
        r = self.report
        if isinstance(item, Rejection):
            r.rejected_by_kind[item.kind] = r.rejected_by_kind.get(item.kind, 0) + 1
            return
        rec = item.record
        r.received[rec.record_type] = r.received.get(rec.record_type, 0) + 1
        if isinstance(rec, BlockSummary | RevisionDetails):
            if item.arrived_at is not None:
                committed = (
                    rec.block_timestamp if isinstance(rec, BlockSummary) else rec.metadata.tx_time
                )
                r.ingest_delays_ms.append((item.arrived_at - committed).total_seconds() * 1000)
            key = (rec.ledger, rec.address.strand_id)
            seq = rec.address.sequence_no
            highest = max(self.highest.get(key, seq), seq)
            self.highest[key] = highest
            r.out_of_orderness.append(highest - seq)

    def _batches(self, n: int, units: Sequence[int] | None) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each put: at most ``batch_size`` items, made of whole units (a
        unit larger than a batch is a batch of its own)."""
        if units is None:
            for start in range(0, n, self.batch_size):
                yield start, min(n, start + self.batch_size)
            return
        if sum(units) != n or any(u < 0 for u in units):
            raise ValueError(f"units {list(units)[:8]}... do not add up to the {n} items")
        start = end = 0
        for size in units:
            if end > start and end - start + size > self.batch_size:
                yield start, end
                start = end
            end += size
        if end > start:
            yield start, end

    def add(self, items: Sequence[DecodedItem], units: Sequence[int] | None = None) -> bool:
        """Put ``items``; False when a transient failure stopped it (see the report)."""
        r = self.report
        base = r.records
        for start, end in self._batches(len(items), units):
            batch = items[start:end]
            records = [i for i in batch if isinstance(i, Incoming)]
            rejections = [i for i in batch if isinstance(i, Rejection)]
            try:
                deadline.check(f"putting items {base + start}-{base + end - 1}")
                put = self.buffer.put(records, rejections)
            except TransientError as exc:
                log.warning("buffer unavailable after %d items: %s", base + start, exc)
                r.unstored_from = base + start
                r.transient = str(exc)
                return False
            r.put.add(put)
            r.records += len(batch)
            for item in batch:
                self._observe(item)
        return True


def ingest_items(
    buffer: SettlingBuffer,
    items: Sequence[DecodedItem],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    highest_seen: Mapping[tuple[str, str], int] | None = None,
    units: Sequence[int] | None = None,
) -> IngestReport:
    """Put decoded items into ``buffer`` in order, in batches of at most ``batch_size``.

    ``highest_seen`` seeds the out-of-orderness measure with the highest sequence number already
    seen per (ledger, strandId); without it the measure is relative to these items. Stops at the
    first ``TransientError`` (``report.unstored_from``, ``report.transient``), the invocation's
    deadline included (``runtime.deadline``); never raises it.

    ``units`` (the number of items of each Kinesis record, in order) makes every batch whole
    records: then ``unstored_from`` is the first item of a record, and the report counts exactly
    the records stored in full, the ones the caller acknowledges. A record that is retried is
    thus counted once, by the invocation that acknowledges it, not again on each retry.
    """
    ingestor = _Ingestor(buffer, batch_size, highest_seen)
    ingestor.add(items, units)
    return ingestor.report


def input_files(paths: Iterable[Path | str]) -> list[Path]:
    """The files to ingest: each path as given, directories walked recursively in sorted order
    (hidden files and folders, whose name starts with a dot, are left out). Raises
    ``InputError`` naming a path that does not exist."""
    out: list[Path] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            out.extend(
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        elif p.exists():
            out.append(p)
        else:
            raise InputError(f"{given}: no such file or directory")
    return out


def ingest_paths(
    buffer: SettlingBuffer,
    paths: Iterable[Path | str],
    progress: Progress | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> IngestReport:
    """Ingest files and directories (Lambda Kinesis events, Ion files, Firehose objects).

    A missing path raises ``InputError`` before anything is stored. A file that is not input at
    all is listed in ``report.unreadable`` and the others are still ingested. A transient
    failure stops the ingest (``report.transient``); what was stored stays stored, and running
    it again is harmless (puts are idempotent).
    """
    files = input_files(paths)
    sizes = [f.stat().st_size for f in files]
    total, done = sum(sizes), 0
    ingestor = _Ingestor(buffer, batch_size, None)
    if progress is not None:
        progress(0, total, 0)
    for f, size in zip(files, sizes, strict=True):
        try:
            items = decode_file(f)
        except InputError as exc:
            log.info("not input: %s", exc)
            ingestor.report.unreadable.append((str(f), str(exc)))
        else:
            ingestor.report.files += 1
            if not ingestor.add(items):
                break
        done += size
        if progress is not None:
            progress(done, total, ingestor.report.records)
    return ingestor.report
