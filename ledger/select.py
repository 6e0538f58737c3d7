"""SELECT's joins and projection, over rows that ``ledger.execute`` reads.

``join_rows`` forms QLDB's inner joins (``FROM a, b``, ``CROSS JOIN``, ``[INNER] JOIN ... ON``):
each source is read once, and every combination whose ``ON`` conditions and ``WHERE`` hold is a
row, a chain of scopes (the last source's scope, its ``outer`` the one before). An unnesting
source ``@r.path AS o [AT i]`` is no table: for each row so far it ranges over that row's value
of the path, as PartiQL's FROM does (a list or bag gives a row per element, ``i`` its position
from 0 in a list; any other value, missing and null included, is one row of itself, ``i``
missing). ``project`` turns
rows into results: ``SELECT VALUE e``, ``SELECT *`` (a join's ``*`` spreads every source's fields),
items with their names (an alias, or a path's last field, or ``_n``), ``alias.*``, and one row
of aggregates (``COUNT(*)``, ``COUNT``, ``SUM``, ``MIN``, ``MAX``, ``AVG``) when the items are
aggregates.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from decimal import Decimal
from typing import Any

from amazon.ion.core import IonType

from ledger.evaluate import (
    EvalError,
    Scope,
    evaluate,
    is_null,
    kind,
    number,
    text_of,
    truth,
)  # fmt: skip
from ledger.nodes import (
    AGGREGATES,
    MISSING,
    Call,
    Expr,
    Field,
    InList,
    Lit,
    Path,
    Select,
    Source,
    Star,
    Subquery,
    WildcardPath,
    walk,
)


def join_rows(s: Select, rows: Callable[[Source, Expr | None], list[Scope]]) -> list[Scope]:
    """The rows of ``s``'s inner join that satisfy its ``ON`` conditions and ``WHERE``."""
    names: set[str] = set()
    for src in (s.source, *(j.source for j in s.joins)):
        for n in (src.name, src.by, src.at):
            if n is None:
                continue
            if n in names:
                raise EvalError(f"{n!r} names two sources of the join: give each its own alias")
            names.add(n)
    combined = [replace(r, outer=None) for r in rows(s.source, None)]
    for j in s.joins:
        right = [] if j.source.kind == "unnest" else rows(j.source, None)
        nxt: list[Scope] = []
        for left in combined:
            for r in unnest(j.source, left) if j.source.kind == "unnest" else right:
                row = replace(r, outer=left)
                if j.on is None or truth(evaluate(j.on, row)):
                    nxt.append(row)
        combined = nxt
    if s.where is None:
        return combined
    return [r for r in combined if truth(evaluate(s.where, r))]


def unnest(src: Source, left: Scope) -> list[Scope]:
    """The rows ``@path AS name [AT i]`` adds to the row ``left``: PartiQL's FROM range."""
    path = src.args[0]
    assert isinstance(path, Path)
    s: Scope | None = left
    while s is not None and path.root not in s.names and path.root != s.by:
        s = s.outer
    if s is None:  # never read as a field of some document
        raise EvalError(f"@{path.root} names no source before it in FROM")
    value = evaluate(path, left)
    names = (src.name,)
    if kind(value) == "list" and getattr(value, "ion_type", None) is not IonType.SEXP:
        return [
            Scope(names, v, src.at, i, left.params, left.now, left) for i, v in enumerate(value)
        ]
    return [Scope(names, value, src.at, MISSING, left.params, left.now, left)]


def project(s: Select, rows: list[Scope]) -> list[Any]:
    """The results of ``s`` over its rows (one row of aggregates when its items are aggregates);
    ``SELECT DISTINCT``: each result once."""
    out = _project(s, rows)
    return distinct(out) if s.distinct else out


def _project(s: Select, rows: list[Scope]) -> list[Any]:
    if s.items is not None and any(_is_aggregate(it.expr) for it in s.items):
        return [_aggregate_row(s, rows)]
    out: list[Any] = []
    for scope in rows:
        if s.value is not None:
            v = evaluate(s.value, scope)
            if v is not MISSING:
                out.append(v)
        elif s.items is None:
            out.append(scope.value if scope.outer is None else _spread_all(scope))
        else:
            item: dict[str, Any] = {}
            for i, it in enumerate(s.items):
                if isinstance(it.expr, Star):
                    if it.expr.path is None:
                        _spread(item, _spread_all(scope))
                    else:
                        _spread(item, evaluate(it.expr.path, scope))
                    continue
                v = evaluate(it.expr, scope)
                if v is MISSING:
                    continue
                name = it.alias or item_name(it.expr, i)
                if name in item:
                    raise EvalError(f"the result would have two fields named {name!r}")
                item[name] = v
            out.append(item)
    return out


def _spread_all(scope: Scope) -> dict[str, Any]:
    """``*`` over a row: the fields of each source's value, first source first."""
    chain: list[Scope] = []
    s: Scope | None = scope
    while s is not None:
        chain.append(s)
        s = s.outer
    out: dict[str, Any] = {}
    for part in reversed(chain):
        _spread(out, part.value)
    return out


def _spread(into: dict[str, Any], value: Any) -> None:
    if kind(value) != "struct" or is_null(value):
        raise EvalError(f"* spreads the fields of a struct, not of a {kind(value)}")
    for k, v in value.items():
        if k in into:
            raise EvalError(f"the result would have two fields named {k!r}")
        into[k] = v


def item_name(e: Expr, i: int) -> str:
    """A SELECT item's default name: a path's last field (or its root; a ``[*]`` path's last
    field too), else ``_n``."""
    if isinstance(e, WildcardPath) and e.segments[-1] and isinstance(e.segments[-1][-1], Field):
        return e.segments[-1][-1].name  # r.Owners.SecondaryOwners[*].PersonId: PersonId
    if isinstance(e, Path):
        if e.steps and isinstance(e.steps[-1], Field):
            return e.steps[-1].name
        if not e.steps:
            return e.root
    return f"_{i + 1}"


def _is_aggregate(e: Any) -> bool:
    return isinstance(e, Call) and e.name in AGGREGATES


def _aggregate_row(s: Select, rows: list[Scope]) -> dict[str, Any]:
    """``SELECT COUNT(*), SUM(x), ... FROM ...``: one row over all the rows. There is no GROUP
    BY here, so an item that is not an aggregate beside aggregates has no value to take: refused."""
    assert s.items is not None
    row: dict[str, Any] = {}
    for i, it in enumerate(s.items):
        if not _is_aggregate(it.expr):
            raise EvalError(
                "a SELECT item beside aggregate functions must be an aggregate too "
                "(GROUP BY is refused here)"
            )
        call = it.expr
        assert isinstance(call, Call)
        name = it.alias or item_name(call, i)
        if name in row:
            raise EvalError(f"the result would have two fields named {name!r}")
        if call.name == "count(*)":
            row[name] = len(rows)
            continue
        values = [v for r in rows if not _absent(v := evaluate(call.args[0], r))]
        row[name] = _fold(call.name, values)
    return row


def _absent(v: Any) -> bool:
    return v is MISSING or is_null(v)


def _fold(name: str, values: list[Any]) -> Any:
    """PartiQL's aggregates: null and missing values are skipped; over no value COUNT is 0 and the
    others are null."""
    if name == "count":
        return len(values)
    if not values:
        return None
    kinds = {kind(v) for v in values}
    if name in ("sum", "avg"):
        if kinds != {"number"}:
            raise EvalError(f"{name}() needs numbers, not {', '.join(sorted(kinds))}")
        numbers = [number(v) for v in values]
        total = sum(numbers[1:], numbers[0])
        if name == "sum":
            return total
        if any(isinstance(n, float) for n in numbers):
            return total / len(numbers)
        return Decimal(total) / Decimal(len(numbers))
    if len(kinds) != 1 or kinds - {"number", "string", "timestamp"}:
        raise EvalError(
            f"{name}() needs values of one orderable type, not {', '.join(sorted(kinds))}"
        )
    keyed = [(text_of(v) if kind(v) == "string" else v, v) for v in values]
    best = min(keyed, key=lambda kv: kv[0]) if name == "min" else max(keyed, key=lambda kv: kv[0])
    return best[1]


# --- DISTINCT ------------------------------------------------------------------------------------


def distinct(values: list[Any]) -> list[Any]:
    """Each value once, first occurrence first, under PartiQL's equality of values: numbers by
    value (``1``, ``1.0`` and ``1e0`` are one), strings and symbols by text, timestamps by instant,
    structs whatever their field order, lists element by element, null and missing as one."""
    seen: set[Any] = set()
    out = []
    for v in values:
        key = _key(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _key(v: Any) -> Any:
    k = kind(v)
    if k == "number":
        n = number(v)
        if isinstance(n, float) and math.isnan(n):
            return ("nan",)
        return ("number", Decimal(n) if not isinstance(n, Decimal) else n)
    if k == "string":
        return ("string", text_of(v))
    if k == "bool":
        return ("bool", bool(v))
    if k == "timestamp":
        return ("timestamp", v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC))
    if k == "lob":
        return ("lob", bytes(v))
    if k == "struct":
        items = v.iteritems() if hasattr(v, "iteritems") else v.items()
        return ("struct", frozenset(Counter((str(f), _key(x)) for f, x in items).items()))
    if k == "list":
        return ("list", tuple(_key(x) for x in v))
    return ("null",)


# --- subqueries ----------------------------------------------------------------------------------


def resolve_subqueries(s: Select, run: Callable[[Select], list[Any]]) -> Select:
    """``s`` with each subquery replaced by its results, run once by ``run`` (the enclosing
    statement's own reads). ``EXISTS (SELECT ...)`` gets the results; ``x IN (SELECT ...)`` gets,
    as PartiQL's IN coerces them, each row's single value (``SELECT a``), its values as a list
    (``SELECT a, b``), or the values themselves (``SELECT VALUE``). A subquery that reads a source
    of the query around it (a correlated subquery) is refused: QLDB's reference was not found to
    allow one, and it is not guessed here."""
    outer = _source_names(s)

    def resolve(node: Any, in_rhs: bool = False) -> Any:
        if isinstance(node, Subquery):
            inner = node.select
            if inner.nested:
                inner = resolve_subqueries(inner, run)
            _refuse_correlated(inner, outer)
            return Lit(_coerce_for_in(inner, run(inner)) if in_rhs else run(inner))
        if isinstance(node, InList) and isinstance(node.source, Subquery):
            return InList(resolve(node.operand), None, resolve(node.source, True), node.negated)
        if isinstance(node, tuple):
            return tuple(resolve(x) for x in node)
        if dataclasses.is_dataclass(node) and not isinstance(node, type | Select):
            fields = dataclasses.fields(node)
            return replace(node, **{f.name: resolve(getattr(node, f.name)) for f in fields})
        return node

    return replace(
        s,
        source=resolve(s.source),
        items=resolve(s.items),
        value=resolve(s.value),
        where=resolve(s.where),
        joins=resolve(s.joins),
        nested=False,
    )


def _source_names(s: Select) -> set[str]:
    names: set[str] = set()
    for src in (s.source, *(j.source for j in s.joins)):
        names.update(n for n in (src.name, src.by, src.at) if n is not None)
    return names


def _refuse_correlated(inner: Select, outer: set[str]) -> None:
    own = _source_names(inner)
    parts = (inner.items, inner.value, inner.where, inner.joins, inner.source.args)
    for part in parts:
        for n in _paths(part):
            if n.root in outer and n.root not in own:
                raise EvalError(
                    f"the subquery reads {n.root!r}, a source of the query around it: "
                    "correlated subqueries are refused here"
                )


def _paths(node: Any) -> list[Path]:
    return [n for n in walk(node) if isinstance(n, Path)]


def _coerce_for_in(inner: Select, rows: list[Any]) -> list[Any]:
    if inner.value is not None:
        return rows
    if inner.items is None or any(isinstance(i.expr, Star) for i in inner.items):
        raise EvalError(
            "IN (SELECT * ...) would compare whole documents: select the values to compare "
            "(SELECT VALUE x, or SELECT x)"
        )
    out = []
    for row in rows:
        values = list(row.values())
        if len(inner.items) == 1:
            if values:  # an item that was missing leaves the row empty: nothing to compare
                out.append(values[0])
        else:
            out.append(values)
    return out
