"""``qldb-settle demo``: the whole service on one machine, ending VERIFIED or with differences."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compose.settings import Settings
from qldb_settle.commands.simulate import add_simulation_flags, simulation_config
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
    print_json,
    suggested_commands,
)

if TYPE_CHECKING:
    from qldb_settle.demo_run import DemoReport

DEFAULT_WORKDIR = Path("qldb-settle-demo")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "demo",
        help="simulate a busy ledger and a hostile stream, run the pipeline, prove the replica",
        description=(
            "Simulate a source ledger with concurrent, overlapping transactions and stream it "
            "through a multi-shard Kinesis stream that duplicates, aggregates and reorders; play "
            "the events in arrival order through ingest into the settling buffer, with a settle "
            "cycle every --schedule seconds of simulated time (no real waiting); then verify the "
            "replica against the source ledger and against the stream's own revisions. Unless "
            "--buffer/--destination say otherwise, everything is written to --workdir."
        ),
    )
    add_simulation_flags(p, transactions=1000)
    add_buffer(p)
    add_destination(p)
    add_common_settings(p)
    add_window(p)
    p.add_argument(
        "--schedule",
        type=float,
        default=60.0,
        metavar="S",
        help="simulated seconds between settle cycles, the settler's schedule (default 60)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        metavar="DIR",
        help=f"folder for the simulation, buffer and replica (default ./{DEFAULT_WORKDIR}; "
        "emptied first if an earlier demo made it)",
    )
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compose.roots import open_buffer, open_destination
    from qldb_settle.commands.verify import replica_documents
    from qldb_settle.demo_run import DemoOptions, prepare_workdir, run_demo

    workdir: Path = args.workdir
    prepare_workdir(workdir)
    base = Settings.from_env(
        buffer=args.buffer or f"sqlite:{workdir / 'buffer.db'}",
        destination=args.destination or f"embedded:{workdir / 'replica.db'}",
        window_seconds=args.window,
        early_release=True if args.early_release else None,
        index_prefix=args.index_prefix,
        qldb_endpoint=args.qldb_endpoint,
        pg_schema=args.pg_schema,
    )
    options = DemoOptions(
        simulation=simulation_config(args),
        window_seconds=base.window_seconds,
        early_release=base.early_release,
        schedule_seconds=args.schedule,
    )
    buffer = open_buffer(base, opensearch_auth=args.opensearch_auth)
    destination = open_destination(base)
    try:
        if args.json or not sys.stderr.isatty():
            report = run_demo(
                options,
                workdir=workdir,
                buffer=buffer,
                destination=destination,
                replica_documents=lambda: replica_documents(destination),
            )
        else:
            report = _with_progress(options, workdir, buffer, destination)
    finally:
        buffer.close()
        destination.close()
    if args.json:
        print_json(report.to_json())
    else:
        _print_report(report, options.window_seconds, options.early_release, base)
    return EXIT_OK if report.verified else EXIT_ATTENTION


def _with_progress(options: Any, workdir: Path, buffer: Any, destination: Any) -> DemoReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from qldb_settle.commands.verify import replica_documents
    from qldb_settle.demo_run import run_demo

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as bar:
        task = bar.add_task("starting", total=1)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        return run_demo(
            options,
            workdir=workdir,
            buffer=buffer,
            destination=destination,
            replica_documents=lambda: replica_documents(destination),
            progress=progress,
        )


def _print_report(report: DemoReport, window: float, early: bool, settings: Settings) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    s = report.simulation.stats
    ing = report.ingest
    settled = report.settled  # totals over every cycle
    table = Table(title="qldb-settle demo", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("source", f"{s['transactions']} transactions ({s['occ_conflicts']} OCC conflicts "
         f"retried), {s['blocks']} blocks, {s['read_only_blocks']} read-only "
         f"({'streamed' if report.simulation.config.stream_read_only else 'gaps in the stream'})"),
        ("stream", f"{s['delivered_records']} records in {s['events']} events over "
         f"{report.simulation.config.shards} shards, {s['aggregates']} KPL aggregates, "
         f"{s['redelivered_events']} events re-delivered"),
        ("ingest", f"{ing.put.stored['blocks']} blocks, {ing.put.stored['statements']} "
         f"statements, {ing.put.stored['revisions']} revisions stored; "
         f"{ing.put.duplicates} duplicates dropped, {ing.put.rejected} rejected"),
        *([("export", f"{report.export.blocks} blocks from a journal export "
            f"({', '.join(report.export.formats.values())}, {report.export.objects} objects, "
            f"{len(report.export.problems)} problems), then "
            f"{ing.put.stored['blocks']} blocks from the stream")]
          if report.export is not None else []),
        ("settle", f"{report.cycles} cycles, window {window:g} s"
         f"{', early release on' if early else ''}: {settled.blocks} blocks replayed "
         f"({settled.statements} statements, {settled.revisions} revisions), "
         f"{settled.early_released} released early, {settled.gaps_passed} gaps passed"),
        ("verify", f"{settled.digests_verified} statement digests verified, "
         f"{settled.digests_unverified} not verifiable (parameters are not streamed)"),
        ("buffer", settings.buffer),
        ("replica", settings.destination),
    ]  # fmt: skip
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(_lag_chart(settled.lag_ms))
    for c in report.comparisons:
        mark = "[green]equal[/green]" if c.equal else "[red]DIFFERENT[/red]"
        console.print(
            f"  {mark} to the {c.reference}: {c.documents} documents, {len(c.missing)} missing, "
            f"{len(c.unexpected)} unexpected"
        )
        if c.down_converted:
            console.print(
                f"    {c.down_converted} of them equal only after the JSON Lines export's "
                "down-conversion: their Ion types are lost in the replica (docs/export.md)"
            )
    if settled.halted:
        flags = f"--buffer {shlex.quote(settings.buffer)} --destination "
        flags += shlex.quote(settings.destination)
        reason, commands = suggested_commands(settled.halt_reason or "", flags)
        console.print(f"[red]settler halted:[/red] {escape(reason)}")
        if commands:
            console.print("  to recover, run in this order:")
            for command in commands:
                console.print(f"    {escape(command)}", soft_wrap=True, highlight=False)
    if settled.quarantined or settled.late:
        console.print(
            f"[red]{settled.quarantined} quarantined, {settled.late} late blocks[/red] "
            "(qldb-settle blocks --state quarantined|late)"
        )
    console.print(
        "[bold green]VERIFIED[/bold green]: the replica equals the source"
        if report.verified
        else "[bold red]NOT VERIFIED[/bold red]: see the differences above"
    )


def _lag_chart(lags: list[float], width: int = 40, buckets: int = 8) -> str:
    """A small histogram of replay lag (replay time minus commit time) in seconds."""
    if not lags:
        return "  replay lag: no blocks replayed"
    lo, hi = min(lags) / 1000, max(lags) / 1000
    span = max(hi - lo, 1e-9)
    counts = [0] * buckets
    for v in lags:
        counts[min(buckets - 1, int((v / 1000 - lo) / span * buckets))] += 1
    top = max(counts)
    from runtime.distribution import distribution

    lines = [f"  replay lag (replay - commit): {durations(distribution(lags))}"]
    labels = [
        f"{duration((lo + span * i / buckets) * 1000)} - "
        f"{duration((lo + span * (i + 1) / buckets) * 1000)}"
        for i in range(buckets)
    ]
    pad = max(len(label) for label in labels)
    for label, n in zip(labels, counts, strict=True):
        bar = "#" * (round(n / top * width) if top else 0)
        lines.append(f"  {label:<{pad}} {bar} {n}")
    return "\n".join(lines)
