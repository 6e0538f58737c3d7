"""``qldb-settle simulate``: a busy source ledger and the hostile stream a Lambda would receive."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from qldb_settle.output import EXIT_OK, add_json, print_json
from runtime.errors import ConfigError

if TYPE_CHECKING:
    from qldb_settle.simulate import SimulationConfig

# --export-format names -> the outputFormat of a QLDB export request.
EXPORT_FORMATS = {"ion": "ION_TEXT", "ion-binary": "ION_BINARY", "jsonl": "JSON"}


def add_simulation_flags(p: argparse.ArgumentParser, *, transactions: int) -> None:
    p.add_argument(
        "--transactions",
        type=int,
        default=transactions,
        metavar="N",
        help=f"transactions to commit on the source ledger (default {transactions})",
    )
    p.add_argument(
        "--shards",
        type=int,
        default=4,
        metavar="S",
        help="Kinesis shards the records spread over by partition key (default 4)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=7,
        metavar="K",
        help="random seed: the same seed gives the same run (default 7)",
    )
    p.add_argument(
        "--dup-rate",
        type=float,
        default=0.15,
        metavar="P",
        help="share of stream records QLDB emits twice (default 0.15)",
    )
    p.add_argument(
        "--aggregate-rate",
        type=float,
        default=0.5,
        metavar="A",
        help="chance that neighbouring records are packed in one KPL aggregate (default 0.5)",
    )
    p.add_argument(
        "--max-delay-ms",
        type=int,
        default=20_000,
        metavar="D",
        help="largest delay between a commit and its record reaching Kinesis (default 20000)",
    )
    p.add_argument(
        "--read-only-rate",
        type=float,
        default=0.1,
        metavar="R",
        help="share of read-only transactions (default 0.1)",
    )
    p.add_argument(
        "--stream-read-only",
        action="store_true",
        help="stream the blocks of read-only transactions too (whether QLDB does is "
        "unsettled; by default they are gaps in the sequence)",
    )
    p.add_argument(
        "--param-rate",
        type=float,
        default=0.35,
        metavar="Q",
        help="share of writes sent with ? parameters (replayed from revisions; default 0.35)",
    )
    p.add_argument(
        "--export-format",
        "--export",
        dest="export_format",
        nargs="?",
        const="ion",
        choices=sorted(EXPORT_FORMATS),
        metavar="ion|ion-binary|jsonl",
        help="split the journal: its first part as a QLDB journal export (DIR/export/"
        "journalExport, Ion text, Ion binary or JSON Lines; ion when given alone), the stream "
        "continuing from there",
    )
    p.add_argument(
        "--export-fraction",
        type=float,
        default=0.5,
        metavar="F",
        help="with --export-format: share of the blocks in the export (default 0.5)",
    )


def simulation_config(args: argparse.Namespace) -> SimulationConfig:
    from qldb_settle.simulate import SimulationConfig

    for name in ("transactions", "shards"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name} must be at least 1")
    return SimulationConfig(
        transactions=args.transactions,
        shards=args.shards,
        seed=args.seed,
        dup_rate=args.dup_rate,
        aggregate_rate=args.aggregate_rate,
        max_delay_ms=args.max_delay_ms,
        read_only_rate=args.read_only_rate,
        stream_read_only=args.stream_read_only,
        param_rate=args.param_rate,
        export_format=EXPORT_FORMATS[args.export_format] if args.export_format else None,
        export_fraction=args.export_fraction,
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a busy source ledger and its duplicated, out-of-order stream",
        description=(
            "Run concurrent, overlapping transactions (with OCC conflicts and retries) against an "
            "embedded source ledger on a simulated clock, and write what the ingest Lambda would "
            "receive: DIR/events/*.json (Lambda Kinesis events, one shard each, in arrival "
            "order, with KPL aggregates, duplicates and delays), DIR/source.db (the source "
            "ledger, to compare with) and DIR/simulation.json (what happened)."
        ),
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="a new folder")
    add_simulation_flags(p, transactions=400)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from qldb_settle.simulate import simulate

    config = simulation_config(args)
    result = simulate(
        args.out,
        config,
        progress=None if args.json else (lambda msg: print(msg, file=sys.stderr)),
    )
    if args.json:
        print_json({"out": str(args.out), **result.stats})
    else:
        s = result.stats
        print(
            f"{s['transactions']} transactions ({s['occ_conflicts']} OCC conflicts retried), "
            f"{s['blocks']} blocks ({s['read_only_blocks']} read-only), "
            f"{s['stream_records']} stream records delivered as {s['delivered_records']} "
            f"({s['duplicate_records']} duplicates) in {s['events']} events -> {args.out}"
        )
    return EXIT_OK
