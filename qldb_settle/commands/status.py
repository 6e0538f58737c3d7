"""``qldb-settle status [--buffer URL] [--destination URL] [--json]``: what the settling buffer
holds, how far behind the replica is, and the settle window the observed ingest delays call for.

``lag_ms`` is the age (now − commit time) of the oldest pending block: how far the replica is
behind the source for what has arrived; null when nothing is pending. ``ingest_delay_ms`` is the
distribution of arrival − commit of the buffered block summaries (the most recent 10,000 and the
largest ever seen). ``recommended_window_seconds`` is the settle window that would have kept
every observed record from being late: the largest observed ingest delay plus a 25 % margin (for
delays not seen yet), rounded up to whole seconds, at least 1; null before any arrival time is
known (file ingests carry none). ``checkpoint`` is the destination's, read only when the
destination exists; otherwise null with a note.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compose.settings import Settings
from journal.errors import InputError, SettleError
from qldb_settle.output import (
    add_buffer,
    add_common_settings,
    add_destination,
    add_json,
    iso_ms,
    print_json,
    settings_from,
)

if TYPE_CHECKING:
    from buffer.port import BufferStats, SettlingBuffer

EXIT_OK, EXIT_ATTENTION = 0, 1
WINDOW_MARGIN = 1.25


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "status",
        help="what the settling buffer holds, the replica's checkpoint and lag, and the "
        "recommended settle window",
        description=(
            "Show the buffer's blocks by state (pending, replayed, quarantined, late, skipped), "
            "statements, revisions, rejected records and conflicts, the destination's "
            "checkpoint, the lag (age of the oldest pending block), the observed ingest delay "
            "(arrival - commit: p50, p99, max) and the settle window that would have kept "
            "every observed record from being late (largest delay + 25%%, rounded up to whole "
            "seconds). Exit 1 when something needs an operator (unresolved rejected records or "
            "conflicts, quarantined or late blocks), 0 otherwise."
        ),
    )
    add_buffer(p)
    add_destination(p)
    add_common_settings(p)
    add_json(p)
    p.set_defaults(run=run)


def open_existing_buffer(args: argparse.Namespace) -> SettlingBuffer:
    """The buffer the flags name; a ``sqlite:`` file that does not exist is an input error
    (reading must not create an empty buffer)."""
    from compose.roots import open_buffer

    settings = settings_from(args)
    scheme, _, rest = settings.buffer.partition(":")
    if scheme == "sqlite" and rest and not Path(rest).exists():
        raise InputError(f"no settling buffer at {rest} (nothing was ingested there)")
    return open_buffer(settings, opensearch_auth=getattr(args, "opensearch_auth", "auto"))


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    buffer = open_existing_buffer(args)
    now = datetime.now(UTC)
    try:
        stats = buffer.stats(now)
        strands = list(buffer.strands())
        unresolved = buffer.unresolved_rejections()
        window = timedelta(seconds=settings.window_seconds)
        held = sum(1 for r in buffer.blocks("pending") if r.commit_time + window > now)
        from ingest.export.continuation import continuations

        handover = continuations(buffer)
    finally:
        buffer.close()
    checkpoint, notes = read_checkpoints(settings, strands)
    report = status_report(
        stats, now=now, checkpoint=checkpoint, unresolved_rejections=unresolved, notes=notes,
        held_by_window=held,
    )  # fmt: skip
    report["export_to_stream"] = handover  # where an export ends and the stream begins
    if args.json:
        print_json(report)
    else:
        _print(report, settings)
        for h in handover:
            print(
                f"export -> stream: {h['export_blocks']} blocks from an export through "
                f"{h['export_last_block']}, then {h['stream_blocks']} from the stream"
                + (f" from {h['stream_first_block']}" if h["stream_first_block"] else "")
            )
    return EXIT_ATTENTION if report["attention"] else EXIT_OK


def recommended_window_seconds(delays_ms: Sequence[float]) -> int | None:
    """Largest observed ingest delay + 25 %, rounded up to whole seconds (at least 1)."""
    if not delays_ms:
        return None
    return max(1, math.ceil(max(delays_ms) * WINDOW_MARGIN / 1000.0))


def status_report(
    stats: BufferStats,
    *,
    now: datetime,
    checkpoint: Any,
    unresolved_rejections: int,
    notes: Sequence[str] = (),
    held_by_window: int | None = None,
) -> dict[str, Any]:
    """The ``status --json`` object (DESIGN.md keys first, then ``gaps``, ``held_by_window``
    (pending blocks younger than the settle window now), ``unresolved_rejections``,
    ``oldest_pending_commit``, ``attention`` and ``notes``)."""
    from settler.report import distribution

    blocks = {state: int(stats.blocks.get(state, 0)) for state in _STATES}
    lag = None
    if stats.oldest_pending_commit is not None:
        lag = round((now - stats.oldest_pending_commit).total_seconds() * 1000)
    delays = distribution(list(stats.ingest_delays_ms))
    attention = []
    if unresolved_rejections:
        attention.append(
            f"{unresolved_rejections} rejected record(s) or conflict(s) unresolved "
            "(qldb-settle rejected)"
        )
    for state in ("quarantined", "late"):
        if blocks[state]:
            attention.append(
                f"{blocks[state]} {state} block(s) (qldb-settle blocks --state {state})"
            )
    return {
        "blocks": {"total": sum(blocks.values()), **blocks},
        "statements": stats.statements,
        "revisions": stats.revisions,
        "rejected": stats.rejected,
        "conflicts": stats.conflicts,
        "checkpoint": checkpoint,
        "lag_ms": lag,
        "ingest_delay_ms": {k: None if v is None else round(v) for k, v in delays.items()},
        "recommended_window_seconds": recommended_window_seconds(list(stats.ingest_delays_ms)),
        "gaps": stats.gaps,
        "held_by_window": held_by_window,
        "unresolved_rejections": unresolved_rejections,
        "oldest_pending_commit": iso_ms(stats.oldest_pending_commit),
        "highest_sequence_seen": dict(stats.highest_sequence_seen),
        "attention": attention,
        "notes": list(notes),
    }


_STATES = ("pending", "replayed", "quarantined", "late", "skipped")


def read_checkpoints(
    settings: Settings, strands: Sequence[tuple[str, str]]
) -> tuple[Any, list[str]]:
    """The destination's checkpoint of each strand as JSON (null, one object, or a list with
    several strands), and notes on why it could not be read (not installed, unreachable,
    misconfigured: the buffer's figures are still shown). The destination is only read, never
    created: an ``embedded:`` file that does not exist yet has no checkpoint."""
    scheme, _, rest = settings.destination.partition(":")
    if scheme == "embedded" and rest and not Path(rest).exists():
        return None, [f"no replica at {rest} yet: no checkpoint"]
    if not strands:
        return None, []
    try:
        from compose.roots import open_destination
        from settler.report import checkpoint_json
    except ImportError as exc:  # a part of the installation this command can do without
        return None, [f"checkpoint not read: {exc}"]
    try:
        destination = open_destination(settings)
        try:
            found = [
                checkpoint_json(cp)
                for ledger, strand in strands
                if (cp := destination.checkpoint(ledger, strand)) is not None
            ]
        finally:
            destination.close()
    except (ImportError, SettleError) as exc:  # the buffer's figures stand on their own
        return None, [f"checkpoint not read from {settings.destination}: {exc}"]
    if not found:
        return None, []
    return (found[0] if len(found) == 1 else found), []


def _print(report: Mapping[str, Any], settings: Settings) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    b = report["blocks"]
    counts = Table(title=f"buffer {settings.buffer}", show_header=False)
    counts.add_column(style="bold")
    counts.add_column(justify="right")
    counts.add_row("blocks", str(b["total"]))
    for state in _STATES:
        counts.add_row(f"  {state}", str(b[state]))
    for key in ("statements", "revisions", "rejected", "conflicts", "gaps"):
        counts.add_row(key, str(report[key]))
    console.print(counts)
    figures = Table(show_header=False, box=None)
    figures.add_column(style="bold")
    figures.add_column()
    cp = report["checkpoint"]
    checkpoints = [] if cp is None else cp if isinstance(cp, list) else [cp]
    figures.add_row(
        "checkpoint",
        ", ".join(f"{c['strand']}/{c['sequence']}" for c in checkpoints) or "none",
    )
    figures.add_row("lag", "-" if report["lag_ms"] is None else f"{report['lag_ms']} ms")
    if report.get("held_by_window") is not None:
        figures.add_row("held by the window", str(report["held_by_window"]))
    figures.add_row("oldest pending commit", report["oldest_pending_commit"] or "-")
    d = report["ingest_delay_ms"]
    figures.add_row(
        "ingest delay",
        "no arrival times yet"
        if d["max"] is None
        else f"p50 {d['p50']} ms, p99 {d['p99']} ms, max {d['max']} ms",
    )
    window = report["recommended_window_seconds"]
    figures.add_row(
        "settle window",
        f"{settings.window_seconds:g} s configured"
        + ("" if window is None else f", {window} s recommended"),
    )
    console.print(figures)
    for note in report["notes"]:
        console.print(f"note: {note}")
    for item in report["attention"]:
        console.print(f"[bold red]needs attention:[/] {item}")
