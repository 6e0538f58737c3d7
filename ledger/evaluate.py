"""Evaluate ``ledger.nodes`` expressions over Ion values, with PartiQL's semantics.

Values are simpleion values or plain Python ones (``dict``, ``list``, ``str``, ``int``,
``Decimal``, ``float``, ``bool``, ``None``, timestamps); ``MISSING`` is PartiQL's absent value.
Comparisons follow PartiQL: numbers compare by value across int, decimal and float; strings and
symbols by text; ``null``/``missing`` make a comparison unknown (``None``), and a ``WHERE`` keeps
only documents for which the predicate is ``true``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyNull
from amazon.ion.symbols import SymbolToken

from journal.ion_binary import copy_value
from ledger.nodes import (
    MISSING,
    And,
    BagExpr,
    Between,
    Binary,
    Call,
    Case,
    Compare,
    Expr,
    Field,
    InList,
    IsType,
    Like,
    ListExpr,
    Lit,
    Negate,
    Not,
    Or,
    Param,
    Path,
    Star,
    Step,
    StructExpr,
    WildcardPath,
)


class EvalError(Exception):
    """An expression cannot be evaluated (a type error, a missing parameter)."""


@dataclass(slots=True)
class Scope:
    """What names mean while evaluating against one document: ``names`` are the source's alias
    (or table name) bound to the document value; ``by`` the ``BY`` variable bound to its id (or,
    for an unnested list element, the ``AT`` variable bound to its position)."""

    names: tuple[str, ...]
    value: Any
    by: str | None
    doc_id: Any  # a document id (str), a position (int), or MISSING (AT over no list)
    params: Sequence[Any]
    now: datetime
    # In a join: the scope of the sources before this one (names not bound here are looked up
    # there; a name no source binds is an error, never a field of some document).
    outer: Scope | None = None
    # The id of the transaction the statement runs in (TXID()); None in a scope of a join or an
    # unnesting, which asks its ``outer`` scope.
    txid: str | None = None


# --- kinds ---------------------------------------------------------------------------------------

_NUMBER_TYPES = (IonType.INT, IonType.DECIMAL, IonType.FLOAT)


def is_null(v: Any) -> bool:
    return v is None or isinstance(v, IonPyNull)


def kind(v: Any) -> str:
    """``missing``, ``null``, ``bool``, ``number``, ``string``, ``timestamp``, ``lob``, ``struct``
    or ``list`` (list, sexp and bag)."""
    if v is MISSING:
        return "missing"
    if v is None or isinstance(v, IonPyNull):
        return "null"
    t = getattr(v, "ion_type", None)
    if t is not None:
        if t is IonType.BOOL:
            return "bool"
        if t in _NUMBER_TYPES:
            return "number"
        if t is IonType.STRING or t is IonType.SYMBOL:
            return "string"
        if t is IonType.TIMESTAMP:
            return "timestamp"
        if t is IonType.STRUCT:
            return "struct"
        if t is IonType.LIST or t is IonType.SEXP:
            return "list"
        if t is IonType.BLOB or t is IonType.CLOB:
            return "lob"
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float | Decimal):
        return "number"
    if isinstance(v, str | SymbolToken):
        return "string"
    if isinstance(v, datetime):
        return "timestamp"
    if isinstance(v, Mapping):
        return "struct"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, bytes | bytearray):
        return "lob"
    raise EvalError(f"not an Ion value: {type(v).__name__}")


def text_of(v: Any) -> str:
    t = getattr(v, "text", None)
    if isinstance(v, SymbolToken):
        return str(t) if t is not None else ""
    return str(v)


def _instant(v: datetime) -> datetime:
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def number(v: Any) -> int | float | Decimal:
    if isinstance(v, float):
        return float(v)
    if isinstance(v, Decimal):
        return Decimal(v)
    return int(v)


def _items(v: Any) -> list[tuple[str, Any]]:
    if hasattr(v, "iteritems"):
        return [(str(k), x) for k, x in v.iteritems()]
    return [(str(k), x) for k, x in v.items()]


def equal(a: Any, b: Any) -> bool | None:
    """PartiQL ``=``: True, False, or None (unknown) when either side is null or missing."""
    ka, kb = kind(a), kind(b)
    if ka in ("null", "missing") or kb in ("null", "missing"):
        return None
    if ka != kb:
        return False
    return _same(a, b, ka)


def _same(a: Any, b: Any, k: str) -> bool:
    if k == "number":
        x, y = number(a), number(b)
        if isinstance(x, float) or isinstance(y, float):
            return float(x) == float(y)
        return bool(x == y)
    if k == "string":
        return text_of(a) == text_of(b)
    if k == "bool":
        return bool(a) == bool(b)
    if k == "timestamp":
        return _instant(a) == _instant(b)
    if k == "lob":
        return bytes(a) == bytes(b)
    if k == "struct":
        ia, ib = sorted(_items(a), key=lambda p: p[0]), sorted(_items(b), key=lambda p: p[0])
        return len(ia) == len(ib) and all(
            x[0] == y[0] and deep_equal(x[1], y[1]) for x, y in zip(ia, ib, strict=True)
        )
    if k == "list":
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return True


def deep_equal(a: Any, b: Any) -> bool:
    """Equality where null equals null (for nested values and ``IN``)."""
    ka, kb = kind(a), kind(b)
    if ka != kb:
        return False
    if ka in ("null", "missing"):
        return True
    return _same(a, b, ka)


def compare(a: Any, b: Any) -> int | None:
    """Order two values of one comparable kind; None when unknown or incomparable."""
    ka, kb = kind(a), kind(b)
    if ka != kb or ka not in ("number", "string", "timestamp", "bool"):
        return None
    x: Any
    y: Any
    if ka == "number":
        x, y = number(a), number(b)
        if isinstance(x, float) or isinstance(y, float):
            x, y = float(x), float(y)
    elif ka == "string":
        x, y = text_of(a), text_of(b)
    elif ka == "timestamp":
        x, y = _instant(a), _instant(b)
    else:
        x, y = bool(a), bool(b)
    return -1 if x < y else (1 if x > y else 0)


def truth(v: Any) -> bool:
    """Whether a predicate's value keeps a document: only ``true`` does."""
    return kind(v) == "bool" and bool(v)


# --- paths ---------------------------------------------------------------------------------------


def step(value: Any, s: Step, scope: Scope | None) -> Any:
    if isinstance(s, Field):
        if kind(value) != "struct":
            return MISSING
        if s.name in value:
            return value[s.name]
        return MISSING
    key = evaluate(s.expr, scope) if scope is not None else _const(s.expr)
    k = kind(key)
    if k == "string":
        if kind(value) != "struct":
            return MISSING
        name = text_of(key)
        return value.get(name, MISSING)
    if k == "number" and kind(value) == "list":
        i = int(key)
        if 0 <= i < len(value):
            return value[i]
        return MISSING
    return MISSING


def _const(e: Expr) -> Any:
    if isinstance(e, Lit):
        return e.value
    raise EvalError("a path index must be a constant here")


def resolve_root(path: Path, scope: Scope) -> tuple[Any, tuple[Step, ...]]:
    """The value a path starts from and the steps to take from it."""
    if path.root in scope.names:
        return scope.value, path.steps
    if scope.by is not None and path.root == scope.by:
        return scope.doc_id, path.steps
    if scope.outer is None:
        return scope.value, (Field(path.root), *path.steps)
    s: Scope | None = scope.outer
    while s is not None:
        if path.root in s.names:
            return s.value, path.steps
        if s.by is not None and path.root == s.by:
            return s.doc_id, path.steps
        s = s.outer
    raise EvalError(
        f"{path.root!r} names no source of the join: qualify the field with a source alias"
    )


def get_path(path: Path, scope: Scope) -> Any:
    value, steps = resolve_root(path, scope)
    for s in steps:
        value = step(value, s, scope)
        if value is MISSING:
            return MISSING
    return value


def target_steps(path: Path, scope: Scope) -> tuple[Step, ...]:
    """The steps from the document to the place a DML operation changes."""
    if scope.by is not None and path.root == scope.by:
        raise EvalError(f"the document id ({path.root}) cannot be changed")
    if path.root in scope.names:
        if not path.steps:
            raise EvalError(f"{path.root} is the whole document, not a field of it")
        return path.steps
    return (Field(path.root), *path.steps)


def _key(s: Step, scope: Scope) -> str | int:
    if isinstance(s, Field):
        return s.name
    key = evaluate(s.expr, scope)
    k = kind(key)
    if k == "string":
        return text_of(key)
    if k == "number" and not isinstance(key, float) and number(key) == int(key):
        return int(key)
    raise EvalError(f"a path index must be a string or an int, not {k}")


def set_path(doc: Any, steps: tuple[Step, ...], value: Any, scope: Scope) -> None:
    """Set ``doc.steps = value``, creating missing structs on the way."""
    container = doc
    for i, s in enumerate(steps):
        key = _key(s, scope)
        last = i == len(steps) - 1
        if isinstance(key, str):
            if kind(container) != "struct" or is_null(container):
                raise EvalError(f"cannot set field {key!r} of a {kind(container)}")
            if last:
                container[key] = value
                return
            nxt = container.get(key, MISSING)
            if nxt is MISSING:
                container[key] = {}
                nxt = container[key]
            container = nxt
        else:
            if kind(container) != "list" or is_null(container):
                raise EvalError(f"cannot index a {kind(container)} with [{key}]")
            if not 0 <= key < len(container):
                raise EvalError(f"list index {key} is out of range (length {len(container)})")
            if last:
                container[key] = value
                return
            container = container[key]


def remove_path(doc: Any, steps: tuple[Step, ...], scope: Scope) -> None:
    """Remove the field or list element at ``steps``; nothing happens when it is absent."""
    container = doc
    for i, s in enumerate(steps):
        key = _key(s, scope)
        last = i == len(steps) - 1
        if isinstance(key, str):
            if kind(container) != "struct" or is_null(container) or key not in container:
                return
            if last:
                del container[key]
                return
            container = container[key]
        else:
            if kind(container) != "list" or is_null(container) or not 0 <= key < len(container):
                return
            if last:
                del container[key]
                return
            container = container[key]


def insert_into(
    doc: Any, steps: tuple[Step, ...], value: Any, at: Any, scope: Scope
) -> None:  # fmt: skip
    """``INSERT INTO path VALUE v [AT k]``: into a list (at position ``k``, default the end) or a
    struct (as field ``k``, which must be absent)."""
    target: Any = doc
    for s in steps:
        target = step(target, s, scope)
    k = kind(target)
    if k == "list" and not is_null(target):
        if at is MISSING:
            target.append(value)
            return
        if kind(at) != "number" or isinstance(at, float):
            raise EvalError(f"AT for a list must be an int position, not {kind(at)}")
        pos = int(at)
        if not 0 <= pos <= len(target):
            raise EvalError(f"AT {pos} is out of range for a list of {len(target)}")
        target.insert(pos, value)
        return
    if k == "struct" and not is_null(target):
        if at is MISSING or kind(at) != "string":
            raise EvalError("INSERT INTO a struct needs AT 'field name'")
        name = text_of(at)
        if name in target:
            raise EvalError(f"field {name!r} already exists")
        target[name] = value
        return
    raise EvalError(f"INSERT INTO needs a list or a struct, the path leads to {k}")


# --- expressions ---------------------------------------------------------------------------------


def _and(a: Any, b: Any) -> Any:
    if (kind(a) == "bool" and not a) or (kind(b) == "bool" and not b):
        return False
    if kind(a) == "bool" and kind(b) == "bool":
        return True
    return None


def _or(a: Any, b: Any) -> Any:
    if truth(a) or truth(b):
        return True
    if kind(a) == "bool" and kind(b) == "bool":
        return False
    return None


def _like(value: str, pattern: str, escape: str | None) -> bool:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if escape is not None and c == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.fullmatch("".join(out), value, re.DOTALL) is not None


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "||":
        if kind(a) == "string" and kind(b) == "string":
            return text_of(a) + text_of(b)
        if is_null(a) or is_null(b) or a is MISSING or b is MISSING:
            return None
        raise EvalError(f"|| needs strings, not {kind(a)} and {kind(b)}")
    if kind(a) != "number" or kind(b) != "number":
        if kind(a) in ("null", "missing") or kind(b) in ("null", "missing"):
            return None
        raise EvalError(f"{op} needs numbers, not {kind(a)} and {kind(b)}")
    x: Any = number(a)
    y: Any = number(b)
    if isinstance(x, float) or isinstance(y, float):
        x, y = float(x), float(y)
    elif isinstance(x, Decimal) or isinstance(y, Decimal):
        x, y = Decimal(x), Decimal(y)
    try:
        if op == "+":
            return x + y
        if op == "-":
            return x - y
        if op == "*":
            return x * y
        if op == "/":
            if isinstance(x, int) and isinstance(y, int):
                q = abs(x) // abs(y)  # integer division truncates toward zero
                return q if (x < 0) == (y < 0) else -q
            return x / y
        if op == "%":
            if isinstance(x, int) and isinstance(y, int):
                r = abs(x) % abs(y)
                return r if x >= 0 else -r
            return x % y
    except (ZeroDivisionError, InvalidOperation):
        pass
    raise EvalError("division by zero" if op in "/%" else f"cannot compute {op}")


def evaluate(e: Expr, scope: Scope | None) -> Any:
    """The value of ``e`` (``scope`` None: a constant expression, no document, no parameters)."""
    if isinstance(e, Lit):
        v = e.value
        if isinstance(v, list | dict | Mapping):
            return copy_value(v)  # a literal container is shared by every execution
        return v
    if isinstance(e, Path):
        if scope is None:
            raise EvalError(f"{e.root} needs a document to read")
        return get_path(e, scope)
    if isinstance(e, Param):
        if scope is None or e.index >= len(scope.params):
            have = 0 if scope is None else len(scope.params)
            raise EvalError(f"parameter {e.index + 1} is not given ({have} given)")
        return scope.params[e.index]
    if isinstance(e, Compare):
        a, b = evaluate(e.left, scope), evaluate(e.right, scope)
        if e.op == "=":
            return equal(a, b)
        if e.op == "<>":
            r = equal(a, b)
            return None if r is None else not r
        c = compare(a, b)
        if c is None:
            return None
        return {"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[e.op]
    if isinstance(e, And):
        left = evaluate(e.left, scope)
        if kind(left) == "bool" and not left:
            return False
        return _and(left, evaluate(e.right, scope))
    if isinstance(e, Or):
        left = evaluate(e.left, scope)
        if truth(left):
            return True
        return _or(left, evaluate(e.right, scope))
    if isinstance(e, Not):
        v = evaluate(e.operand, scope)
        return (not v) if kind(v) == "bool" else None
    if isinstance(e, StructExpr):
        out: dict[str, Any] = {}
        for name, x in e.fields:
            v = evaluate(x, scope)
            if v is not MISSING:
                out[name] = v
        return out
    if isinstance(e, ListExpr | BagExpr):
        return [v for v in (evaluate(x, scope) for x in e.items) if v is not MISSING]
    if isinstance(e, InList):
        v = evaluate(e.operand, scope)
        if e.items is not None:
            options = [evaluate(x, scope) for x in e.items]
        else:
            assert e.source is not None
            src = evaluate(e.source, scope)
            if kind(src) != "list":
                raise EvalError(f"IN needs a list, bag or parenthesised values, not {kind(src)}")
            options = list(src)
        if kind(v) in ("null", "missing"):
            return None
        found: bool | None = False
        for o in options:
            r = equal(v, o)
            if r:
                found = True
                break
            if r is None:
                found = None
        return (not found if found is not None else None) if e.negated else found
    if isinstance(e, Between):
        v = evaluate(e.operand, scope)
        lo, hi = compare(v, evaluate(e.low, scope)), compare(v, evaluate(e.high, scope))
        if lo is None or hi is None:
            return None
        r = lo >= 0 and hi <= 0
        return not r if e.negated else r
    if isinstance(e, Like):
        v, p = evaluate(e.operand, scope), evaluate(e.pattern, scope)
        esc = evaluate(e.escape, scope) if e.escape is not None else None
        if kind(v) != "string" or kind(p) != "string":
            return None
        r = _like(text_of(v), text_of(p), text_of(esc) if esc is not None else None)
        return not r if e.negated else r
    if isinstance(e, IsType):
        v = evaluate(e.operand, scope)
        r = v is MISSING if e.kind == "missing" else (is_null(v) or v is MISSING)
        return not r if e.negated else r
    if isinstance(e, Negate):
        v = evaluate(e.operand, scope)
        if kind(v) != "number":
            if kind(v) in ("null", "missing"):
                return None
            raise EvalError(f"cannot negate a {kind(v)}")
        return -number(v)
    if isinstance(e, Binary):
        return _arith(e.op, evaluate(e.left, scope), evaluate(e.right, scope))
    if isinstance(e, Call):
        return call_function(e.name, [evaluate(a, scope) for a in e.args], scope)
    if isinstance(e, Case | WildcardPath):
        return case_or_wildcard(e, scope)
    if isinstance(e, Star):
        raise EvalError("* is a SELECT item (SELECT * or SELECT alias.*), not a value")
    raise EvalError(f"cannot evaluate {type(e).__name__}")


# The functions need this module's value semantics; imported last, once everything they use exists.
from ledger.case_paths import case_or_wildcard  # noqa: E402
from ledger.functions import call_function  # noqa: E402
