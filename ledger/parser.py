"""Parse QLDB PartiQL statements (``grammar.lark``) into the typed tree of ``ledger.nodes``.

``parse(text)`` returns a cached ``Parsed`` (the same text is parsed once per process) or raises
``ParseError`` pointing at the offending token by line and column. Statements that differ only
in their literals are parsed by lark once per shape (see "statements of one shape" below). The
tree is built by ``ledger.tree_builder``'s callbacks. Imports only lark, the standard library and
amazon.ion: the ingest Lambda classifies statements with it.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ledger.errors import ParseError
from ledger.function_names import FUNCTIONS, NONDETERMINISTIC
from ledger.nodes import Parsed, Statement
from ledger.tree_builder import (
    COMMITTED_PREFIX,
    MAX_STATEMENT_CHARS,
    SOURCE_FUNCTIONS,
    _Builder,
    _Fail,
    _unquote,
    ion_literal,
)

__all__ = [
    "COMMITTED_PREFIX", "FUNCTIONS", "MAX_STATEMENT_CHARS", "NONDETERMINISTIC", "SHAPE_MARK",
    "SOURCE_FUNCTIONS", "ion_literal", "parse", "parse_shape",
]  # fmt: skip


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
        builder.subqueries = []
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
    found = shaped(text)
    return None if found is None else (found[0], found[1])


def shaped(text: str) -> tuple[str, Parsed, _Values] | None:
    """The statement's shape, the parse of that shape (cached by shape) and the values of its
    literals (strings, ints, decimals, Ion timestamps: placeholder -> value), or None when
    ``parse`` reads the statement as it is. ``parse(text).statement`` is the shape's statement
    with each placeholder leaf replaced by its value (``_fill``); ``ledger.plan_cache`` binds
    them instead."""
    if len(text) > MAX_STATEMENT_CHARS or not text.strip():
        return None
    found = _shape(text)
    if found is None:
        return None
    parsed = _parse_shape(found[0])
    return None if parsed is None else (found[0], parsed, found[1])
