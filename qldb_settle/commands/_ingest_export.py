"""The journal-export part of ``qldb-settle ingest``: exports (and any stream files beside them).

Exports are ingested first, oldest first, then the stream files, so a replay that goes from an
export to the stream finds the export's blocks already buffered and links the stream's first
block to them. The output adds an ``export`` object to the ``ingest --json`` keys (exports,
objects, blocks, each strand's first and last block, problems, ``blocks_per_second``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from journal.errors import InputError
from qldb_settle.output import (
    EXIT_ATTENTION,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_USAGE,
    print_json,
    settings_from,
)

if TYPE_CHECKING:
    from ingest.export.service import ExportReport, Progress


@contextmanager
def _progress(show: bool, started: float) -> Iterator[Progress | None]:
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as ProgressBar

    with ProgressBar(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("objects  {task.fields[blocks]} blocks  {task.fields[rate]} blocks/s"),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("export", total=None, blocks=0, rate="-")

        def update(report: ExportReport) -> None:
            rate = report.blocks / max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=report.objects, total=report.objects_total,
                       blocks=report.blocks, rate=f"{rate:,.0f}")  # fmt: skip

        yield update


def run_exports(args: argparse.Namespace, exports: list[str], others: list[str]) -> int:
    from compose.roots import open_buffer
    from ingest.export.service import LedgerRef, ingest_export
    from ingest.export.store import open_store
    from ingest.service import IngestReport, ingest_paths, input_files

    if not args.ledger_arn:
        raise InputError(
            "a journal export needs --ledger-arn arn:aws:qldb:REGION:ACCOUNT:ledger/NAME "
            "(or QLDB_SETTLE_LEDGER_ARN): its manifest names the ledger, not its region or account"
        )
    ledger = LedgerRef.from_arn(args.ledger_arn)
    stores = [open_store(e) for e in exports]
    input_files(others)  # a missing path: InputError (exit 2), nothing stored
    settings = settings_from(args)
    buffer = open_buffer(settings, opensearch_auth=args.opensearch_auth)
    started = time.monotonic()
    reports: list[ExportReport] = []
    stream = IngestReport()
    try:
        with _progress(not args.json and sys.stderr.isatty(), started) as update:
            for store in stores:
                reports.append(ingest_export(buffer, store, ledger, progress=update))
                if reports[-1].transient is not None:
                    break
        if others and all(r.transient is None for r in reports):
            stream = ingest_paths(buffer, others)
    finally:
        buffer.close()
    elapsed = time.monotonic() - started
    blocks = sum(r.blocks for r in reports)
    rate = blocks / elapsed if elapsed > 0 else None
    put = stream.put
    for r in reports:
        put.add(r.put)
    problems = sum(len(r.problems) for r in reports)
    transient = next((r.transient for r in reports if r.transient), stream.transient)
    if args.json:
        out: dict[str, Any] = stream.as_json()
        out.update(
            records=stream.records + sum(r.records for r in reports),
            stored=dict(put.stored),
            duplicates=put.duplicates,
            conflicts=put.conflicts,
            rejected=put.rejected,
            late=put.late,
        )
        out["export"] = {
            "sources": [
                {"location": s.location, **r.as_json()}
                for s, r in zip(stores, reports, strict=False)
            ],
            "blocks": blocks,
            "objects": sum(r.objects for r in reports),
            "elapsed_ms": round(elapsed * 1000, 3),
            "blocks_per_second": None if rate is None else round(rate, 1),
        }
        print_json(out)
    else:
        for store, r in zip(stores, reports, strict=False):
            _print_export(store.location, r, rate)
        if others:
            print(f"then {stream.records} stream records from {stream.files} files")
        s = put.stored
        print(
            f"  stored: {s.get('blocks', 0)} blocks, {s.get('statements', 0)} statements, "
            f"{s.get('revisions', 0)} revisions  duplicates: {put.duplicates}  conflicts: "
            f"{put.conflicts}  late: {put.late}  rejected: {put.rejected}"
        )
        if put.rejected or put.conflicts:
            print("  needs attention: list them with `qldb-settle rejected`")
    for _, reason in stream.unreadable:
        print(f"qldb-settle ingest: {reason}", file=sys.stderr)
    for r in reports:
        for origin, reason in r.problems:
            print(f"qldb-settle ingest: {origin}: {reason}", file=sys.stderr)
        for e in r.down_converted:
            print(
                f"qldb-settle ingest: NOTE export {e} is JSON Lines: QLDB down-converted its "
                "Ion to JSON (decimals as numbers, timestamps, blobs and symbols as strings, "
                "annotations dropped); documents replay with those JSON types, and revision "
                "hashes, which need the documents' Ion, cannot be verified for it",
                file=sys.stderr,
            )
    if transient is not None:
        print(f"qldb-settle ingest: {transient} (nothing was lost; run it again)", file=sys.stderr)
        return EXIT_TRANSIENT
    if stream.unreadable:
        return EXIT_USAGE
    if problems or put.rejected or put.conflicts or put.late:
        return EXIT_ATTENTION
    return EXIT_OK


def _print_export(location: str, r: ExportReport, rate: float | None) -> None:
    per_s = f", {rate:,.0f} blocks/s" if rate else ""
    print(
        f"ingested {len(r.exports)} export(s) from {location}: {r.objects} objects, "
        f"{r.blocks} blocks{per_s}"
    )
    for s in r.spans:
        span = "nothing" if s.first is None else f"{s.strand_id}/{s.first}..{s.strand_id}/{s.last}"
        broken = f"  BROKEN: {s.broken}" if s.broken else ""
        print(f"  export {s.export_id} ({r.formats.get(s.export_id)}): {span}{broken}")
    for g in r.gaps:
        print(f"  note: {g}")
    if r.objects_not_read:
        print(f"  not read: {r.objects_not_read} objects (after a problem, see stderr)")
