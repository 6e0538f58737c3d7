"""``qldb-settle export [--destination URL] [--format ion|json]``: the replica's documents, one
per line, sorted by table then id, internal tables excluded (DESIGN.md "Command line").

``--format ion`` (the default) is lossless: ``{table: "T", id: "...", source_id: "...", data:
{...}}`` in Ion text, ``id`` the replica's document id and ``source_id`` the source's where known.
``--format json`` is for people: decimals are written exactly as JSON numbers, timestamps (in their
Ion text form, with their precision) and blobs (base64) as strings.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from journal.errors import InputError
from journal.ion_json import ion_text_line as ion_line
from journal.ion_json import json_text
from qldb_settle.output import EXIT_OK, add_common_settings, add_destination, settings_from

if TYPE_CHECKING:
    from ledger.engine import EmbeddedLedger

# A ledger behind ``serve-qldb`` replicated by the qldb: destination keeps these (destination/qldb).
INTERNAL_TABLE_PREFIX = "qldb_settle_"
SOURCE_ID_FIELD = "qldb_settle_source_id"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "export",
        help="print the replica's documents, one per line (Ion, lossless; or JSON for people)",
        description=(
            "Print every current document of the replica, one per line, sorted by table then "
            "document id, without the internal tables (checkpoint, id map). --format ion (the "
            'default) is lossless: {table: "T", id: "...", source_id: "...", data: {...}} with id '
            "the replica's document id and source_id the source's where known. --format json "
            "writes decimals exactly as JSON numbers and timestamps and blobs as strings."
        ),
    )
    add_destination(p)
    add_common_settings(p)
    p.add_argument(
        "--format", choices=("ion", "json"), default="ion", help="output format (default ion)"
    )
    p.set_defaults(run=run)


def open_replica_ledger(args: argparse.Namespace, command: str) -> tuple[Any, EmbeddedLedger]:
    """The embedded destination of the settings and its ledger; ``InputError`` (exit 2) for a
    ``qldb:`` destination or a missing file."""
    from compose.roots import open_destination

    settings = settings_from(args)
    scheme, _, rest = settings.destination.partition(":")
    if scheme == "qldb":
        raise InputError(
            f"{command} reads an embedded ledger (embedded:PATH); a qldb: destination is not "
            "supported by this command yet"
        )
    if scheme == "embedded" and rest and not Path(rest).exists():
        raise InputError(f"{rest}: no such replica file")
    destination = open_destination(settings)
    ledger = getattr(destination, "ledger", None)
    if ledger is None:
        destination.close()
        raise InputError(f"{command} needs an embedded ledger destination")
    return destination, ledger


def rows(destination: Any, ledger: EmbeddedLedger) -> Iterator[dict[str, Any]]:
    """``{table, id, source_id?, data}`` of each user document, sorted by table then id."""
    known: dict[str, str] = {}
    source_ids = getattr(destination, "source_ids", None)
    if source_ids is not None:
        known = source_ids()
    for table, doc_id, stored in ledger.documents():
        if table.startswith(INTERNAL_TABLE_PREFIX):
            continue
        row: dict[str, Any] = {"table": table, "id": doc_id}
        source_id = known.get(doc_id)
        data = stored
        if isinstance(stored, Mapping) and SOURCE_ID_FIELD in stored:
            source_id = str(stored[SOURCE_ID_FIELD])
            data = {k: v for k, v in stored.items() if k != SOURCE_ID_FIELD}
        if source_id is not None:
            row["source_id"] = source_id
        row["data"] = data
        yield row


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.destination.startswith(("postgresql://", "postgres://")):
        from compose.roots import open_destination

        destination: Any = open_destination(settings)
        # The PostgreSQL replica keeps the source's document ids: id and source_id are one.
        lines: Iterator[dict[str, Any]] = (
            {"table": table, "id": doc_id, "source_id": doc_id, "data": data}
            for table, doc_id, data in destination.documents()
        )
    else:
        destination, ledger = open_replica_ledger(args, "export")
        lines = rows(destination, ledger)
    try:
        write = sys.stdout.write
        for row in lines:
            if args.format == "ion":
                write(ion_line(row) + "\n")
            else:
                write(json_text(row) + "\n")
        sys.stdout.flush()
    finally:
        destination.close()
    return EXIT_OK
