"""``qldb-settle verify``: compare the replica with its source, by content."""

from __future__ import annotations

import argparse
from pathlib import Path

from journal.errors import InputError
from qldb_settle.output import (
    EXIT_ATTENTION,
    EXIT_OK,
    add_common_settings,
    add_destination,
    add_json,
    print_json,
    settings_from,
)
from runtime.errors import ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "verify",
        help="prove the replica equal to its source (exit 1 when it is not)",
        description=(
            "Compare every document of the replica with the source by content (document ids "
            "differ by design). --source DIR (a `simulate` folder) checks twice: against the "
            "source ledger DIR/source.db, and against the latest REVISION_DETAILS of every "
            "document in DIR/events (and in DIR/export, the journal export `simulate --export` "
            "writes), which does not depend on the PartiQL engine. --expected "
            "FILE compares with an `export --format ion` file. --chain checks the replica's own "
            "stored history alone (a postgresql:// destination: every block's hash from its "
            "entries and predecessor hashes, its link to the block before it, and every stored "
            "revision's hash from its Ion), and reports the first break."
        ),
    )
    add_destination(p)
    add_common_settings(p)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--source", type=Path, metavar="DIR", help="a simulate --out folder")
    group.add_argument("--expected", type=Path, metavar="FILE", help="an export --format ion file")
    group.add_argument(
        "--chain",
        action="store_true",
        help="check the destination's stored history and block chain alone (PostgreSQL)",
    )
    p.add_argument(
        "--show", type=int, default=10, metavar="N", help="differences to print (default 10)"
    )
    add_json(p)
    p.set_defaults(run=run)


def replica_documents(destination: object) -> list[tuple[str, object]]:
    """(table, data) of every user document of a destination that can list them."""
    documents = getattr(destination, "documents", None)
    if documents is None:
        ledger = getattr(destination, "ledger", None)
        documents = getattr(ledger, "documents", None)
    if documents is None:
        raise ConfigError(f"{type(destination).__name__} cannot list its documents")
    return [(str(table), data) for table, _id, data in documents()]


def run(args: argparse.Namespace) -> int:
    from compose.roots import open_destination
    from settler.compare import (
        compare,
        documents_of_export,
        documents_of_ledger,
        documents_of_stream,
        event_files,
        export_of_simulation,
        revisions_of_export,
    )

    settings = settings_from(args)
    destination = open_destination(settings)
    if args.chain:
        try:
            return _chain(destination, args)
        finally:
            destination.close()
    try:
        replica = replica_documents(destination)
        # Copies a JSON Lines export down-converted, as the destination marks them.
        marked = getattr(destination, "down_converted_documents", None)
        lossy = marked() if marked is not None else []
    finally:
        destination.close()
    comparisons = []
    if args.source is not None:
        src = args.source
        if not (src / "source.db").exists():
            raise InputError(f"{src}: no source.db (not a `qldb-settle simulate` folder)")
        comparisons.append(
            compare(
                "source ledger",
                documents_of_ledger(src / "source.db"),
                replica,
                down_converted_copies=lossy,
            )
        )
        events = list(event_files(src / "events"))
        exported = export_of_simulation(src)
        if events or exported is not None:
            # The export holds the journal's first part: documents last revised there are part
            # of the reference, not "unexpected" in the replica.
            revisions = () if exported is None else revisions_of_export(*exported)
            comparisons.append(
                compare("stream revisions", documents_of_stream(events, revisions), replica)
            )
    else:
        comparisons.append(compare(str(args.expected), documents_of_export(args.expected), replica))
    equal = all(c.equal for c in comparisons)
    if args.json:
        print_json(
            {
                "equal": equal,
                "documents": len(replica),
                "missing": sum(len(c.missing) for c in comparisons),
                "unexpected": sum(len(c.unexpected) for c in comparisons),
                "different": 0,
                "down_converted": max((c.down_converted for c in comparisons), default=0),
                "references": [c.summary() for c in comparisons],
            }
        )
    else:
        from amazon.ion import simpleion

        for c in comparisons:
            verdict = "EQUAL" if c.equal else "DIFFERENT"
            print(
                f"{verdict} to the {c.reference}: {c.documents} documents, "
                f"{len(c.missing)} missing, {len(c.unexpected)} unexpected"
            )
            if c.down_converted:
                print(
                    f"  {c.down_converted} of them equal only after the JSON Lines export's "
                    "down-conversion: their Ion types are lost in the replica"
                )
            for label, docs in (("missing", c.missing), ("unexpected", c.unexpected)):
                for table, data in docs[: args.show]:
                    print(f"  {label} in {table}: {simpleion.dumps(data, binary=False)}")
    return EXIT_OK if equal else EXIT_ATTENTION


def _chain(destination: object, args: argparse.Namespace) -> int:
    verify_chain = getattr(destination, "verify_chain", None)
    if verify_chain is None:
        raise InputError(
            "verify --chain reads a destination that stores its history "
            f"({type(destination).__name__} does not keep one this command can read; "
            "a postgresql:// destination does)"
        )
    report = verify_chain()
    first = report.breaks[0] if report.breaks else None
    if args.json:
        print_json(
            {
                "equal": report.ok,
                "blocks": report.blocks,
                "revisions": report.revisions,
                "revisions_hashed": report.revisions_hashed,
                "breaks": len(report.breaks),
                "first_break": None
                if first is None
                else {"where": first.where, "reason": first.reason},
            }
        )
    elif first is None:
        print(
            f"CHAIN VERIFIED: {report.blocks} blocks linked and hashed, {report.revisions} "
            f"revisions in their blocks, {report.revisions_hashed} recomputed from their Ion"
        )
    else:
        print(f"CHAIN BROKEN at {first.where}: {first.reason} ({len(report.breaks)} breaks in all)")
    return EXIT_OK if report.ok else EXIT_ATTENTION
