"""SELECT's joins and projection, over rows that ``ledger.execute`` reads.

``join_rows`` forms QLDB's inner joins (``FROM a, b``, ``CROSS JOIN``, ``[INNER] JOIN ... ON``):
each source is read once, and every combination whose ``ON`` conditions and ``WHERE`` hold is a
row, a chain of scopes (the last source's scope, its ``outer`` the one before). ``project`` turns
rows into results: ``SELECT VALUE e``, ``SELECT *`` (a join's ``*`` spreads every source's fields),
items with their names (an alias, or a path's last field, or ``_n``), ``alias.*``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ledger.evaluate import EvalError, Scope, evaluate, is_null, kind, truth
from ledger.nodes import MISSING, Expr, Field, Path, Select, Source, Star


def join_rows(s: Select, rows: Callable[[Source, Expr | None], list[Scope]]) -> list[Scope]:
    """The rows of ``s``'s inner join that satisfy its ``ON`` conditions and ``WHERE``."""
    names: set[str] = set()
    for src in (s.source, *(j.source for j in s.joins)):
        for n in (src.name, src.by):
            if n is None:
                continue
            if n in names:
                raise EvalError(f"{n!r} names two sources of the join: give each its own alias")
            names.add(n)
    combined = [replace(r, outer=None) for r in rows(s.source, None)]
    for j in s.joins:
        right = rows(j.source, None)
        nxt: list[Scope] = []
        for left in combined:
            for r in right:
                row = replace(r, outer=left)
                if j.on is None or truth(evaluate(j.on, row)):
                    nxt.append(row)
        combined = nxt
    if s.where is None:
        return combined
    return [r for r in combined if truth(evaluate(s.where, r))]


def project(s: Select, rows: list[Scope]) -> list[Any]:
    """The results of ``s`` over its rows."""
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
    """A SELECT item's default name: a path's last field (or its root), else ``_n``."""
    if isinstance(e, Path):
        if e.steps and isinstance(e.steps[-1], Field):
            return e.steps[-1].name
        if not e.steps:
            return e.root
    return f"_{i + 1}"
