"""Planning: how a statement finds its candidate documents.

By document id (the ``BY`` variable or ``metadata.id`` equal to a constant), by an index (an
indexed top-level field equal to a constant), or by scanning the table. Pure: reads no storage
itself (the table's indexes come through a callable, asked only when needed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ledger.evaluate import kind, text_of
from ledger.nodes import And as AndExpr
from ledger.nodes import Call, Compare, Expr, Field, Lit, Path, Source, walk
from ledger.storage import index_key


def lookup_plan(
    source: Source,
    where: Expr | None,
    constant_value: Callable[[Expr], Any],
    indexes_of_table: Callable[[], dict[str, str]],
) -> tuple[Any, ...]:
    """How to find candidates: by document id (``BY`` variable = constant), by an index
    (indexed field = constant), or by scanning the table."""
    if where is None:
        return ("scan",)
    names = (source.alias,) if source.alias else (source.table,)
    indexes: dict[str, str] | None = None
    for conjunct in conjuncts(where):
        if not isinstance(conjunct, Compare) or conjunct.op != "=":
            continue
        for left, right in ((conjunct.left, conjunct.right), (conjunct.right, conjunct.left)):
            if not isinstance(left, Path) or not is_constant(right):
                continue
            value = constant_value(right)
            if source.by and left.root == source.by and not left.steps:
                if kind(value) == "string":
                    return ("id", text_of(value))
                continue
            fld = top_field(left, names, source.by)
            if fld is None:
                continue
            if indexes is None:
                indexes = indexes_of_table()
            key = index_key(value)
            if fld in indexes and key is not None:
                return ("index", fld, indexes[fld], key)
    return ("scan",)


def conjuncts(e: Expr) -> Iterator[Expr]:
    if isinstance(e, AndExpr):
        yield from conjuncts(e.left)
        yield from conjuncts(e.right)
    else:
        yield e


def is_constant(e: Expr) -> bool:
    """True when ``e`` reads no document and calls no function (its value is known up front)."""
    return not any(isinstance(n, Path | Call) for n in walk(e))


def top_field(path: Path, names: tuple[str, ...], by: str | None) -> str | None:
    if path.root in names:
        if len(path.steps) == 1 and isinstance(path.steps[0], Field):
            return path.steps[0].name
        return None
    if path.steps or path.root == by:
        return None
    return path.root


def metadata_id(where: Expr | None, names: tuple[str, ...], by: str | None = None) -> str | None:
    """The document id a committed-view or history query asks for (``x.metadata.id = 'id'``, or
    its ``BY`` variable ``= 'id'``), if any."""
    if where is None:
        return None
    for c in conjuncts(where):
        if not isinstance(c, Compare) or c.op != "=":
            continue
        for left, right in ((c.left, c.right), (c.right, c.left)):
            if (
                isinstance(left, Path)
                and isinstance(right, Lit)
                and isinstance(right.value, str)
                and (
                    (
                        left.root in names
                        and [getattr(s, "name", None) for s in left.steps] == ["metadata", "id"]
                    )
                    or (by is not None and left.root == by and not left.steps)
                )
            ):
                return right.value
    return None
