"""What a streamed statement is, for replay (DESIGN.md rule 7), decided by the ledger's own parser.

``classify(text)`` gives one of:

- ``literal``: DML or DDL that can be replayed from its text;
- ``select``: read-only, skipped on replay;
- ``parameterized``: has ``?`` parameters (their values are not streamed);
- ``document_id``: references document ids (``BY id``, ``metadata.id``, committed views,
  ``history()``), which differ between source and replica;
- ``nondeterministic``: calls a non-deterministic function (the reason names it);
- ``ddl_id``: DDL naming a source table or index id (``UNDROP TABLE "id"``, ``DROP INDEX "id"``);
- ``unsupported``: the parser refuses it (the reason points at the token).

Imports only lark, the standard library and amazon.ion (it runs in the ingest Lambda).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

from ledger.errors import ParseError
from ledger.nodes import (
    Call,
    CreateIndex,
    CreateTable,
    Delete,
    DropIndex,
    DropTable,
    Exec,
    Field,
    InsertMany,
    InsertValue,
    Path,
    Select,
    Source,
    UndropTable,
    Update,
    walk,
)
from ledger.parser import NONDETERMINISTIC, parse

StatementKind = Literal[
    "literal", "select", "parameterized", "document_id", "nondeterministic", "ddl_id",
    "unsupported",
]  # fmt: skip
KINDS: tuple[StatementKind, ...] = (
    "literal", "select", "parameterized", "document_id", "nondeterministic", "ddl_id",
    "unsupported",
)  # fmt: skip
# Kinds a block can be replayed from as statements (``select`` is skipped).
REPLAYABLE_AS_TEXT: frozenset[str] = frozenset({"literal", "select"})


@dataclass(frozen=True, slots=True)
class Classification:
    kind: StatementKind
    reason: str

    @property
    def replayable_as_text(self) -> bool:
        return self.kind in REPLAYABLE_AS_TEXT


def _names_document_id(path: Path) -> bool:
    names = [s.name for s in path.steps if isinstance(s, Field)]
    if path.root == "metadata" and names[:1] == ["id"]:
        return True
    return any(a == "metadata" and b == "id" for a, b in itertools.pairwise(names))


def _classify_dml(statement: Any, parameters: int) -> Classification:
    if parameters:
        plural = "s" if parameters > 1 else ""
        return Classification("parameterized", f"has {parameters} parameter{plural} (?)")
    source: Source | None = getattr(statement, "source", None)
    if source is not None:
        if source.by:
            return Classification(
                "document_id", f"uses document ids (BY {source.by}) of the source ledger"
            )
        if source.kind == "committed":
            return Classification(
                "document_id", f"reads the committed view _ql_committed_{source.table}"
            )
        if source.kind == "history":
            return Classification("document_id", f"reads history({source.table})")
        if source.kind == "user_tables":
            return Classification("unsupported", "writes to information_schema.user_tables")
    nodes = list(walk(statement))
    for n in nodes:
        if isinstance(n, Path) and _names_document_id(n):
            return Classification("document_id", "references metadata.id")
    calls = sorted({n.name for n in nodes if isinstance(n, Call) and n.name in NONDETERMINISTIC})
    if calls:
        return Classification(
            "nondeterministic", "calls " + ", ".join(f"{c}()" for c in calls) + " (not replayable)"
        )
    return Classification("literal", "replayable from its text")


def classify(text: str) -> Classification:
    """Classify one statement text (never raises for bad input: that is ``unsupported``)."""
    try:
        parsed = parse(text)
    except ParseError as exc:
        return Classification("unsupported", exc.reason)
    s = parsed.statement
    if isinstance(s, Select):
        return Classification("select", "read-only")
    if isinstance(s, UndropTable):
        return Classification("ddl_id", f'UNDROP TABLE names the source table id "{s.table_id}"')
    if isinstance(s, DropIndex):
        return Classification("ddl_id", f'DROP INDEX names the source index id "{s.index_id}"')
    if isinstance(s, CreateTable | DropTable | CreateIndex):
        if parsed.parameters:
            return Classification("parameterized", "DDL with parameters (?)")
        return Classification("literal", "DDL replayable from its text")
    if isinstance(s, InsertValue | InsertMany | Update | Delete):
        return _classify_dml(s, parsed.parameters)
    if isinstance(s, Exec):
        return Classification(
            "unsupported", f"EXEC {s.procedure} is a stored procedure, not replayed from its text"
        )
    return Classification("unsupported", f"{type(s).__name__} is not classified")
