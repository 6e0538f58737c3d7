"""Prepared INSERT plans: an ``INSERT`` of literals binds its values into a plan made once per
shape of statement, instead of rebuilding and evaluating the statement's tree (issue 14).

Statements replayed from their text mostly repeat one shape with other literals (``INSERT INTO
Vehicle {'VIN': '...', ...}``). ``ledger.parser`` already parses each shape once
(``parser.shaped``: the shape's tree and the literals' values by placeholder); ``parse`` then
copies the whole tree with the values put back, and execution evaluates that copy into the
document. For ``INSERT INTO T VALUE e`` and ``INSERT INTO T e`` whose ``e`` is made of literals,
structs, lists and bags only (no parameter, no path, no operator), the plan is a function from
the values to the document, compiled once per shape: it gives exactly what evaluating the filled
tree gives (the same leaf replacement as ``parser._fill``, the same construction as
``evaluate``: missing fields and elements dropped, literal containers copied), which
tests/ledger/test_ledger_plan_cache.py checks against the general path on generated statements.
Anything else (or a statement ``parse`` reads as it is) has no plan and runs the general way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from journal.ion_binary import copy_value
from ledger.nodes import MISSING, BagExpr, InsertMany, InsertValue, ListExpr, Lit, StructExpr
from ledger.parser import shaped

# A plan's input: the literals' values by placeholder (strings, ints, decimals, timestamps).
Values = tuple[dict[str, str], dict[int, int], dict[Decimal, Decimal], dict[Any, Any]]
_Bind = Callable[[Values], Any]
_MAX_PLANS = 4096


@dataclass(frozen=True, slots=True)
class BoundInsert:
    """An INSERT with its values bound: the table, and the value of its document expression
    (``many``: ``INSERT INTO T e``, each element of a bag or list is a document)."""

    table: str
    value: Any
    many: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    table: str
    many: bool
    bind: _Bind


_plans: dict[str, _Plan | None] = {}


def bound_insert(text: str) -> BoundInsert | None:
    """The INSERT statement ``text`` bound to its plan, or None when it has none (see the
    module docstring): then ``parse`` and the general execution run it."""
    found = shaped(text)
    if found is None:
        return None
    shape, parsed, values = found
    if shape in _plans:
        plan = _plans[shape]
    else:
        plan = None if parsed.parameters else _compile_statement(parsed.statement)
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        _plans[shape] = plan
    if plan is None:
        return None
    return BoundInsert(
        table=values[0].get(plan.table, plan.table), value=plan.bind(values), many=plan.many
    )


def _compile_statement(statement: Any) -> _Plan | None:
    if type(statement) is InsertValue:
        bind = _compile(statement.value)
        return None if bind is None else _Plan(statement.table, False, bind)
    if type(statement) is InsertMany:
        bind = _compile(statement.values)
        return None if bind is None else _Plan(statement.table, True, bind)
    return None


def _compile(e: Any) -> _Bind | None:
    """``values -> evaluate(_fill(e, values))`` for a tree of literals and containers (None:
    ``e`` holds anything else)."""
    cls = type(e)
    if cls is Lit:
        return _leaf(e.value)
    if cls is StructExpr:
        fields = []
        for name, x in e.fields:
            bind = _compile(x)
            if bind is None:
                return None
            fields.append((name, bind))

        def struct(values: Values) -> Any:
            names = values[0]
            out: dict[str, Any] = {}
            for name, bind in fields:
                v = bind(values)
                if v is not MISSING:
                    out[names.get(name, name)] = v
            return out

        return struct
    if cls is ListExpr or cls is BagExpr:
        items = [_compile(x) for x in e.items]
        if any(b is None for b in items):
            return None
        binds = [b for b in items if b is not None]

        def sequence(values: Values) -> Any:
            return [v for v in (b(values) for b in binds) if v is not MISSING]

        return sequence
    return None


def _leaf(v: Any) -> _Bind:
    """A literal: its placeholder replaced as ``parser._fill`` replaces it (by the leaf's exact
    class: ``bool`` is not an ``int`` placeholder), then as ``evaluate`` gives a ``Lit``."""
    if v is MISSING:
        return lambda values: MISSING
    cls = type(v)
    if cls is str:
        return lambda values: values[0].get(v, v)
    if cls is int:
        return lambda values: values[1].get(v, v)
    if cls is Decimal:
        return lambda values: values[2].get(v, v)
    if type(v).__name__ == "IonPyTimestamp":  # as parser._is_timestamp tells one
        return lambda values: values[3].get(v, v)
    if isinstance(v, list | dict | Mapping):
        return lambda values: copy_value(v)  # a literal container is shared by every execution
    return lambda values: v
