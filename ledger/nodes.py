"""The typed syntax tree of QLDB's PartiQL subset: frozen dataclasses built by ``ledger.parser``.

Expressions evaluate to Ion values (amazon.ion simpleion); ``MISSING`` stands for PartiQL's
``missing`` (an absent value, distinct from ``null``). Parameters are numbered from 0 in the order
their ``?`` appears in the statement text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal


class _Missing:
    """PartiQL ``missing``: the value of a path that leads nowhere."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


# --- Expressions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal value (already an Ion value, or ``MISSING``)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Param:
    index: int


@dataclass(frozen=True, slots=True)
class Field:
    """``.name``, ``."name"`` or ``['name']``."""

    name: str


@dataclass(frozen=True, slots=True)
class Index:
    """``[expr]``: a list position when the expression is an int, a field when it is a string."""

    expr: Expr


Step = Field | Index


@dataclass(frozen=True, slots=True)
class Path:
    """``root.step...``: ``root`` is a source alias, a ``BY`` variable, or a field of the document
    in scope when it names neither."""

    root: str
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class StructExpr:
    fields: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class BagExpr:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary:
    op: Literal["+", "-", "*", "/", "%", "||"]
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Compare:
    op: Literal["=", "<>", "<", "<=", ">", ">="]
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class InList:
    """``x [NOT] IN (a, b)`` (``items``) or ``x [NOT] IN [..]``/``<<..>>``/``?`` (``source``)."""

    operand: Expr
    items: tuple[Expr, ...] | None
    source: Expr | None
    negated: bool


@dataclass(frozen=True, slots=True)
class Between:
    operand: Expr
    low: Expr
    high: Expr
    negated: bool


@dataclass(frozen=True, slots=True)
class Like:
    operand: Expr
    pattern: Expr
    escape: Expr | None
    negated: bool


@dataclass(frozen=True, slots=True)
class IsType:
    operand: Expr
    kind: Literal["null", "missing"]
    negated: bool


# Aggregate functions: only as a whole SELECT item (``ledger.select.project``); ``count(*)`` is
# ``COUNT(*)``, the count of rows.
AGGREGATES = frozenset({"count", "sum", "min", "max", "avg", "count(*)"})


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; ``name`` is lower-case and one of ``ledger.parser.FUNCTIONS``."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class WildcardPath:
    """``e[*]p1[*]p2...``: PartiQL's path collection expression, a bag (here a list) of the
    values ``SELECT VALUE vn.pn FROM e AS v1, @v1.p1 AS v2, ...`` gives. ``base`` is the path up
    to the first ``[*]``, ``segments`` the plain steps after each ``[*]``."""

    base: Path
    segments: tuple[tuple[Step, ...], ...]


@dataclass(frozen=True, slots=True)
class Case:
    """``CASE [operand] WHEN w THEN t ... [ELSE d] END``: without an operand each ``w`` is a
    condition (the first true one wins), with one each ``w`` is compared with it by ``=``; no
    match gives ``d``, or null without an ELSE."""

    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None


@dataclass(frozen=True, slots=True)
class Subquery:
    """``(SELECT ...)`` as ``EXISTS``'s argument or ``IN``'s right side; ``ledger.select``
    replaces it by its results before the enclosing SELECT runs (``Select.nested``)."""

    select: Select


Expr = (
    Lit | Param | Path | StructExpr | ListExpr | BagExpr | Negate | Binary | Compare | And | Or
    | Not | InList | Between | Like | IsType | Call | WildcardPath | Case | Subquery
)  # fmt: skip


# --- Statements ---------------------------------------------------------------------------------


SourceKind = Literal["table", "committed", "history", "user_tables", "unnest", "subquery"]


@dataclass(frozen=True, slots=True)
class Source:
    """``T [AS x] [AT i] [BY id]``; ``kind`` says whether it is a user view, a committed view
    (``_ql_committed_T``), ``history(T, ...)``, ``information_schema.user_tables`` or an
    unnesting ``@r.path`` (``args`` holds the path; ``table`` its default name, the last field)
    or a nested ``(SELECT ...) AS x`` (``args`` holds the Subquery, then its results).
    ``table`` is the user table name (without the ``_ql_committed_`` prefix). ``at`` names the
    variable bound to a list element's position (unnesting only)."""

    table: str
    alias: str | None
    by: str | None
    kind: SourceKind = "table"
    args: tuple[Expr, ...] = ()
    at: str | None = None

    @property
    def name(self) -> str:
        """The name a path may use to mean the document in scope."""
        return self.alias or self.table


@dataclass(frozen=True, slots=True)
class SetOp:
    assignments: tuple[tuple[Path, Expr], ...]


@dataclass(frozen=True, slots=True)
class RemoveOp:
    path: Path


@dataclass(frozen=True, slots=True)
class InsertIntoOp:
    """``INSERT INTO x.path VALUE v [AT k]`` (FROM-style): add to a list (at ``k``) or a struct
    (field ``k``)."""

    path: Path
    value: Expr
    at: Expr | None


DmlOp = SetOp | RemoveOp | InsertIntoOp


@dataclass(frozen=True, slots=True)
class CreateTable:
    table: str
    options: tuple[tuple[str, Expr], ...] = ()


@dataclass(frozen=True, slots=True)
class DropTable:
    table: str


@dataclass(frozen=True, slots=True)
class UndropTable:
    table_id: str


@dataclass(frozen=True, slots=True)
class CreateIndex:
    table: str
    path: Path


@dataclass(frozen=True, slots=True)
class DropIndex:
    index_id: str
    table: str
    options: tuple[tuple[str, Expr], ...] = ()


@dataclass(frozen=True, slots=True)
class InsertValue:
    """``INSERT INTO T VALUE expr``: one document."""

    table: str
    value: Expr


@dataclass(frozen=True, slots=True)
class InsertMany:
    """``INSERT INTO T << ... >>`` / ``[...]`` / ``?`` / ``{...}``: each element of a bag or list
    is a document; a struct (literal or parameter) is one document."""

    table: str
    values: Expr


@dataclass(frozen=True, slots=True)
class Update:
    """``UPDATE`` and ``FROM ... SET/REMOVE/INSERT INTO`` (same semantics, ``form`` keeps which)."""

    source: Source
    ops: tuple[DmlOp, ...]
    where: Expr | None
    form: Literal["update", "from"] = "update"


@dataclass(frozen=True, slots=True)
class Delete:
    source: Source
    where: Expr | None


@dataclass(frozen=True, slots=True)
class SelectItem:
    expr: Expr | Star
    alias: str | None


@dataclass(frozen=True, slots=True)
class Star:
    """``*`` or ``alias.*`` as a SELECT item (``path`` None: ``*``): the fields of the document
    (of every source, in a join) spread into the result struct. Not a value anywhere else."""

    path: Path | None


@dataclass(frozen=True, slots=True)
class Join:
    """One more source of an inner join: ``, s``, ``CROSS JOIN s``, ``[INNER] JOIN s [ON c]``."""

    source: Source
    on: Expr | None


@dataclass(frozen=True, slots=True)
class Select:
    """``SELECT [DISTINCT] * | VALUE e | e [AS a], ... FROM source [join...] [WHERE ...]``
    (``items`` None: ``*``); ``joins`` are the inner join's further sources, in order."""

    items: tuple[SelectItem, ...] | None
    value: Expr | None
    source: Source
    where: Expr | None
    joins: tuple[Join, ...] = ()
    distinct: bool = False  # SELECT DISTINCT: equal results once (``ledger.select.distinct``)
    nested: bool = False  # a Subquery is somewhere in it (resolved first, see Subquery)


@dataclass(frozen=True, slots=True)
class Exec:
    """``EXEC procedure arg, ...``: a stored procedure call (QLDB has ``redact_revision``)."""

    procedure: str
    args: tuple[Expr, ...]


Statement = (
    CreateTable | DropTable | UndropTable | CreateIndex | DropIndex | InsertValue | InsertMany
    | Update | Delete | Select | Exec
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed statement and how many ``?`` parameters it takes."""

    text: str
    statement: Statement
    parameters: int


def walk(node: Any) -> Iterator[Any]:
    """Every node below (and including) ``node`` of a ``ledger.nodes`` tree."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if dataclasses.is_dataclass(n) and not isinstance(n, type):
            for f in dataclasses.fields(n):
                stack.append(getattr(n, f.name))
        elif isinstance(n, tuple):
            stack.extend(n)
