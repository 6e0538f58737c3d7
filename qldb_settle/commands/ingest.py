"""``qldb-settle ingest [--buffer URL] [--json] SOURCE...``: stream data and journal exports into
the buffer."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from qldb_settle.output import (
    EXIT_ATTENTION,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_USAGE,
    add_buffer,
    add_common_settings,
    add_json,
    print_json,
    settings_from,
)

if TYPE_CHECKING:
    from ingest.service import IngestReport, Progress

# Below this much input the progress bar would only flicker.
_PROGRESS_MIN_BYTES = 1024 * 1024
_PROGRESS_MIN_FILES = 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="decode stream data (Lambda Kinesis events, Ion files, Firehose objects) into the "
        "settling buffer",
        description=(
            "Decode Lambda Kinesis event JSON, raw Ion (text or binary) and Firehose backup "
            "objects (concatenated Ion binary, plain or GZIP) and store their records in the "
            "settling buffer, create-if-absent. Directories are read recursively in sorted "
            "order. Input that cannot be decoded is kept as rejected (see `qldb-settle "
            "rejected`). A journal export is read from the folder that holds its manifests "
            "(laid out like the bucket prefix: PATH/journalExport) or from s3://BUCKET/PREFIX, "
            "its objects in the order of its completed manifest, every block verified and "
            "linked; it needs --ledger-arn, since a manifest names the ledger but not its "
            "region or account. Exit 1 when anything was rejected, conflicted or late "
            "(everything else is stored), 2 when a path is missing, a file is not such input at "
            "all (the other files are still ingested) or an export is unfinished (no completed "
            "manifest: nothing of it is stored), 3 when the buffer or S3 is unavailable (run it "
            "again)."
        ),
    )
    p.add_argument(
        "--ledger-arn",
        metavar="ARN",
        default=os.environ.get("QLDB_SETTLE_LEDGER_ARN"),
        help="for journal exports: the exported ledger, arn:aws:qldb:REGION:ACCOUNT:ledger/NAME "
        "(env QLDB_SETTLE_LEDGER_ARN); its region, account and name make the record ids the "
        "stream's",
    )
    add_buffer(p)
    add_common_settings(p)
    add_json(p)
    p.add_argument(
        "paths",
        nargs="+",
        metavar="SOURCE",
        help="files or directories of stream data; export folders or s3://BUCKET/PREFIX",
    )
    p.set_defaults(run=run)


@contextmanager
def _progress(show: bool, total: int) -> Iterator[Progress | None]:
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as ProgressBar

    with ProgressBar(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[records]:,} records  {task.fields[rate]} records/s"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("ingesting", total=total, records=0, rate="-")
        started = time.monotonic()

        def update(done: int, _total: int, records: int) -> None:
            rate = records / max(time.monotonic() - started, 1e-9)
            bar.update(task, completed=done, records=records, rate=f"{rate:,.0f}")

        yield update


def run(args: argparse.Namespace) -> int:
    from ingest.export.store import is_export

    if any(is_export(p) for p in args.paths):
        from qldb_settle.commands._ingest_export import run_exports

        return run_exports(args, [p for p in args.paths if is_export(p)],
                           [p for p in args.paths if not is_export(p)])  # fmt: skip
    return _run_stream(args)


def _run_stream(args: argparse.Namespace) -> int:
    from compose.roots import open_buffer
    from ingest.service import ingest_paths, input_files

    files = input_files(args.paths)  # a missing path: InputError (exit 2), nothing stored
    total = sum(f.stat().st_size for f in files)
    show = (
        not args.json
        and sys.stderr.isatty()
        and (total >= _PROGRESS_MIN_BYTES or len(files) >= _PROGRESS_MIN_FILES)
    )
    settings = settings_from(args)
    buffer = open_buffer(settings, opensearch_auth=args.opensearch_auth)
    started = time.monotonic()
    try:
        with _progress(show, total) as update:
            report = ingest_paths(buffer, args.paths, progress=update)
    finally:
        buffer.close()
    rates = rates_of(report.records, time.monotonic() - started)

    if args.json:
        print_json({**report.as_json(), "rates": rates})
    else:
        _print_summary(report, settings.buffer)
        print(f"  {rates['seconds']:g} s: {rates['records_per_s']:,.0f} records/s")
    for _, reason in report.unreadable:
        print(f"qldb-settle ingest: {reason}", file=sys.stderr)
    if report.transient is not None:
        print(
            f"qldb-settle ingest: {report.transient} (stopped after {report.records} records; "
            "nothing was lost; run it again)",
            file=sys.stderr,
        )
        return EXIT_TRANSIENT
    if report.unreadable:
        return EXIT_USAGE
    return EXIT_ATTENTION if report.needs_attention else EXIT_OK


def rates_of(records: int, seconds: float) -> dict[str, float]:
    """The run's rate for ``--json`` (``rates``: ``seconds``, ``records_per_s``, user records)."""
    return {
        "seconds": round(seconds, 4),
        "records_per_s": round(records / seconds, 1) if seconds > 0 else 0.0,
    }


def _print_summary(report: IngestReport, buffer_url: str) -> None:
    put = report.put
    s = put.stored
    print(
        f"ingested {_n(report.records, 'record')} from {_n(report.files, 'file')} into {buffer_url}"
    )
    print(
        f"  stored: {_n(s.get('blocks', 0), 'block')}, {_n(s.get('statements', 0), 'statement')}, "
        f"{_n(s.get('revisions', 0), 'revision')}, {_n(s.get('control', 0), 'control record')}"
    )
    print(
        f"  duplicates: {put.duplicates}  conflicts: {put.conflicts}  late: {put.late}  "
        f"rejected: {put.rejected}"
    )
    if report.rejected_by_kind:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.rejected_by_kind.items()))
        print(f"  rejected by kind: {kinds}")
    if put.rejected or put.conflicts:
        print("  needs attention: list them with `qldb-settle rejected`")
    if put.late:
        print("  needs attention: late records, see `qldb-settle blocks --state late`")
    if report.unreadable:
        print(f"  not input at all: {_n(len(report.unreadable), 'file')} (see stderr)")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
