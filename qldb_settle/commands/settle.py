"""``qldb-settle settle``: one settle cycle (or ``--follow``: cycle on the real clock)."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import signal
import socket
import sys
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from compose.settings import ENV_NAME, Settings
from journal.errors import InputError
from qldb_settle.output import (
    EXIT_ATTENTION,
    EXIT_OK,
    add_buffer,
    add_common_settings,
    add_destination,
    add_json,
    add_window,
    durations,
    parse_time,
    print_json,
    repeat_flags,
    settings_from,
    suggested_commands,
)
from runtime.errors import ConfigError, LeaseHeld
from settler.cycle import DEFAULT_GROUP_SIZE, DEFAULT_LEASE_SECONDS
from settler.cycle_report import SettleReport
from settler.ingest_health import FAILURE_QUEUE_ENV, INGEST_FUNCTION_ENV

if TYPE_CHECKING:
    from buffer.port import SettlingBuffer
    from destination.port import Checkpoint, Destination


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "settle",
        help="release settled blocks in commit order and replay each exactly once",
        description=(
            "Run one settle cycle: read the destination's checkpoint, repair the buffer's marks "
            "from it, release the pending blocks whose commit time is at least the settle window "
            "old (or, with --early-release, the next block the hash chain proves adjacent), "
            "verify each, replay it, mark it. A gap in sequence numbers is passed only by the "
            "window, and not while rejected records are unresolved. A block that fails "
            "verification or replay is quarantined and the cycle halts there. Exit 1 when "
            "something needs an operator (halted, quarantined or late blocks: see `qldb-settle "
            "blocks` and `qldb-settle resolve`), 3 when another settler holds the lease or a "
            "store is unreachable (run it again)."
        ),
    )
    add_buffer(p)
    add_destination(p)
    add_common_settings(p)
    add_window(p)
    p.add_argument(
        "--retention-days",
        type=float,
        metavar="D",
        help="delete the statements and revisions of replayed blocks committed more than D days "
        "ago, keeping block headers so re-deliveries stay duplicates "
        f"(env {ENV_NAME['retention_days']}, default keep everything)",
    )
    p.add_argument(
        "--now",
        metavar="ISO8601",
        help="run the cycle as of this instant (archived data: a far-future --now settles "
        "everything, in order); default the real clock",
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep cycling on the real clock with a live display until Ctrl-C (which stops after "
        "the cycle under way; a second Ctrl-C stops at once)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between cycles with --follow (default 2)",
    )
    p.add_argument(
        "--start-after",
        metavar="[STRAND/]SEQUENCE",
        help="an empty replica starts after this block (its state restored by other means); "
        "refused when the destination already has a checkpoint",
    )
    p.add_argument(
        "--start-hash",
        metavar="HEX",
        help="the blockHash of the --start-after block (default: the buffered block's, if any); "
        "lets the chain prove the next block",
    )
    p.add_argument(
        "--allow-gaps-with-rejections",
        action="store_true",
        help="pass gaps even while rejected records are unresolved (they could be the missing "
        "block)",
    )
    p.add_argument(
        "--group-size",
        type=int,
        default=DEFAULT_GROUP_SIZE,
        metavar="N",
        help=f"blocks per destination transaction, at most (default {DEFAULT_GROUP_SIZE})",
    )
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=DEFAULT_LEASE_SECONDS,
        metavar="S",
        help="how long this settle's lease outlives it if it dies (renewed while it runs; "
        f"other settlers stand aside until then; default {DEFAULT_LEASE_SECONDS:g})",
    )
    p.add_argument(
        "--failure-queue",
        default=os.environ.get(FAILURE_QUEUE_ENV) or None,
        metavar="URL",
        help="the ingest function's on-failure SQS queue: no gap is passed while it holds a "
        f"range (env {FAILURE_QUEUE_ENV}; as the settler Lambda does; without it only the "
        "failed ranges redrive recorded in the buffer hold gaps)",
    )
    p.add_argument(
        "--ingest-function",
        default=os.environ.get(INGEST_FUNCTION_ENV) or None,
        metavar="NAME",
        help="the ingest Lambda: no gap is passed while its IteratorAge is not below the window "
        f"(env {INGEST_FUNCTION_ENV})",
    )
    add_json(p)
    p.set_defaults(run=run)


_TOKEN = secrets.token_hex(4)


def _owner() -> str:
    """This process's lease owner: ``settle-cli:USER@HOST:PID:TOKEN`` (two settles of one user on
    one host are two owners, so the lease keeps the second out)."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"settle-cli:{user}@{socket.gethostname()}:{os.getpid()}:{_TOKEN}"


def run(args: argparse.Namespace) -> int:
    from compose.roots import open_buffer, open_destination

    if args.follow and (args.now or args.json):
        raise InputError("--follow runs on the real clock with a live display: no --now, --json")
    if args.group_size < 1:
        raise InputError("--group-size must be at least 1")
    if args.lease_seconds <= 0:
        raise InputError("--lease-seconds must be positive")
    now = _time(args.now) if args.now else None
    settings = settings_from(args)
    buffer = open_buffer(settings, opensearch_auth=args.opensearch_auth)
    try:
        destination = open_destination(settings)
        try:
            if args.start_after:
                cp = _start(buffer, destination, args.start_after, args.start_hash)
                print(
                    f"the replica starts after block {cp.sequence_no} of {cp.ledger}/"
                    f"{cp.strand_id}",
                    file=sys.stderr,
                )
            if args.follow:
                return _follow(buffer, destination, args, settings)
            try:
                report = _cycle(buffer, destination, args, settings, now or datetime.now(UTC))
            except LeaseHeld as exc:
                # Another settler is doing this work: standing aside is not a failure.
                print(f"qldb-settle settle: {exc}: standing aside", file=sys.stderr)
                if args.json:
                    print_json(SettleReport().to_json())
                return EXIT_OK
        finally:
            destination.close()
    finally:
        buffer.close()
    if args.json:
        print_json(report.to_json())
    else:
        _print(report, settings.window_seconds, repeat_flags(args))
    return EXIT_ATTENTION if report.needs_operator else EXIT_OK


def _cycle(
    buffer: SettlingBuffer,
    destination: Destination,
    args: argparse.Namespace,
    settings: Settings,
    now: datetime,
) -> SettleReport:
    from compose.settings import retention_of
    from settler.cycle import SettlePolicy, settle

    policy = SettlePolicy(
        window_seconds=settings.window_seconds,
        early_release=settings.early_release,
        group_size=args.group_size,
        lease_seconds=args.lease_seconds,
        allow_gaps_with_rejections=args.allow_gaps_with_rejections,
        retention=retention_of(settings),
    )
    from settler.ingest_health import aws_ingest_health

    health = aws_ingest_health(
        window_seconds=settings.window_seconds,
        queue_url=args.failure_queue,
        function_name=args.ingest_function,
    )
    progress = None if args.json or not sys.stderr.isatty() else _Progress()
    try:
        return settle(
            buffer, destination, now=now, policy=policy, owner=_owner(), ingest_health=health,
            progress=progress,
        )  # fmt: skip
    finally:
        if progress is not None:
            progress.end()


class _Progress:
    """Blocks replayed and blocks per second on one stderr line (a terminal only), rewritten
    at most every ``every`` seconds while a long cycle runs."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.last: float | None = None  # the report's seconds when last shown
        self.shown = False

    def __call__(self, report: SettleReport) -> None:
        if self.last is not None and report.seconds - self.last < self.every:
            return
        self.last = report.seconds
        r = report.rates()
        sys.stderr.write(
            f"\rsettling: {report.blocks:,} blocks in {r['seconds']:.1f} s, "
            f"{r['blocks_per_s']:,.0f} blocks/s, {r['statements_per_s']:,.0f} statements/s  "
        )
        sys.stderr.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _start(
    buffer: SettlingBuffer, destination: Destination, ref: str, hash_hex: str | None
) -> Checkpoint:
    from destination.port import Checkpoint
    from journal.records import BlockAddress, block_id
    from settler.operator import set_start

    strand, _, seq_text = ref.rpartition("/")
    try:
        seq = int(seq_text)
    except ValueError:
        raise InputError(f"--start-after must be [STRAND/]SEQUENCE, not {ref!r}") from None
    strands = [(lg, s) for lg, s in buffer.strands() if not strand or s == strand]
    if len(strands) != 1:
        which = "no" if not strands else "several"
        raise InputError(f"{which} buffered strands match --start-after {ref}: give STRAND/SEQ")
    ledger, strand_id = strands[0]
    if destination.checkpoint(ledger, strand_id) is not None:
        raise InputError(
            f"the destination already has a checkpoint for {ledger}/{strand_id}: "
            "--start-after is only for an empty replica"
        )
    if hash_hex is not None:
        try:
            block_hash = bytes.fromhex(hash_hex)
        except ValueError:
            raise ConfigError(f"--start-hash is not hex: {hash_hex!r}") from None
    else:
        found = buffer.get_block(block_id(ledger, BlockAddress(strand_id, seq)))
        block_hash = found.summary.block_hash if found is not None else b""
    return set_start(
        destination,
        Checkpoint(ledger=ledger, strand_id=strand_id, sequence_no=seq, block_hash=block_hash),
    )


def _print(report: SettleReport, window: float, flags: str = "") -> None:
    j = report.to_json()
    r = j["replayed"]
    print(
        f"replayed {r['blocks']} blocks ({r['statements']} statements, {r['revisions']} "
        f"revisions); window {window:g} s"
    )
    rates = j["rates"]
    print(
        f"  {rates['seconds']:g} s: {rates['blocks_per_s']:,.0f} blocks/s, "
        f"{rates['statements_per_s']:,.0f} statements/s, {rates['revisions_per_s']:,.0f} "
        "revisions/s"
    )
    print(
        f"  held by window: {report.held_by_window}  early released: {report.early_released}  "
        f"gaps passed: {report.gaps_passed}  late: {report.late}  "
        f"quarantined: {report.quarantined}"
    )
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(report.unverified_reasons.items()))
    print(
        f"  statement digests: {report.digests_verified} verified, "
        f"{report.digests_unverified} unverified" + (f" ({reasons})" if reasons else "")
    )
    for cp in report.checkpoints:
        part = "" if cp.part is None else f" part {cp.part}"
        print(f"  checkpoint: {cp.ledger}/{cp.strand_id} block {cp.sequence_no}{part}")
    lag = j["lag_ms"]
    if lag["max"] is not None:
        print(f"  lag: {durations(lag)}")
    for gap in report.gaps:
        print(f"  gap passed: {gap.strand_id} {gap.first}..{gap.last}")
    for block, missing in report.waiting:
        print(f"  waiting: {block} misses revisions of {', '.join(missing)}")
    if report.deadline_reached:
        print("  stopped at the deadline: run it again to go on")
    if report.halted:
        reason, commands = suggested_commands(report.halt_reason or "", flags)
        print(f"HALTED: {reason}")
        if commands:
            print("  to recover, run in this order:")
            for command in commands:
                print(f"    {command}")
    if report.late or report.quarantined:
        print(
            "  needs an operator: `qldb-settle blocks --state quarantined|late`, then "
            "`qldb-settle resolve BLOCK (--retry|--skip|--apply-late) --reason TEXT`"
        )


def _follow(
    buffer: SettlingBuffer, destination: Destination, args: argparse.Namespace, settings: Settings
) -> int:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    window = settings.window_seconds
    totals = {"cycles": 0, "blocks": 0, "statements": 0, "revisions": 0, "gaps": 0}
    last: SettleReport | None = None
    note = ""

    def render() -> Table:
        table = Table(title=f"qldb-settle settle --follow (window {window:g} s)", show_header=False)
        table.add_column("what")
        table.add_column("value")
        table.add_row("cycles", str(totals["cycles"]))
        table.add_row(
            "replayed (total)",
            f"{totals['blocks']} blocks, {totals['statements']} statements, "
            f"{totals['revisions']} revisions",
        )
        table.add_row("gaps passed (total)", str(totals["gaps"]))
        if last is not None:
            lag = last.to_json()["lag_ms"]
            table.add_row(
                "checkpoint",
                ", ".join(f"{c.strand_id}/{c.sequence_no}" for c in last.checkpoints) or "none",
            )
            table.add_row("held by window", str(last.held_by_window))
            table.add_row("late / quarantined", f"{last.late} / {last.quarantined}")
            table.add_row(
                "digests (last cycle)",
                f"{last.digests_verified} verified, {last.digests_unverified} unverified",
            )
            if lag["max"] is not None:
                table.add_row("lag (last cycle)", durations(lag))
            table.add_row("halted", last.halt_reason or "no")
        if note:
            table.add_row("note", note)
        return table

    # Ctrl-C (SIGINT) asks the loop to stop after the cycle under way; a KeyboardInterrupt raised
    # anywhere could land inside rich's Live while its refresh thread waits on the lock it holds,
    # and the exit would then wait for ever. A second Ctrl-C interrupts at once.
    stop = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with Live(render(), console=Console(stderr=True), refresh_per_second=4) as live:
            while not stop.is_set():
                try:
                    last = _cycle(buffer, destination, args, settings, datetime.now(UTC))
                    note = ""
                except LeaseHeld as exc:
                    note = str(exc)
                totals["cycles"] += 1
                if last is not None and not note:
                    totals["blocks"] += last.blocks
                    totals["statements"] += last.statements
                    totals["revisions"] += last.revisions
                    totals["gaps"] += last.gaps_passed
                live.update(render())
                stop.wait(max(0.05, args.interval))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, previous)
    return EXIT_ATTENTION if last is not None and last.needs_operator else EXIT_OK


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise InputError(f"--now must be an ISO 8601 instant, not {text!r}") from None
