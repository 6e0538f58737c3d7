"""``qldb-settle query [--destination URL] "SELECT ..."``: run a SELECT on the replica, for
people. Each result value is printed on its own line in Ion text. The statement runs in a
transaction that is then discarded, so a query adds nothing to the replica's journal; only
``SELECT`` statements are accepted (anything else: exit 2).
"""

from __future__ import annotations

import argparse
import sys

from journal.errors import InputError
from journal.ion_json import ion_text_line as ion_line
from qldb_settle.commands.export import open_replica_ledger
from qldb_settle.output import EXIT_OK, add_common_settings, add_destination


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "query",
        help="run a PartiQL SELECT on the replica and print the results (Ion text, one per line)",
        description=(
            "Run one PartiQL SELECT (QLDB's subset: the user view, _ql_committed_T, history(T), "
            "information_schema.user_tables; WHERE, BY, paths) on the replica and print each "
            "result on its own line in Ion text. Nothing is written, not even to the replica's "
            "journal. Exit 2 for a statement that is not a SELECT or does not run."
        ),
    )
    add_destination(p)
    add_common_settings(p)
    p.add_argument("statement", metavar='"SELECT ..."', help="the PartiQL SELECT statement")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ledger.errors import LedgerError, ParseError
    from ledger.nodes import Select
    from ledger.parser import parse

    try:
        parsed = parse(args.statement)
    except ParseError as exc:
        raise InputError(f"the statement does not parse: {exc.reason}") from None
    if not isinstance(parsed.statement, Select):
        raise InputError(
            f"query runs SELECT statements only, not {args.statement.split()[0].upper()} "
            "(the replica changes only by replay)"
        )
    destination, ledger = open_replica_ledger(args, "query")
    try:
        tx = ledger.begin()
        try:
            values = tx.execute(args.statement)
        except LedgerError as exc:
            raise InputError(str(exc)) from None
        finally:
            tx.abort()
        for value in values:
            sys.stdout.write(ion_line(value) + "\n")
        sys.stdout.flush()
    finally:
        destination.close()
    return EXIT_OK
