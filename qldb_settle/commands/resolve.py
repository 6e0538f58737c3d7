"""``qldb-settle resolve BLOCK (--retry|--skip|--apply-late) --reason TEXT``: an operator's
decision about a quarantined or late block, recorded with who, what, when and why."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime

from journal.errors import InputError
from qldb_settle.output import (
    EXIT_OK,
    EXIT_TRANSIENT,
    add_buffer,
    add_common_settings,
    add_destination,
    add_json,
    iso_ms,
    parse_time,
    print_json,
    settings_from,
)
from runtime.errors import LeaseHeld


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "resolve",
        help="retry, skip or apply late a block the settler could not take",
        description=(
            "Decide about one block and record who decided what, when and why in its mark. "
            "--retry: a quarantined block goes back to pending (a conflicted block keeps its "
            "first copy: its conflicting copies are acknowledged). --skip: the block is never "
            "replayed; at the head of the line the destination's checkpoint moves past it "
            "(missing sequence numbers before it are recorded as a gap); a late block is only "
            "marked. --apply-late: a late block is applied out of order from its revisions, in "
            "one transaction that leaves the destination's checkpoint where it is (a document a "
            "later block also changed gets this older revision: check it with `qldb-settle "
            "export`)."
        ),
    )
    add_buffer(p)
    add_destination(p)
    add_common_settings(p)
    p.add_argument("block", metavar="BLOCK", help="SEQUENCE or STRAND/SEQUENCE")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--retry", dest="action", action="store_const", const="retry")
    action.add_argument("--skip", dest="action", action="store_const", const="skip")
    action.add_argument("--apply-late", dest="action", action="store_const", const="apply-late")
    p.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded)")
    p.add_argument(
        "--actor", metavar="NAME", help="who decides (recorded; default $USER)", default=None
    )
    p.add_argument("--now", metavar="ISO8601", help="when (default the real clock)")
    add_json(p)
    p.set_defaults(run=run)


def _actor(given: str | None) -> str:
    if given:
        return given
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def run(args: argparse.Namespace) -> int:
    from compose.roots import open_buffer, open_destination
    from settler.cycle_report import checkpoint_json
    from settler.operator import find_block, resolve

    now = _time(args.now) if args.now else datetime.now(UTC)
    settings = settings_from(args)
    buffer = open_buffer(settings, opensearch_auth=args.opensearch_auth)
    try:
        destination = open_destination(settings)
        try:
            block = find_block(buffer, args.block)
            try:
                done = resolve(
                    buffer,
                    destination,
                    block,
                    args.action,
                    reason=args.reason,
                    actor=_actor(args.actor),
                    now=now,
                )
            except LeaseHeld as exc:
                print(f"qldb-settle resolve: {exc}", file=sys.stderr)
                return EXIT_TRANSIENT
        finally:
            destination.close()
    finally:
        buffer.close()
    if args.json:
        cp = done.checkpoint
        print_json(
            {
                "block": done.block_id,
                "action": done.action,
                "previous_state": done.previous_state,
                "state": done.state,
                "actor": done.actor,
                "reason": done.reason,
                "at": iso_ms(done.at),
                "checkpoint": None if cp is None else checkpoint_json(cp),
                "detail": done.detail,
            }
        )
    else:
        print(
            f"{done.block_id}: {done.previous_state} -> {done.state} ({done.action} by "
            f"{done.actor} at {iso_ms(done.at)}: {done.reason})"
        )
        print(f"  {done.detail}")
    return EXIT_OK


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise InputError(f"--now must be an ISO 8601 instant, not {text!r}") from None
