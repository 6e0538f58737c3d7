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

Added keys (nothing above is renamed): ``window_seconds`` (the configured window, ``--window``),
``source_last_commit`` and ``source_last_commit_age_ms`` (the newest commit the buffer has seen),
``old_journal`` (that commit is more than a day old: the pending blocks' age is then not a lag,
and the table shows the source's last commit, "N days ago", instead of a lag), ``warnings`` (a
window below the observed p99 ingest delay) and ``recovery``: for a quarantined block whose
replay failed while late blocks of its strand wait (the replica lacks them; it may need one),
``block``, ``late``, ``reason``, ``what`` and the ``commands`` that recover it, which an
``attention`` item also names. The table prints every duration in human units
(``qldb_settle.output.duration``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compose.settings import ENV_NAME, Settings
from journal.errors import InputError, SettleError
from qldb_settle.output import (
    EXIT_ATTENTION,
    EXIT_OK,
    add_buffer,
    add_common_settings,
    add_destination,
    add_json,
    add_window,
    duration,
    durations,
    iso_ms,
    print_json,
    repeat_flags,
    settings_from,
)

if TYPE_CHECKING:
    from buffer.port import BlockRow, BufferStats, SettlingBuffer
WINDOW_MARGIN = 1.25
# A source whose newest buffered commit is older than this is an old journal (an archive, a
# stopped stream): the age of its pending blocks against the wall clock is not a lag.
OLD_JOURNAL = timedelta(days=1)
ENV_WINDOW = ENV_NAME["window_seconds"]


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
            "seconds), with a warning when the configured window is below the p99 delay. A "
            "quarantined block whose replay failed while late blocks of its strand wait is "
            "named with those blocks and the commands that recover it. Exit 1 when something "
            "needs an operator (unresolved rejected records or conflicts, quarantined or late "
            "blocks), 0 otherwise."
        ),
    )
    add_buffer(p)
    add_destination(p)
    add_common_settings(p)
    add_window(p, early_release=False)
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
        pending = list(buffer.blocks("pending"))
        held = sum(1 for r in pending if r.commit_time + window > now)
        last_commit = source_last_commit(buffer, stats, pending)
        hints = late_block_hints(buffer, stats, flags=repeat_flags(args))
        from ingest.export.continuation import continuations

        handover = continuations(buffer)
    finally:
        buffer.close()
    checkpoint, notes = read_checkpoints(settings, strands)
    report = status_report(
        stats, now=now, checkpoint=checkpoint, unresolved_rejections=unresolved, notes=notes,
        held_by_window=held, window_seconds=settings.window_seconds, last_commit=last_commit,
        hints=hints,
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


def source_last_commit(
    buffer: SettlingBuffer, stats: BufferStats, pending: Sequence[BlockRow]
) -> datetime | None:
    """The newest commit the buffer has seen: the commit time of each strand's highest buffered
    block (sequence order is commit order; a replayed block's header stays), or of the newest
    pending block when that block's summary has not arrived (only its revisions)."""
    from journal.records import BlockAddress, block_id

    times = [r.commit_time for r in pending]
    for key, seq in stats.highest_sequence_seen.items():
        ledger, _, strand = key.rpartition("/")
        found = buffer.get_block(block_id(ledger, BlockAddress(strand, seq)))
        if found is not None:
            times.append(found.summary.commit_time)
    return max(times, default=None)


def late_block_hints(
    buffer: SettlingBuffer, stats: BufferStats, *, flags: str = ""
) -> list[dict[str, Any]]:
    """For each strand whose first quarantined block failed replay while late blocks of the
    strand wait before it: ``{"block", "late", "text", "commands"}`` (that block and the late
    ones as ``STRAND/SEQ``, the ``attention`` line, and the commands in order: apply each late
    block, retry the quarantined one, settle; ``settler.cycle_report.late_recovery`` words them)."""
    if not stats.blocks.get("quarantined") or not stats.blocks.get("late"):
        return []
    from settler.cycle_report import block_ref, late_blocks_hint, late_recovery

    late = list(buffer.blocks("late"))
    first: dict[tuple[str, str], BlockRow] = {}
    for r in buffer.blocks("quarantined"):
        key = (r.ledger, r.strand_id)
        if key not in first or r.sequence_no < first[key].sequence_no:
            first[key] = r
    hints = []
    for (ledger, strand), q in sorted(first.items()):
        if not (q.reason or "").startswith("replay failed"):
            continue
        before = [
            r for r in late
            if (r.ledger, r.strand_id) == (ledger, strand) and r.sequence_no < q.sequence_no
        ]  # fmt: skip
        if not before:
            continue
        ref = block_ref(strand, q.sequence_no)
        what, commands = late_recovery(strand, q.sequence_no, before, flags=flags)
        hints.append(
            {
                "block": ref,
                "late": [block_ref(r.strand_id, r.sequence_no) for r in before],
                "reason": q.reason,
                "what": what,
                "text": f"block {ref} is quarantined ({q.reason}): "
                + late_blocks_hint(strand, q.sequence_no, before, flags=flags),
                "commands": commands,
            }
        )
    return hints


def window_warning(
    window_seconds: float | None, p99_ms: float | None, recommended: int | None
) -> str | None:
    """A warning when the configured settle window is below the observed p99 ingest delay:
    blocks then reach the buffer after the settler has passed them (late), and the blocks that
    need them fail replay."""
    if window_seconds is None or p99_ms is None or p99_ms <= window_seconds * 1000.0:
        return None
    advice = "" if recommended is None else f" to the recommended {recommended} s"
    return (
        f"the settle window ({window_seconds:g} s) is below the p99 ingest delay "
        f"({duration(p99_ms)}): blocks arrive after the settler has passed them and are late "
        "(a block that needs one then fails replay); raise the window"
        f"{advice} (--window, {ENV_WINDOW}; in AWS the window parameter)"
    )


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
    window_seconds: float | None = None,
    last_commit: datetime | None = None,
    hints: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The ``status --json`` object (DESIGN.md keys first, then ``gaps``, ``held_by_window``
    (pending blocks younger than the settle window now), ``unresolved_rejections``,
    ``oldest_pending_commit``, ``attention`` and ``notes``, then the keys the module docstring
    lists as added)."""
    from runtime.distribution import distribution

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
    attention.extend(h["text"] for h in hints)
    recommended = recommended_window_seconds(list(stats.ingest_delays_ms))
    warning = window_warning(window_seconds, delays["p99"], recommended)
    age = None if last_commit is None else (now - last_commit).total_seconds() * 1000
    return {
        "blocks": {"total": sum(blocks.values()), **blocks},
        "statements": stats.statements,
        "revisions": stats.revisions,
        "rejected": stats.rejected,
        "conflicts": stats.conflicts,
        "checkpoint": checkpoint,
        "lag_ms": lag,
        "ingest_delay_ms": {k: None if v is None else round(v) for k, v in delays.items()},
        "recommended_window_seconds": recommended,
        "gaps": stats.gaps,
        "held_by_window": held_by_window,
        "unresolved_rejections": unresolved_rejections,
        "oldest_pending_commit": iso_ms(stats.oldest_pending_commit),
        "highest_sequence_seen": dict(stats.highest_sequence_seen),
        "attention": attention,
        "notes": list(notes),
        "window_seconds": window_seconds,
        "source_last_commit": iso_ms(last_commit),
        "source_last_commit_age_ms": None if age is None else round(age),
        "old_journal": last_commit is not None and now - last_commit > OLD_JOURNAL,
        "warnings": [] if warning is None else [warning],
        "recovery": [
            {k: h[k] for k in ("block", "late", "reason", "what", "commands")} for h in hints
        ],
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
        from settler.cycle_report import checkpoint_json
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
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    # The URLs on lines of their own: a table title would fold a long one mid-word.
    console.print(f"[bold]buffer[/]   {escape(settings.buffer)}", soft_wrap=True)
    console.print(f"[bold]replica[/]  {escape(settings.destination)}", soft_wrap=True)
    b = report["blocks"]
    counts = Table(show_header=False)
    counts.add_column(style="bold")
    counts.add_column(justify="right")
    counts.add_row("blocks", str(b["total"]))
    for state in _STATES:
        counts.add_row(f"  {state}", str(b[state]))
    for key in ("statements", "revisions", "rejected", "conflicts", "gaps"):
        counts.add_row(key, str(report[key]))
    console.print(counts)
    figures = Table(show_header=False, box=None)
    figures.add_column(style="bold", no_wrap=True)
    figures.add_column()
    cp = report["checkpoint"]
    checkpoints = [] if cp is None else cp if isinstance(cp, list) else [cp]
    figures.add_row(
        "checkpoint",
        ", ".join(f"{c['strand']}/{c['sequence']}" for c in checkpoints) or "none",
    )
    last, age = report.get("source_last_commit"), report.get("source_last_commit_age_ms")
    if report.get("old_journal"):
        figures.add_row("lag", "- (an old journal, not a live stream)")
    else:
        figures.add_row(
            "lag",
            "-"
            if report["lag_ms"] is None
            else f"{duration(report['lag_ms'])} (age of the oldest pending block)",
        )
    figures.add_row(
        "source's last commit", "-" if last is None else f"{duration(age)} ago ({last})"
    )
    if report.get("held_by_window") is not None:
        figures.add_row("held by the window", str(report["held_by_window"]))
    oldest = report["oldest_pending_commit"]
    if oldest is not None and report["lag_ms"] is not None:
        oldest = f"{oldest} ({duration(report['lag_ms'])} ago)"
    figures.add_row("oldest pending commit", oldest or "-")
    d = report["ingest_delay_ms"]
    figures.add_row("ingest delay", "no arrival times yet" if d["max"] is None else durations(d))
    window = report["recommended_window_seconds"]
    figures.add_row(
        "settle window",
        f"{settings.window_seconds:g} s configured"
        + ("" if window is None else f", {window} s recommended"),
    )
    console.print(figures)
    for warning in report.get("warnings", ()):
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    for note in report["notes"]:
        console.print(f"note: {escape(note)}")
    recovery = {f"block {r['block']} is quarantined" for r in report.get("recovery", ())}
    for item in report["attention"]:
        if not any(item.startswith(prefix) for prefix in recovery):
            console.print(f"[bold red]needs attention:[/] {escape(item)}")
    for r in report.get("recovery", ()):
        console.print(
            f"[bold red]needs attention:[/] block {escape(r['block'])} is quarantined "
            f"({escape(r['reason'])}): {escape(r['what'])}. To recover, run in this order:"
        )
        for command in r["commands"]:
            console.print(f"    {escape(command)}", soft_wrap=True, highlight=False)
