"""Parse QLDB PartiQL statements (``grammar.lark``) into the typed tree of ``ledger.nodes``.

``parse(text)`` returns a cached ``Parsed`` (the same text is parsed once per process) or raises
``ParseError`` pointing at the offending token by line and column. Statements that differ only
in their literals are parsed by lark once per shape (see "statements of one shape" below). Imports
only lark, the standard library and amazon.ion: the ingest Lambda classifies statements with it.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ledger.errors import ParseError
from ledger.nodes import (
    AGGREGATES,
    MISSING,
    And,
    BagExpr,
    Between,
    Binary,
    Call,
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
    Parsed,
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
    UndropTable,
    Update,
    walk,
)

MAX_STATEMENT_CHARS = 100_000
COMMITTED_PREFIX = "_ql_committed_"

# Functions the engine evaluates (lower-case). ``utcnow`` is the non-deterministic one.
FUNCTIONS = frozenset(
    {
        "utcnow", "upper", "lower", "char_length", "character_length", "size", "cardinality",
        "exists", "coalesce", "nullif", "substring", "trim", "to_string", "abs", "mod",
    }
)  # fmt: skip
NONDETERMINISTIC = frozenset({"utcnow"})
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

    def path(self, t: list[Any]) -> Path | Star:
        steps = t[1:]
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
            raise _Fail(t[0], "is not a function this ledger supports")
        args = tuple(a for a in t[1:] if a is not None)
        if name in AGGREGATES and len(args) != 1:
            raise _Fail(t[0], "takes one argument")
        return Call(name, args)

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
        items, value = t[1]
        joins = tuple(x for x in t[4:-1] if isinstance(x, Join))
        statement = Select(items, value, t[3], t[-1], joins)
        if self.stars:
            self._check_stars(statement)
        return statement

    def _check_stars(self, statement: Select) -> None:
        """``*`` and ``alias.*`` are SELECT items only: anywhere else they are refused."""
        placed = sum(isinstance(i.expr, Star) for i in statement.items or ())
        if placed != sum(isinstance(n, Star) for n in walk(statement)):
            raise _Fail(self.stars[-1], "is allowed only as a SELECT item (* or alias.*)")
        self.stars.clear()

    def exec_statement(self, t: list[Any]) -> Exec:
        return Exec(str(t[1]), tuple(a for a in t[2:] if a is not None))

    def start(self, t: list[Any]) -> Statement:
        if self.stars:  # a * outside any SELECT's items
            raise _Fail(self.stars[-1], "is allowed only as a SELECT item (* or alias.*)")
        return t[0]  # type: ignore[no-any-return]


_lock = threading.Lock()
_state: dict[str, Any] = {}


def _parser() -> tuple[Lark, _Builder]:
    """The LALR parser, built once on first use (grammar loading costs tens of milliseconds)."""
    built = _state.get("parser")
    if built is None:
        grammar = resources.files("ledger").joinpath("grammar.lark").read_text(encoding="utf-8")
        builder = _Builder()
        lark = Lark(
            grammar,
            parser="lalr",
            lexer="contextual",
            transformer=builder,
            propagate_positions=False,
            maybe_placeholders=True,
            cache=True,  # the grammar analysis, pickled in the temp dir, keyed by grammar hash
        )
        built = (lark, builder)
        _state["parser"] = built
    return built


def _position(text: str, line: int, column: int) -> str:
    lines = text.splitlines() or [""]
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    return f"line {line}, column {column}: {src[max(0, column - 30) : column + 30]!r}"


_SYMBOLS = {
    "LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]", "LBRACE": "{", "RBRACE": "}",
    "LBAG": "<<", "RBAG": ">>", "QMARK": "?", "SEMICOLON": ";", "COMMA": ",", "DOT": ".",
    "COLON": ":", "EQ": "=", "STAR": "*", "SUB": "-", "$END": "end of statement",
    "IDENT": "a name", "QUOTED_IDENT": '"quoted name"', "STRING": "'string'", "ION": "`ion`",
    "INT": "integer", "DECIMAL": "decimal", "FLOAT": "float", "COMPARE": "comparison",
}  # fmt: skip


def _expected(names: set[str] | frozenset[str]) -> str:
    shown = sorted(_SYMBOLS.get(n, n) for n in names if not n.startswith("__"))
    return ", ".join(shown[:16]) + (", ..." if len(shown) > 16 else "")


def _describe_unexpected(text: str, exc: UnexpectedInput) -> str:
    if isinstance(exc, UnexpectedEOF):
        return f"unexpected end of statement (expected {_expected(set(exc.expected))})"
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        expected = _expected(set(exc.accepts or exc.expected))
        if token.type == "$END":
            return f"unexpected end of statement (expected {expected})"
        return (
            f"unexpected {str(token)!r} at {_position(text, exc.line, exc.column)} "
            f"(expected {expected})"
        )
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else ""
        return f"unexpected character {ch!r} at {_position(text, exc.line, exc.column)}"
    return str(exc)


@lru_cache(maxsize=8192)
def parse(text: str) -> Parsed:
    """Parse one statement; raises ``ParseError`` (with the statement and the position)."""
    if len(text) > MAX_STATEMENT_CHARS:
        raise ParseError(
            text, f"is {len(text)} characters, over QLDB's limit of {MAX_STATEMENT_CHARS}"
        )
    if not text.strip():
        raise ParseError(text, "is empty")
    shaped = _parse_by_shape(text)
    return shaped if shaped is not None else _parse_lark(text)


def _parse_lark(text: str) -> Parsed:
    with _lock:
        lark, builder = _parser()
        builder.params = 0
        builder.stars = []
        try:
            statement: Statement = lark.parse(text)  # type: ignore[assignment]
        except UnexpectedInput as exc:
            raise ParseError(text, _describe_unexpected(text, exc)) from None
        except _Fail as exc:
            raise ParseError(text, _token_message(text, exc)) from None
        except Exception as exc:  # a builder callback error surfaces wrapped by lark
            inner = getattr(exc, "orig_exc", None)
            if isinstance(inner, _Fail):
                raise ParseError(text, _token_message(text, inner)) from None
            raise
        return Parsed(text=text, statement=statement, parameters=builder.params)


# --- statements of one shape --------------------------------------------------------------------
#
# Statements replayed from their text mostly differ only in their literals (INSERT INTO T {'VIN':
# '...'}, UPDATE ... WHERE t.id = '...'). Lark takes about half a millisecond for such a statement,
# so each is parsed once per shape: its string, int, decimal and Ion timestamp literals are
# replaced by placeholders of the same token type, the shape is parsed (and cached), and the values
# are put back into a copy of the tree. Lark would have seen the same token types in the same
# order, and no callback of the tree builder depends on these literals' values (only on their
# types; the negation of a number literal is folded, and placeholders are chosen to fold exactly),
# so the tree is the one lark gives for the statement itself (tests/ledger/test_ledger_shapes.py
# compares both on generated statements). A shape lark refuses is parsed again as the statement
# itself, for the error message.

_SHAPE_TOKENS = re.compile(
    # Skipped whole, as lark reads them: comments, quoted names, floats, decimals starting with
    # "." (after a name, lark may read "." and an int instead), names and keywords.
    r"(?P<skip>--[^\n]*|/\*(?:.|\n)*?\*/|\"(?:[^\"]|\"\")*\""
    r"|(?:\d+(?:\.\d*)?|\.\d+)[eE][+-]?\d+|\.\d+|[A-Za-z_$][A-Za-z0-9_$]*)"
    r"|(?P<ion>`[^`]*`)"
    r"|(?P<string>'(?:[^']|'')*')"
    r"|(?P<decimal>\d+\.\d*)"
    r"|(?P<int>\d+)"
)
_MARK = "\ue000"  # a private-use character: statements holding it are parsed as they are
_BASE = 9 * 10**20  # placeholder numbers: _BASE + n, and _BASE + n + 0.5 for decimals
_MAX_NUMBER = 24  # statements with longer numbers are parsed as they are
_MAX_TIMESTAMPS = 8999  # Ion timestamp literals: placeholders `1000T` to `9998T`
_FIELDS: dict[type, tuple[str, ...]] = {}

# placeholder -> value, for str, int, Decimal and Ion timestamp leaves (kept apart: 1 ==
# Decimal(1)). Only Ion literals that are timestamps get placeholders (a timestamp placeholder
# behaves like any timestamp in the tree builder; other Ion values may not, e.g. after "-").
_Values = tuple[dict[str, str], dict[int, int], dict[Decimal, Decimal], dict[Any, Any]]


def _shape(text: str) -> tuple[str, _Values] | None:
    """The statement with its literals replaced by placeholders, and their values."""
    if _MARK in text:
        return None
    parts: list[str] = []
    strings: dict[str, str] = {}
    ints: dict[int, int] = {}
    decimals: dict[Decimal, Decimal] = {}
    timestamps: dict[Any, Any] = {}
    last = 0
    for m in _SHAPE_TOKENS.finditer(text):
        kind = m.lastgroup
        if kind == "skip":
            continue
        token = m.group()
        if kind == "ion":
            try:
                value = ion_literal(token[1:-1])
            except Exception:  # left as it is: the shape is then refused like the statement
                continue
            if not _is_timestamp(value):
                continue
            if len(timestamps) >= _MAX_TIMESTAMPS:
                return None
            placeholder = f"`{1000 + len(timestamps)}T`"
            timestamps[ion_literal(placeholder[1:-1])] = value
        elif kind == "string":
            key = f"{_MARK}{len(strings)}"
            strings[key] = _unquote(token, "'")
            placeholder = f"'{key}'"
        elif len(token) > _MAX_NUMBER:
            return None
        elif kind == "int":
            n, v = _BASE + len(ints) // 2, int(token)
            ints[n], ints[-n] = v, -v
            placeholder = str(n)
        else:
            placeholder = f"{_BASE + len(decimals) // 2}.5"
            d, dv = Decimal(placeholder), Decimal(token)
            decimals[d], decimals[-d] = dv, -dv
        parts.append(text[last : m.start()])
        parts.append(f" {placeholder} ")
        last = m.end()
    if not parts:
        return None
    parts.append(text[last:])
    return "".join(parts), (strings, ints, decimals, timestamps)


@lru_cache(maxsize=4096)
def _parse_shape(shape: str) -> Parsed | None:
    try:
        return _parse_lark(shape)
    except Exception:  # parsed again as the statement itself, for its own error
        return None


def _is_timestamp(value: Any) -> bool:
    return type(value).__name__ == "IonPyTimestamp"  # what ion_literal gives for a timestamp


def _fill(node: Any, values: _Values) -> Any:
    """A copy of the tree with each placeholder (a str, int or Decimal leaf) replaced."""
    cls = type(node)
    if cls is str:
        return values[0].get(node, node)
    if cls is int:
        return values[1].get(node, node)
    if cls is Decimal:
        return values[2].get(node, node)
    if values[3] and _is_timestamp(node):
        return values[3].get(node, node)
    if cls is tuple:
        return tuple(_fill(x, values) for x in node)
    names = _FIELDS.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(node):
            return node  # a literal's Ion value (shared, as parse's cache shares it anyway)
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(node))
    return cls(*(_fill(getattr(node, n), values) for n in names))


def _parse_by_shape(text: str) -> Parsed | None:
    shaped = _shape(text)
    if shaped is None:
        return None
    shape, values = shaped
    parsed = _parse_shape(shape)
    if parsed is None:
        return None
    statement = _fill(parsed.statement, values)
    return Parsed(text=text, statement=statement, parameters=parsed.parameters)


def _token_message(text: str, exc: _Fail) -> str:
    tok = exc.token
    where = _position(text, tok.line or 1, tok.column or 1)
    return f"{str(tok)[:60]!r} {exc.message} at {where}"


SHAPE_MARK = _MARK
"""Every string literal's placeholder in a shape (``parse_shape``) holds this character."""


def parse_shape(text: str) -> tuple[str, Parsed] | None:
    """The statement's shape (its literals replaced by placeholders) and the parse of that
    shape (cached by shape), or None when ``parse`` reads the statement as it is (no literal, a
    shape lark refuses, or a statement ``parse`` refuses before its shape). ``parse(text)`` is
    this parse with the literals' values put back (``ledger.classify`` caches by shape)."""
    if len(text) > MAX_STATEMENT_CHARS or not text.strip():
        return None
    shaped = _shape(text)
    if shaped is None:
        return None
    parsed = _parse_shape(shaped[0])
    return None if parsed is None else (shaped[0], parsed)
