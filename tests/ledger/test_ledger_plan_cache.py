"""Prepared INSERT plans (ledger.plan_cache) give exactly what parsing and evaluating the
statement gives: the same document values, and the same journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import plan_cache
from ledger.evaluate import evaluate
from ledger.hashing import ion_hash
from ledger.nodes import InsertValue
from ledger.parser import parse
from tests.ledger.test_ledger_fast_paths import run_script

_leaves = st.one_of(
    st.text(alphabet="ab'é 1", max_size=4).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(
        [
            "0", "007", "1.", "1.50", "-2.5", ".5", "0.0", "1e5", "-1.5E-3", "true", "false",
            "null", "missing", "`2020T`", "`2021-01-01T00:00:00.123-07:00`", "`{a: 1}`",
            "`[1, 2]`", "`abc`", "`\"s\"`", "`1.0`", "12345678901234567890123",
        ]
    ),
)  # fmt: skip


def _containers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    names = st.sampled_from(["'a'", "'b'", "'VIN'", "'a'", "''"])
    return st.one_of(
        st.lists(st.tuples(names, inner), max_size=4).map(
            lambda fs: "{" + ", ".join(f"{k}: {v}" for k, v in fs) + "}"
        ),
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(inner, max_size=3).map(lambda xs: "<<" + ", ".join(xs) + ">>"),
    )


_values = st.recursive(_leaves, _containers, max_leaves=10)
_inserts = st.one_of(
    st.builds("INSERT INTO {} VALUE {}".format, st.sampled_from(["T", '"Q 1"']), _values),
    st.builds("INSERT INTO {} {}".format, st.sampled_from(["T", "Vehicle"]), _values),
)


def _general(text: str) -> tuple[str, Any, bool]:
    s = parse(text).statement
    expr = s.value if isinstance(s, InsertValue) else s.values  # type: ignore[union-attr]
    return s.table, evaluate(expr, None), not isinstance(s, InsertValue)  # type: ignore[union-attr]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_inserts)
def test_a_bound_insert_is_the_evaluated_statement(text: str) -> None:
    bound = plan_cache.bound_insert(text)
    if bound is None:
        return  # no plan: the general path runs it
    table, value, many = _general(text)
    assert (bound.table, bound.many) == (table, many)
    # repr tells Decimal('1.50') from Decimal('1.5') and keeps field order; the Ion hash, types.
    assert repr(bound.value) == repr(value)
    assert ion_hash(bound.value) == ion_hash(value)


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO T {'a': 1, 'b': [1, 'x', `2020T`], 'c': {'d': 1.50}}",
        "INSERT INTO T << {'a': 'x'}, {'a': -2} >>",
        "INSERT INTO T VALUE {'a': 'x'}",
    ],
)
def test_inserts_of_literals_have_plans(text: str) -> None:
    assert plan_cache.bound_insert(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO T ?",
        "INSERT INTO T {'a': ?}",
        "INSERT INTO T {'a': 1 + 2}",
        "INSERT INTO T {'a': t.b}",
        "UPDATE T AS t SET t.a = 1",
        "INSERT INTO T {}",  # no literal: parsed as it is
        "FROM T AS t WHERE t.a = 1 INSERT INTO t.l VALUE 2",
    ],
)
def test_other_statements_have_none(text: str) -> None:
    assert plan_cache.bound_insert(text) is None


_SCRIPT = [
    ["CREATE TABLE T", "CREATE INDEX ON T (a)"],
    ["INSERT INTO T {'a': 1, 'b': 'x'}", "INSERT INTO T << {'a': 2}, {'a': 3, 'n': null} >>"],
    ["INSERT INTO T VALUE {'a': 4, 'l': [1.50, `2021-01-01T`]}", "SELECT * FROM T AS t"],
    ["UPDATE T AS t SET t.b = 'y' WHERE t.a = 1", "INSERT INTO T {'a': 5, 'm': missing}"],
    ["INSERT INTO Nope {'a': 1}"],  # refused: no such table
    ["INSERT INTO T {'a': 6}", "INSERT INTO T {'a': 6}"],  # one text twice: two documents
]


def test_planned_inserts_give_the_journal_of_the_general_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = run_script(tmp_path / "planned.db", _SCRIPT)
    monkeypatch.setattr("ledger.transaction.bound_insert", lambda text: None)
    general = run_script(tmp_path / "general.db", _SCRIPT)
    assert planned == general
    blocks, documents, refused = planned
    assert len(blocks) == 5 and len(documents) == 7 and len(refused) == 1
