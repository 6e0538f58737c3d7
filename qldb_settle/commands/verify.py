"""``qldb-settle verify``: compare the replica with its source, by content."""

from __future__ import annotations

import argparse
from pathlib import Path

from journal.errors import ConfigError, InputError
from qldb_settle.output import (
    add_common_settings,
    add_destination,
    add_json,
    print_json,
    settings_from,
)

EXIT_OK, EXIT_ATTENTION = 0, 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "verify",
        help="prove the replica equal to its source (exit 1 when it is not)",
        description=(
            "Compare every document of the replica with the source by content (document ids "
            "differ by design). --source DIR (a `simulate` folder) checks twice: against the "
            "source ledger DIR/source.db, and against the latest REVISION_DETAILS of every "
            "document in DIR/events, which does not depend on the PartiQL engine. --expected "
            "FILE compares with an `export --format ion` file."
        ),
    )
    add_destination(p)
    add_common_settings(p)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--source", type=Path, metavar="DIR", help="a simulate --out folder")
    group.add_argument("--expected", type=Path, metavar="FILE", help="an export --format ion file")
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
    from qldb_settle.verify import (
        compare,
        documents_of_export,
        documents_of_ledger,
        documents_of_stream,
        event_files,
    )

    settings = settings_from(args)
    destination = open_destination(settings)
    try:
        replica = replica_documents(destination)
    finally:
        destination.close()
    comparisons = []
    if args.source is not None:
        src = args.source
        if not (src / "source.db").exists():
            raise InputError(f"{src}: no source.db (not a `qldb-settle simulate` folder)")
        comparisons.append(
            compare("source ledger", documents_of_ledger(src / "source.db"), replica)
        )
        events = list(event_files(src / "events"))
        if events:
            comparisons.append(compare("stream revisions", documents_of_stream(events), replica))
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
            for label, docs in (("missing", c.missing), ("unexpected", c.unexpected)):
                for table, data in docs[: args.show]:
                    print(f"  {label} in {table}: {simpleion.dumps(data, binary=False)}")
    return EXIT_OK if equal else EXIT_ATTENTION
