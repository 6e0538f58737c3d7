"""The export-ingest Lambda: one journal export in S3 into the settling buffer, resumably.

Event: ``{}`` or ``{"export": "s3://BUCKET/PREFIX", "resume": {...}}``. The export location
defaults to ``QLDB_SETTLE_EXPORT`` (set by the stack from the ``exportBucket``/``exportPrefix``
context), the ledger ARN is ``QLDB_SETTLE_LEDGER_ARN`` (a manifest names the ledger, not its
region or account). The ingest itself is the command line's (``ingest.export.service``): every
export under the prefix, oldest first, each strand's objects in the order of its completed
manifest, every block checked and linked to the one before it.

Resuming. A big export does not fit in one invocation (at most 15 minutes), so the handler
stops *between* objects when less than a margin is left and returns ``{"done": false,
"resume": {"EXPORTID.STRANDID": N, ...}}``: for each strand, how many of its manifest's objects
are in the buffer (an object is put in one call before the next is read, so every object before
the one it stopped at is stored). Given that output back as its event (the Step Functions loop
of ``infra.export`` does so), it serves the service a completed manifest without those first N
objects and leaves them out of the listing: the strand then starts at object N, whose first block
the service links to the buffered block before it (the chain is still checked link by link). A
``TransientError`` of the buffer stops it the same way, at the object whose put failed. Re-reading
an object is harmless either way (its records are duplicates); ``{}`` starts over from the first
object (everything a duplicate until the first new block).

Time: the store stops handing out objects a margin before the invocation's end (one object must
fit), and every S3 read and buffer request keeps to a hard deadline just before it
(``runtime.deadline``), so a slow domain ends in a transient stop at an object, not a timeout.

Returns ``done``, ``resume``, ``transient``, this invocation's counts and ``totals`` over the
invocations of one run (carried in the event). Raises ``InputError`` (nothing to ingest there,
no ledger ARN) and, after ``MAX_STALLED`` transient stops in a row without progress,
``TransientError``: the state machine's execution fails with it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from buffer.port import SettlingBuffer
from compose.container import ContainerPart
from compose.roots import open_buffer
from compose.settings import Settings
from ingest.export.manifest import Export, find_exports
from ingest.export.service import ExportReport, LedgerRef, ingest_export
from ingest.export.store import ExportStore, open_store
from journal.errors import InputError
from runtime import deadline
from runtime.errors import TransientError

log = logging.getLogger(__name__)

EXPORT_ENV = "QLDB_SETTLE_EXPORT"
LEDGER_ARN_ENV = "QLDB_SETTLE_LEDGER_ARN"
# Stop reading objects when less than this is left of the invocation (one object must fit).
DEADLINE_MARGIN_MS = 120_000
MIN_DEADLINE_MARGIN_MS = 5_000
# No S3 read or buffer request runs closer than this to the invocation's end (runtime.deadline):
# a put cut there stops the run at that object (a transient stop), resumed on the next invocation.
HARD_MARGIN_MS = 5_000
MAX_STALLED = 5
TOTALS = ("objects", "blocks", "records", "problems", "rejected", "conflicts", "late")

_buffer: ContainerPart[SettlingBuffer] = ContainerPart(lambda: open_buffer(Settings.from_env()))


def use_buffer(buffer: SettlingBuffer | None) -> None:
    """Replace the composition root's buffer (tests), or forget it."""
    _buffer.use(buffer)


def use_s3(client: Any) -> None:
    """The boto3 S3 client to read with (tests), or None: one made on first use."""
    _s3.use(client)


def _new_s3() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 5})
    )


_s3: ContainerPart[Any] = ContainerPart(_new_s3)


class OutOfTime(Exception):
    """Raised by the store instead of handing out the next object: the invocation ends."""


def strand_key(export_id: str, strand_id: str) -> str:
    return f"{export_id}.{strand_id}"


class ResumingStore:
    """``inner`` without the objects ``resume`` says are buffered, stopping before an object
    once ``out_of_time()`` (an ``ExportStore`` for ``ingest_export``).

    The completed manifest of a resumed strand is served as JSON holding the remaining keys
    (the manifest reader takes JSON whatever the export's format); the skipped objects are left
    out of ``list_keys`` so they are not taken for objects of no manifest."""

    def __init__(
        self,
        inner: ExportStore,
        resume: Mapping[str, int],
        out_of_time: Callable[[], bool] = lambda: False,
    ) -> None:
        self.inner, self.out_of_time = inner, out_of_time
        exports, _ = find_exports(inner)  # InputError: nothing to ingest here
        self.order: list[str] = []  # strands in the order the service reads them
        self.keys: dict[str, list[str]] = {}  # strand -> its objects (store keys), in order
        self.skip: dict[str, int] = {}
        self._manifests: dict[str, str] = {}  # completed manifest key -> strand
        self._where: dict[str, tuple[str, int]] = {}  # object key -> (strand, index)
        for export in exports:
            self._add(export, resume)
        self.reading: tuple[str, int] | None = None  # the last object handed out
        self.objects_read = 0

    def _add(self, export: Export, resume: Mapping[str, int]) -> None:
        for completed in export.completed:
            strand = strand_key(export.export_id, completed.strand_id)
            keys = [export.started.relative(k) for k in completed.keys]
            self.order.append(strand)
            self.keys[strand] = keys
            self.skip[strand] = max(0, min(int(resume.get(strand, 0)), len(keys)))
            self._manifests[completed.key] = strand
            for i, key in enumerate(keys):
                self._where[key] = (strand, i)

    @property
    def location(self) -> str:
        return self.inner.location

    def list_keys(self) -> Iterator[str]:
        skipped = {k for s, n in self.skip.items() for k in self.keys[s][:n]}
        return (k for k in self.inner.list_keys() if k not in skipped)

    def read(self, key: str) -> bytes:
        strand = self._manifests.get(key)
        if strand is not None and self.skip[strand]:
            self.inner.read(key)  # read all the same: a missing one stays missing
            keys = self.keys[strand][self.skip[strand] :]
            return json.dumps({"keys": keys}).encode()
        where = self._where.get(key)
        if where is not None:
            if self.out_of_time():
                raise OutOfTime(key)
            self.reading = where
            self.objects_read += 1
        return self.inner.read(key)

    def resume_at(self, *, retry_current: bool) -> dict[str, int]:
        """Objects buffered per strand after a stop: every strand before the one being read is
        done, that one up to the object it stopped at (``retry_current``: the object handed out
        last, whose put failed) or after it (out of time: it was put, the next was refused)."""
        out = dict(self.skip)
        if self.reading is None:
            return out
        strand, index = self.reading
        for s in self.order[: self.order.index(strand)]:
            out[s] = len(self.keys[s])
        out[strand] = max(out[strand], index if retry_current else index + 1)
        return out


def deadline_from(context: Any) -> Callable[[], bool]:
    """True once less than the margin is left of the invocation (never without a context)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return lambda: False
    margin = max(MIN_DEADLINE_MARGIN_MS, min(DEADLINE_MARGIN_MS, remaining() // 5))
    return lambda: bool(remaining() < margin)


def hard_seconds_left(context: Any) -> float | None:
    """The invocation's end less ``HARD_MARGIN_MS``, in seconds (None without a context)."""
    return deadline.seconds_before_end(context, least_ms=HARD_MARGIN_MS)


def _counts(report: ExportReport | None, objects_read: int) -> dict[str, int]:
    if report is None:
        return dict.fromkeys(TOTALS, 0) | {"objects": objects_read}
    put = report.put
    return {
        "objects": report.objects,
        "blocks": report.blocks,
        "records": report.records,
        "problems": len(report.problems),
        "rejected": put.rejected,
        "conflicts": put.conflicts,
        "late": put.late,
    }


def handler(event: Mapping[str, Any] | None, context: Any) -> dict[str, Any]:
    event = event or {}
    location = str(event.get("export") or os.environ.get(EXPORT_ENV, ""))
    if not location.startswith("s3://"):
        raise InputError(
            f"no export to ingest: event 'export' or {EXPORT_ENV} (s3://BUCKET/PREFIX)"
        )
    arn = os.environ.get(LEDGER_ARN_ENV, "")
    if not arn:
        raise InputError(f"{LEDGER_ARN_ENV} is not set: the export's ledger ARN is needed")
    ledger = LedgerRef.from_arn(arn)
    previous = {str(k): int(v) for k, v in (event.get("resume") or {}).items()}
    store = ResumingStore(open_store(location, _s3.get()), previous, deadline_from(context))
    reports: list[ExportReport] = []  # the run's report, live, once an object is stored
    stopped = False
    try:
        with deadline.until(hard_seconds_left(context)):
            reports.append(ingest_export(_buffer.get(), store, ledger, progress=reports.append))
    except OutOfTime:
        stopped = True
    last = reports[-1] if reports else None
    transient = None if stopped or last is None else last.transient
    done = not stopped and transient is None
    if done:
        resume = {s: len(k) for s, k in store.keys.items()}
    else:
        resume = store.resume_at(retry_current=transient is not None)
    counts = _counts(last, store.objects_read)
    totals = {k: int((event.get("totals") or {}).get(k, 0)) + counts[k] for k in TOTALS}
    progressed = done or resume != store.skip
    stalled = 0 if progressed else int(event.get("stalled", 0)) + 1
    if stalled >= MAX_STALLED:
        raise TransientError(
            f"{location}: no progress in {stalled} invocations in a row: {transient or 'time'}"
        )
    out: dict[str, Any] = {
        "export": location,
        "done": done,
        "resume": resume,
        "transient": transient,
        "stalled": stalled,
        "needs_attention": bool(totals["problems"] or totals["rejected"] or totals["conflicts"]),
        "invocation": counts,
        "totals": totals,
    }
    log.info("export ingest: %s", json.dumps(out, sort_keys=True))
    if last is not None:
        for origin, reason in last.problems:
            log.warning("export problem: %s: %s", origin, reason)
    return out
