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

``statement_kind(text)`` is ``classify(text).kind`` decided once per shape of statement (the
ingest path's; see "by shape" below).

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
    Parsed,
    Path,
    Select,
    Source,
    UndropTable,
    Update,
    walk,
)
from ledger.parser import NONDETERMINISTIC, SHAPE_MARK, parse, parse_shape

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
    return _classify_parsed(parsed)


def _classify_parsed(parsed: Parsed) -> Classification:
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


# --- by shape -----------------------------------------------------------------------------------
#
# Most streamed statements repeat with other literals (INSERT INTO T {'VIN': '...'}, UPDATE ...
# WHERE t.id = '...'): their kind is decided once per shape (``ledger.parser.parse_shape``).
# That is exact where the kind cannot depend on a literal's value: what ``_classify_parsed``
# reads of a tree, besides its node types and parameter count (both fixed by the shape), is
# names (a path's root and fields, a function's, a source's table, alias and BY variable), and a
# literal can only become a name through a bracketed string step (``t['metadata']['id']``). So a
# shape whose tree holds a string placeholder in any name is not cached: each statement of it is
# classified as itself.

_MAX_SHAPES = 4096
_by_shape: dict[str, StatementKind | None] = {}  # None: the kind may depend on the literals


def _names_a_literal(statement: Any) -> bool:
    for n in walk(statement):
        if isinstance(n, Path):
            names = [n.root, *(s.name for s in n.steps if isinstance(s, Field))]
        elif isinstance(n, Call):
            names = [n.name]
        elif isinstance(n, Source):
            names = [n.table, n.alias or "", n.by or "", n.kind]
        else:
            continue
        if any(SHAPE_MARK in name for name in names):
            return True
    return False


def statement_kind(text: str) -> StatementKind:
    """``classify(text).kind``, decided once per shape of statement where the literals cannot
    change it (see above), else for the statement itself."""
    shaped = parse_shape(text)
    if shaped is None:
        return classify(text).kind
    shape, parsed = shaped
    if shape in _by_shape:
        kind = _by_shape[shape]
    else:
        if len(_by_shape) >= _MAX_SHAPES:
            _by_shape.clear()
        kind = None if _names_a_literal(parsed.statement) else _classify_parsed(parsed).kind
        _by_shape[shape] = kind
    return classify(text).kind if kind is None else kind
