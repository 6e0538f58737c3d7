"""``qldb-settle rejected [--buffer URL] [--json]``: what the buffer kept but could not store."""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import os
import sys
from datetime import UTC, datetime

from journal.errors import InputError
from qldb_settle.output import (
    EXIT_ATTENTION,
    EXIT_OK,
    add_buffer,
    add_common_settings,
    add_json,
    iso_ms,
    print_json,
    settings_from,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "rejected",
        help="list rejected input and conflicting duplicates kept in the buffer",
        description=(
            "List every rejection the buffer keeps, oldest first: input that could not be "
            "decoded (kind base64, aggregate, gzip, json, ion, record-type, field, oversized) "
            "and conflicting copies of stored records (kind conflict), each with where it came "
            "from, the reason and its raw bytes (base64 in --json). Exit 1 while any of them is "
            "unresolved, 0 otherwise. An operator who has looked at one (and, say, re-ingested a "
            "repaired copy) acknowledges it with --acknowledge ID --reason TEXT: unresolved "
            "rejections keep the settler from passing gaps, since they could be a missing block."
        ),
    )
    p.add_argument(
        "--acknowledge",
        nargs="+",
        metavar="ID",
        help="mark these rejections (the id column) resolved, recording who, when and why",
    )
    p.add_argument("--reason", metavar="TEXT", help="why (required with --acknowledge)")
    p.add_argument("--actor", metavar="NAME", help="who acknowledges (default $USER)")
    add_buffer(p)
    add_common_settings(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compose.roots import open_buffer

    if args.acknowledge and not args.reason:
        raise InputError("--acknowledge needs --reason TEXT (it is recorded with the decision)")
    buffer = open_buffer(settings_from(args), opensearch_auth=args.opensearch_auth)
    try:
        if args.acknowledge:
            actor = args.actor or os.environ.get("USER") or getpass.getuser()
            done = buffer.acknowledge_rejections(
                args.acknowledge, args.reason, actor, datetime.now(UTC)
            )
            print(f"acknowledged {done} of {len(args.acknowledge)} rejections", file=sys.stderr)
        rejections = list(buffer.rejected())
        unresolved = buffer.unresolved_rejections()
    finally:
        buffer.close()
    rows: list[dict[str, object]] = [
        {
            "id": r.rejection_id,
            "origin": r.origin,
            "kind": r.kind,
            "reason": r.reason,
            "arrived_at": iso_ms(r.arrived_at),
            "record_id": r.record_id,
            "size": len(r.raw),
            "sha256": hashlib.sha256(r.raw).hexdigest(),
            "raw": base64.b64encode(r.raw).decode("ascii"),
            "resolved_at": iso_ms(r.resolved_at),
            "resolved_by": r.resolved_by,
            "resolution": r.resolution,
        }
        for r in rejections
    ]
    if args.json:
        print_json({"rejected": rows, "count": len(rows), "unresolved": unresolved})
    else:
        _print_list(rows, unresolved)
    return EXIT_ATTENTION if unresolved else EXIT_OK


def _print_list(rows: list[dict[str, object]], unresolved: int) -> None:
    if not rows:
        print("no rejected records")
        return
    print(f"{len(rows)} rejected, {unresolved} unresolved (oldest first):")
    for r in rows:
        resolved = (
            f"  resolved {r['resolved_at']} by {r['resolved_by']}" if r["resolved_at"] else ""
        )
        record = f"  record {r['record_id']}" if r["record_id"] else ""
        print(f"- {r['id']}  {r['kind']}  {r['size']} bytes  {r['origin']}{record}{resolved}")
        print(f"    {r['reason']}")
