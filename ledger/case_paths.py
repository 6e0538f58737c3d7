"""``CASE`` expressions and ``[*]`` path wildcards, evaluated as PartiQL defines them.

``ledger.evaluate.evaluate`` hands these two node kinds here (after every other kind, so that
statements without them pay nothing). ``CASE`` follows SQL's and PartiQL's semantics: the searched
form takes the first ``WHEN`` whose condition is true, the simple form the first whose value is
``=`` to the operand (null and missing never match); no match gives the ``ELSE`` value, or null.
A path with wildcards ``e[*]p1...[*]pn`` is PartiQL's path collection expression (the PartiQL
specification, "Path Navigation", "Path Expressions with Wildcards"): ``SELECT VALUE vn.pn FROM e
AS v1, @v1.p1 AS v2, ...``, so each ``[*]`` ranges over a list's elements, or over the value
itself when it is no list (PartiQL's FROM range), and missing results are left out.
"""

from __future__ import annotations

from typing import Any

from amazon.ion.core import IonType

from ledger.evaluate import Scope, equal, evaluate, kind, step, truth
from ledger.nodes import MISSING, Case, WildcardPath


def case_or_wildcard(e: Case | WildcardPath, scope: Scope | None) -> Any:
    """The value of a ``CASE`` expression or of a path with ``[*]``."""
    if isinstance(e, Case):
        return _case(e, scope)
    return _wildcard(e, scope)


def _case(e: Case, scope: Scope | None) -> Any:
    operand = MISSING if e.operand is None else evaluate(e.operand, scope)
    for when, then in e.whens:
        w = evaluate(when, scope)
        if truth(w) if e.operand is None else (equal(operand, w) is True):
            return evaluate(then, scope)
    return None if e.default is None else evaluate(e.default, scope)


def _wildcard(e: WildcardPath, scope: Scope | None) -> list[Any]:
    values = [evaluate(e.base, scope)]
    for steps in e.segments:
        nxt: list[Any] = []
        for v in values:
            for element in _range(v):
                item = element
                for s in steps:
                    item = step(item, s, scope)
                    if item is MISSING:
                        break
                nxt.append(item)
        values = nxt
    return [v for v in values if v is not MISSING]


def _range(v: Any) -> list[Any]:
    """What ``FROM v AS x`` ranges over: a list's elements, else ``v`` itself."""
    if kind(v) == "list" and getattr(v, "ion_type", None) is not IonType.SEXP:
        return list(v)
    return [v]
