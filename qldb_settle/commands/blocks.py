"""``qldb-settle blocks [--buffer URL] [--state STATE] [--json]``: the buffered blocks in commit
order, with their state and who changed it, when and why."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from buffer.port import BLOCK_STATES, BlockRow
from qldb_settle.commands.status import open_existing_buffer
from qldb_settle.output import (
    EXIT_ATTENTION,
    EXIT_OK,
    add_buffer,
    add_common_settings,
    add_json,
    iso_ms,
    print_json,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "blocks",
        help="list buffered blocks in commit order, optionally of one state",
        description=(
            "List the buffered blocks in commit order (ledger, strand, sequence number) with "
            "their state, commit time, statement and revision counts, and the reason, actor and "
            "time of their last state change. Exit 1 when the list holds quarantined or late "
            "blocks (they wait for an operator: qldb-settle resolve), 0 otherwise."
        ),
    )
    add_buffer(p)
    add_common_settings(p)
    p.add_argument("--state", choices=BLOCK_STATES, help="only blocks in this state")
    add_json(p)
    p.set_defaults(run=run)


def block_json(row: BlockRow) -> dict[str, Any]:
    return {
        "id": row.block_id,
        "ledger": row.ledger,
        "strand_id": row.strand_id,
        "sequence_no": row.sequence_no,
        "state": row.state,
        "commit_time": iso_ms(row.commit_time),
        "statements": row.statements,
        "revisions_expected": row.revisions_expected,
        "revisions_buffered": row.revisions_buffered,
        "reason": row.reason,
        "actor": row.actor,
        "updated_at": iso_ms(row.updated_at),
    }


def run(args: argparse.Namespace) -> int:
    buffer = open_existing_buffer(args)
    try:
        rows = list(buffer.blocks(args.state))
    finally:
        buffer.close()
    if args.json:
        print_json({"blocks": [block_json(r) for r in rows]})
    else:
        _print(rows, args.state)
    waiting = any(r.state in ("quarantined", "late") for r in rows)
    return EXIT_ATTENTION if waiting else EXIT_OK


def _print(rows: Sequence[BlockRow], state: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(f"no {state + ' ' if state else ''}blocks")
        return
    table = Table(title=f"{len(rows)} {state + ' ' if state else ''}block(s)")
    for col in ("strand", "seq", "state", "commit time", "stmts", "revisions", "reason", "by"):
        table.add_column(col, overflow="fold")
    for r in rows:
        by = " ".join(x for x in (r.actor, iso_ms(r.updated_at)) if x)
        table.add_row(
            r.strand_id, str(r.sequence_no), r.state, iso_ms(r.commit_time) or "",
            str(r.statements), f"{r.revisions_buffered}/{r.revisions_expected}",
            r.reason or "", by,
        )  # fmt: skip
    console.print(table)
