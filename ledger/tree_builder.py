"""The tree builder: lark callbacks that turn a parse of ``grammar.lark`` into ``ledger.nodes``.

``_Builder`` runs inline with the LALR parse (``ledger.parser`` owns the parser, its errors and
its caches); a callback that refuses what it was given raises ``_Fail`` with the token, which the
parser turns into a ``ParseError`` naming it. Also here: the names the builder accepts
(``SOURCE_FUNCTIONS``; ``FUNCTIONS`` and CAST's and the date functions' words are in
``ledger.function_names``) and Ion literals (``ion_literal``). Imports only lark, the
standard library and amazon.ion (the ingest Lambda parses too).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from decimal import Decimal
from functools import lru_cache
from typing import Any

from lark import Token, Transformer

from ledger.function_names import CAST_TYPES, DATE_PARTS, EXTRACT_PARTS, FUNCTIONS
from ledger.nodes import (
    AGGREGATES,
    MISSING,
    And,
    BagExpr,
    Between,
    Binary,
    Call,
    Case,
    Compare,
    CreateIndex,
    CreateTable,
    Delete,
    DmlOp,
    DropIndex,
    DropTable,
    Exec,
    Expr,
    Field,
    Index,
    InList,
    InsertIntoOp,
    InsertMany,
    InsertValue,
    IsType,
    Join,
    Like,
    ListExpr,
    Lit,
    Negate,
    Not,
    Or,
    Param,
    Path,
    RemoveOp,
    Select,
    SelectItem,
    SetOp,
    Source,
    Star,
    Statement,
    Step,
    StructExpr,
    Subquery,
    UndropTable,
    Update,
    WildcardPath,
)

MAX_STATEMENT_CHARS = 100_000
COMMITTED_PREFIX = "_ql_committed_"

SOURCE_FUNCTIONS = frozenset({"history"})


_TIMESTAMP = re.compile(
    r"(\d{4})(?:T|-(\d{2})(?:T|-(\d{2})(?:T?|T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2}))))"
)


def _timestamp(m: re.Match[str]) -> Any:
    """An Ion timestamp literal, built as amazon.ion's text reader builds it (same precision,
    fraction and offset)."""
    from amazon.ion.core import IonType, TimestampPrecision, timestamp
    from amazon.ion.simple_types import IonPyTimestamp

    year, month, day, hour, minute, second, fraction, offset = m.groups()
    precision = TimestampPrecision.YEAR
    if month is not None:
        precision = TimestampPrecision.MONTH
    if day is not None:
        precision = TimestampPrecision.DAY
    if hour is not None:
        precision = TimestampPrecision.MINUTE
    if second is not None:
        precision = TimestampPrecision.SECOND
    off_hour = off_minute = None
    if offset is not None:
        if offset == "Z":
            off_hour, off_minute = 0, 0
        elif offset != "-00:00":  # -00:00 is an unknown offset: a naive datetime
            sign = -1 if offset[0] == "-" else 1
            off_hour, off_minute = sign * int(offset[1:3]), sign * int(offset[4:6])
    frac = None
    if fraction is not None:
        frac = Decimal(int(fraction)).scaleb(-1 * len(fraction))
    value = timestamp(
        int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
        int(second or 0), None, off_hour, off_minute, precision=precision,
        fractional_precision=None, fractional_seconds=frac,
    )  # fmt: skip
    return IonPyTimestamp.from_value(IonType.TIMESTAMP, value)


@lru_cache(maxsize=4096)
def ion_literal(text: str) -> Any:
    """The value of a backtick Ion literal (timestamps, the common case, without the slow
    general reader). Containers are shared: ``ledger.evaluate`` copies them before use."""
    m = _TIMESTAMP.fullmatch(text.strip())
    if m is not None:
        return _timestamp(m)
    from amazon.ion import simpleion

    return simpleion.loads(text)


class _Fail(Exception):
    """Raised inside the tree builder; turned into ``ParseError`` with the token's position."""

    def __init__(self, token: Token, message: str) -> None:
        self.token = token
        self.message = message
        super().__init__(message)


def _unquote(text: str, quote: str) -> str:
    return text[1:-1].replace(quote + quote, quote)


def _name(token: Token) -> str:
    return _unquote(str(token), '"') if token.type == "QUOTED_IDENT" else str(token)


class _Builder(Transformer[Token, Any]):
    """Builds ``ledger.nodes`` bottom-up, inline with the LALR parse (no intermediate tree)."""

    def __init__(self) -> None:
        super().__init__()
        self.params = 0
        self.stars: list[Token] = []  # the * tokens seen, until a SELECT places them
        self.subqueries: list[Token] = []  # subqueries seen, until a SELECT holds them
        self.select_token: Token | None = None

    # --- literals
    def string(self, t: list[Token]) -> Lit:
        return Lit(_unquote(str(t[0]), "'"))

    def int_(self, t: list[Token]) -> Lit:
        return Lit(int(t[0]))

    def decimal(self, t: list[Token]) -> Lit:
        return Lit(Decimal(str(t[0])))

    def float_(self, t: list[Token]) -> Lit:
        return Lit(float(t[0]))

    def ion(self, t: list[Token]) -> Lit:
        try:
            return Lit(ion_literal(str(t[0])[1:-1]))
        except Exception as exc:
            raise _Fail(t[0], f"is not a single Ion value ({exc})") from None

    def true(self, _: list[Token]) -> Lit:
        return Lit(True)

    def false(self, _: list[Token]) -> Lit:
        return Lit(False)

    def null(self, _: list[Token]) -> Lit:
        return Lit(None)

    def missing(self, _: list[Token]) -> Lit:
        return Lit(MISSING)

    def param(self, _: list[Token]) -> Param:
        p = Param(self.params)
        self.params += 1
        return p

    def struct_lit(self, t: list[Any]) -> StructExpr:
        return StructExpr(tuple(f for f in t if f is not None))

    def struct_field(self, t: list[Any]) -> tuple[str, Expr]:
        return (_unquote(str(t[0]), "'"), t[1])

    def list_lit(self, t: list[Any]) -> ListExpr:
        return ListExpr(tuple(x for x in t if x is not None))

    def bag_lit(self, t: list[Any]) -> BagExpr:
        return BagExpr(tuple(x for x in t[1:-1] if x is not None))

    # --- paths and calls
    def name_root(self, t: list[Token]) -> str:
        return str(t[0])

    def quoted_root(self, t: list[Token]) -> str:
        return _name(t[0])

    def field_step(self, t: list[Token]) -> Field:
        return Field(str(t[0]))

    def quoted_step(self, t: list[Token]) -> Field:
        return Field(_name(t[0]))

    def index_step(self, t: list[Any]) -> Step:
        e = t[0]
        if isinstance(e, Lit) and isinstance(e.value, str):
            return Field(e.value)
        return Index(e)

    def star_step(self, t: list[Token]) -> Token:
        return t[0]

    def wildcard_step(self, t: list[Token]) -> _Wildcard:
        return _Wildcard(t[0])

    def path(self, t: list[Any]) -> Path | Star | WildcardPath:
        steps = t[1:]
        if any(isinstance(s, _Wildcard) for s in steps):
            return self._wildcard_path(t[0], steps)
        for i, s in enumerate(steps):
            if isinstance(s, Token):
                if i != len(steps) - 1:
                    raise _Fail(s, "is a wildcard inside a path (only alias.* is supported)")
                self.stars.append(s)
                return Star(Path(t[0], tuple(steps[:-1])))
        return Path(t[0], tuple(steps))

    def call(self, t: list[Any]) -> Call:
        name = str(t[0]).lower()
        if name not in FUNCTIONS and name not in AGGREGATES:
            raise _Fail(t[0], "is not a function QLDB supports (PartiQL functions in Amazon QLDB)")
        args = tuple(a for a in t[1:] if a is not None)
        if name in AGGREGATES and len(args) != 1:
            raise _Fail(t[0], "takes one argument")
        if name in ("date_add", "date_diff"):
            first = args[0] if args else None
            part = first.root.lower() if isinstance(first, Path) and not first.steps else None
            if part not in DATE_PARTS or len(args) != 3:
                raise _Fail(t[0], "takes a date part (year, month, day, hour, minute or second)"
                            " and two more arguments")  # fmt: skip
            args = (Lit(part), *args[1:])
        return Call(name, args)

    def cast_call(self, t: list[Any]) -> Call:
        kind = CAST_TYPES.get(str(t[3]).lower())
        if kind is None:
            raise _Fail(t[3], f"is not a type CAST converts to ({', '.join(CAST_TYPES)})")
        return Call("cast", (t[1], Lit(kind)))

    def extract_call(self, t: list[Any]) -> Call:
        part = str(t[1]).lower()
        if part not in EXTRACT_PARTS:
            parts = ", ".join(sorted(EXTRACT_PARTS))
            raise _Fail(t[1], f"is not a date part EXTRACT takes ({parts})")
        return Call("extract", (Lit(part), t[3]))

    def trim_call(self, t: list[Any]) -> Call:
        """``TRIM(s)`` is ``Call("trim", (s,))``; ``TRIM(LEADING|TRAILING|BOTH [chars] FROM s)``
        is ``Call("trim", (s, Lit(side), chars))`` (chars default to a blank space)."""
        if len(t) == 2:
            return Call("trim", (t[1],))
        chars = t[2] if t[2] is not None else Lit(" ")
        return Call("trim", (t[4], Lit(str(t[1]).lower()), chars))

    def _wildcard_path(self, root: str, steps: list[Any]) -> WildcardPath:
        """``a.b[*].c[*].d``: the plain steps before the first ``[*]`` and after each one."""
        parts: list[list[Step]] = [[]]
        for s in steps:
            if isinstance(s, Token):  # a .* (UNPIVOT wildcard) is not done here
                raise _Fail(s, "is a .* wildcard inside a path (only [*] and alias.* run here)")
            if isinstance(s, _Wildcard):
                parts.append([])
            else:
                parts[-1].append(s)
        return WildcardPath(Path(root, tuple(parts[0])), tuple(tuple(p) for p in parts[1:]))

    def subquery_call(self, t: list[Any]) -> Call:
        if str(t[0]).lower() != "exists":
            raise _Fail(t[0], "takes no subquery (only EXISTS and IN do)")
        self.subqueries.append(t[0])
        return Call("exists", (Subquery(t[1]),))

    def scalar_subquery(self, t: list[Any]) -> Expr:
        assert self.select_token is not None  # the select inside the parentheses set it
        raise _Fail(
            self.select_token,
            "starts a subquery used as a value: only EXISTS (SELECT ...) and x IN (SELECT ...) "
            "take one here",
        )

    def distinct_call(self, t: list[Any]) -> Call:
        raise _Fail(t[1], "inside a function call is refused here (SELECT DISTINCT runs)")

    def in_subquery(self, t: list[Any]) -> InList:
        self.subqueries.append(t[2])
        return InList(t[0], None, Subquery(t[3]), t[1] is not None)

    def case_expr(self, t: list[Any]) -> Case:
        whens = tuple(x for x in t if isinstance(x, tuple))
        default = t[-2] if isinstance(t[-3], Token) and t[-3].type == "ELSE" else None
        return Case(t[1], whens, default)

    def when_clause(self, t: list[Any]) -> tuple[Expr, Expr]:
        return (t[1], t[3])

    def star_call(self, t: list[Any]) -> Call:
        if str(t[0]).lower() != "count":
            raise _Fail(t[0], "takes no * (only COUNT(*) does)")
        return Call("count(*)", ())

    # --- operators
    def negate(self, t: list[Any]) -> Expr:
        e = t[1]
        if (
            isinstance(e, Lit)
            and isinstance(e.value, int | float | Decimal)
            and not isinstance(e.value, bool)
        ):
            return Lit(-e.value)
        return Negate(e)

    def binary(self, t: list[Any]) -> Binary:
        return Binary(str(t[1]), t[0], t[2])  # type: ignore[arg-type]

    def compare(self, t: list[Any]) -> Compare:
        op = str(t[1])
        return Compare("<>" if op == "!=" else op, t[0], t[2])  # type: ignore[arg-type]

    def and_(self, t: list[Any]) -> And:
        return And(t[0], t[2])

    def or_(self, t: list[Any]) -> Or:
        return Or(t[0], t[2])

    def not_(self, t: list[Any]) -> Not:
        return Not(t[1])

    def in_list(self, t: list[Any]) -> InList:
        items = tuple(x for x in t[3:] if x is not None)
        return InList(t[0], items, None, t[1] is not None)

    def in_value(self, t: list[Any]) -> InList:
        return InList(t[0], None, t[3], t[1] is not None)

    def between(self, t: list[Any]) -> Between:
        return Between(t[0], t[3], t[5], t[1] is not None)

    def like(self, t: list[Any]) -> Like:
        escape = t[5] if len(t) > 5 else None
        return Like(t[0], t[3], escape, t[1] is not None)

    def is_type(self, t: list[Any]) -> IsType:
        kind = str(t[3]).lower()
        return IsType(t[0], "null" if kind == "null" else "missing", t[2] is not None)

    # --- sources
    def plain_name(self, t: list[Token]) -> tuple[str, Token]:
        return (str(t[0]), t[0])

    def quoted_name(self, t: list[Token]) -> tuple[str, Token]:
        return (_name(t[0]), t[0])

    def schema_name(self, t: list[Token]) -> tuple[str, Token]:
        name = f"{t[0]}.{t[1]}"
        if name.lower() != "information_schema.user_tables":
            raise _Fail(t[0], "is not a schema this ledger knows (information_schema.user_tables)")
        return (name.lower(), t[0])

    def source_ref(self, t: list[Any]) -> Source:
        name, _ = t[0]
        if name == "information_schema.user_tables":
            return Source(name, None, None, "user_tables")
        if name.startswith(COMMITTED_PREFIX):
            return Source(name[len(COMMITTED_PREFIX) :], None, None, "committed")
        return Source(name, None, None, "table")

    def function_source(self, t: list[Any]) -> Source:
        fn = str(t[0]).lower()
        if fn not in SOURCE_FUNCTIONS:
            raise _Fail(t[0], "is not a table function this ledger supports (history)")
        name, _ = t[1]
        return Source(name, None, None, "history", tuple(t[2:]))

    def select_source(self, t: list[Any]) -> Source:
        assert self.select_token is not None  # the select inside the parentheses set it
        self.subqueries.append(self.select_token)
        return Source("", None, None, "subquery", (Subquery(t[0]),))

    def unnest(self, t: list[Any]) -> Source:
        path = t[1]
        if not isinstance(path, Path) or not path.steps:
            raise _Fail(t[0], "unnests a path of an earlier source (@alias.field)")
        names = [str(x) for x in t[2:] if isinstance(x, Token) and x.type == "IDENT"]
        at_given = any(isinstance(x, Token) and x.type == "AT" for x in t)
        alias = names[0] if names and not (at_given and len(names) == 1) else None
        last = path.steps[-1]
        default = last.name if isinstance(last, Field) else path.root
        return Source(default, alias, None, "unnest", (path,), names[-1] if at_given else None)

    def source(self, t: list[Any]) -> Source:
        ref: Source = t[0]
        alias = by = None
        rest = [x for x in t[1:] if x is not None]
        for i, tok in enumerate(rest):
            if isinstance(tok, Token) and tok.type == "IDENT":
                if i > 0 and isinstance(rest[i - 1], Token) and rest[i - 1].type == "BY":
                    by = str(tok)
                else:
                    alias = str(tok)
        if ref.kind == "subquery":
            if alias is None or by is not None:
                assert self.select_token is not None
                raise _Fail(self.select_token, "starts a FROM subquery: it needs AS alias, no BY")
            return Source(alias, alias, None, "subquery", ref.args)
        return Source(ref.table, alias, by, ref.kind, ref.args)

    def where(self, t: list[Any]) -> Expr:
        return t[1]  # type: ignore[no-any-return]

    # --- DDL
    def option(self, t: list[Any]) -> tuple[str, Expr]:
        return (str(t[0]), t[2])

    def _options(self, t: list[Any]) -> tuple[tuple[str, Expr], ...]:
        return tuple(x for x in t if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str))

    def create_table(self, t: list[Any]) -> CreateTable:
        return CreateTable(t[2][0], self._options(t[3:]))

    def drop_table(self, t: list[Any]) -> DropTable:
        return DropTable(t[2][0])

    def undrop_table(self, t: list[Any]) -> UndropTable:
        return UndropTable(_name(t[2]))

    def create_index(self, t: list[Any]) -> CreateIndex:
        path: Path = t[4]
        return CreateIndex(t[3][0], path)

    def drop_index(self, t: list[Any]) -> DropIndex:
        return DropIndex(_name(t[2]), t[4][0], self._options(t[5:]))

    # --- DML
    def insert_value(self, t: list[Any]) -> InsertValue:
        return InsertValue(t[2][0], t[4])

    def insert_many(self, t: list[Any]) -> InsertMany:
        return InsertMany(t[2][0], t[3])

    def assignment(self, t: list[Any]) -> tuple[Path, Expr]:
        return (t[0], t[2])

    def set_clause(self, t: list[Any]) -> SetOp:
        return SetOp(tuple(t[1:]))

    def remove_clause(self, t: list[Any]) -> RemoveOp:
        return RemoveOp(t[1])

    def insert_into_clause(self, t: list[Any]) -> InsertIntoOp:
        return InsertIntoOp(t[2], t[4], t[6] if len(t) > 6 else None)

    def _dml_ops(self, t: list[Any]) -> tuple[DmlOp, ...]:
        return tuple(x for x in t if isinstance(x, SetOp | RemoveOp | InsertIntoOp))

    def update(self, t: list[Any]) -> Update:
        ops = self._dml_ops(t)
        where = t[-1] if not isinstance(t[-1], SetOp | RemoveOp | InsertIntoOp) else None
        return Update(t[1], ops, where, "update")

    def delete(self, t: list[Any]) -> Delete:
        return Delete(t[2], t[3])

    def from_dml(self, t: list[Any]) -> Update:
        return Update(t[1], self._dml_ops(t[3:]), t[2], "from")

    # --- SELECT
    def star_item(self, t: list[Token]) -> SelectItem:
        self.stars.append(t[0])
        return SelectItem(Star(None), None)

    def comma_join(self, t: list[Any]) -> Join:
        return Join(t[0], None)

    def cross_join(self, t: list[Any]) -> Join:
        return Join(t[2], None)

    def inner_join(self, t: list[Any]) -> Join:
        return Join(t[2], t[4])

    def outer_join(self, t: list[Any]) -> Join:
        raise _Fail(t[0], "JOIN is an outer join: QLDB supports only inner joins")

    def select_value(self, t: list[Any]) -> tuple[None, Expr]:
        return (None, t[1])

    def select_item(self, t: list[Any]) -> SelectItem:
        alias = str(t[2]) if len(t) > 2 and t[2] is not None else None
        if alias is not None and isinstance(t[0], Star):
            raise _Fail(t[1], "cannot name alias.* (it spreads the fields of a struct)")
        return SelectItem(t[0], alias)

    def select_items(self, t: list[Any]) -> tuple[tuple[SelectItem, ...] | None, None]:
        if len(t) == 1 and t[0].expr == Star(None):
            return (None, None)  # SELECT *
        return (tuple(t), None)

    def select(self, t: list[Any]) -> Select:
        self.select_token = t[0]  # the SELECT keyword of the select just built
        items, value = t[2]
        joins = tuple(x for x in t[5:-1] if isinstance(x, Join))
        nested = bool(self.subqueries)
        statement = Select(items, value, t[4], t[-1], joins, t[1] is not None, nested)
        self.subqueries.clear()
        if self.stars:
            self._check_stars(statement)
        return statement

    def _check_stars(self, statement: Select) -> None:
        """``*`` and ``alias.*`` are SELECT items only: anywhere else they are refused."""
        placed = sum(isinstance(i.expr, Star) for i in statement.items or ())
        if placed != sum(isinstance(n, Star) for n in _outside_subqueries(statement)):
            raise _Fail(self.stars[-1], "is allowed only as a SELECT item (* or alias.*)")
        self.stars.clear()

    def exec_statement(self, t: list[Any]) -> Exec:
        return Exec(str(t[1]), tuple(a for a in t[2:] if a is not None))

    def start(self, t: list[Any]) -> Statement:
        if self.stars:  # a * outside any SELECT's items
            raise _Fail(self.stars[-1], "is allowed only as a SELECT item (* or alias.*)")
        if self.subqueries:  # in an INSERT, UPDATE, DELETE or FROM statement
            raise _Fail(self.subqueries[-1], "takes a subquery only inside a SELECT here")
        return t[0]  # type: ignore[no-any-return]


class _Wildcard:
    """A ``[*]`` step while its path is built (never in a finished tree)."""

    def __init__(self, token: Token) -> None:
        self.token = token


def _outside_subqueries(node: Any) -> Iterator[Any]:
    """``walk`` without descending into subqueries (their own SELECT checked their stars)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Subquery):
            continue
        yield n
        if isinstance(n, tuple):
            stack.extend(n)
        elif dataclasses.is_dataclass(n) and not isinstance(n, type):
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n))
