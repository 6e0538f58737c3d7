"""PartiQL text for the destinations that replay a block by running it (the embedded ledger, QLDB):
quoting an identifier, and reading what a source statement does (the table it creates or writes,
whether it is DDL) without running it.

Parsing uses the embedded ledger's parser (``ledger.parser``), which reads the PartiQL QLDB
accepts; a statement it cannot read is left to the destination, which refuses it with its own
message.
"""

from __future__ import annotations

from typing import Any


def quote(name: str) -> str:
    """A PartiQL quoted identifier (case-sensitive, any characters)."""
    return '"' + name.replace('"', '""') + '"'


def parse_statement(text: str) -> Any:
    """The parsed statement (a ``ledger.nodes`` node), or None when the parser cannot read it."""
    from ledger.errors import ParseError
    from ledger.parser import parse

    try:
        return parse(text).statement
    except ParseError:
        return None  # the destination itself will refuse it, with its own message


def created_table(text: str) -> str | None:
    """The table a ``CREATE TABLE`` statement creates, else None."""
    from ledger.nodes import CreateTable

    st = parse_statement(text)
    return st.table if isinstance(st, CreateTable) else None


def dml_table(text: str) -> str | None:
    """The table an INSERT, UPDATE, DELETE or FROM statement writes, else None."""
    from ledger.nodes import Delete, InsertMany, InsertValue, Update

    st = parse_statement(text)
    if isinstance(st, InsertMany | InsertValue):
        return st.table
    if isinstance(st, Update | Delete):
        return st.source.table
    return None


def is_ddl(text: str) -> bool:
    """Whether the statement creates, drops or undrops a table or an index."""
    from ledger.nodes import CreateIndex, CreateTable, DropIndex, DropTable, UndropTable

    return isinstance(
        parse_statement(text), CreateTable | CreateIndex | DropTable | DropIndex | UndropTable
    )
