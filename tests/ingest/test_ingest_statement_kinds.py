"""The ingest path classifies statements by shape (``ledger.classify.statement_kind``: decided once
per shape where the literals cannot change the kind): every statement gets the kind
``classify`` gives it, including one whose shape was cached from a statement of another kind."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decode import decode_kinesis_data
from ledger import classify as cl
from ledger.parser import parse_shape

pytestmark = pytest.mark.ingest_env


@pytest.mark.parametrize(
    ("cached", "text", "kind"),
    [
        # a bracketed string is a field name: the same shape references metadata.id or not
        (
            "UPDATE T AS t SET t.a = 1 WHERE t['foo']['bar'] = 'x'",
            "UPDATE T AS t SET t.a = 1 WHERE t['metadata']['id'] = 'x'",
            "document_id",
        ),
        (
            "UPDATE T AS t SET t.a = 1 WHERE t['metadata']['id'] = 'x'",
            "UPDATE T AS t SET t.a = 1 WHERE t['foo']['bar'] = 'x'",
            "literal",
        ),
        (
            "DELETE FROM T AS t WHERE t.metadata['x'] = 1",
            "DELETE FROM T AS t WHERE t.metadata['id'] = 1",
            "document_id",
        ),
        (
            "SELECT * FROM T AS t WHERE t['metadata']['id'] = 'a'",
            "SELECT * FROM T AS t WHERE t['a']['b'] = 'a'",
            "select",
        ),
        # literals that are only values: one kind for the shape
        (
            "INSERT INTO T VALUE {'a': 1, 'b': 'x'}",
            "INSERT INTO T VALUE {'a': 2, 'b': 'y'}",
            "literal",
        ),
        (
            "UPDATE T SET a = ? WHERE b = 'x'",
            "UPDATE T SET a = ? WHERE b = 'metadata'",
            "parameterized",
        ),
        (
            "INSERT INTO T VALUE {'id': 'metadata'}",
            "INSERT INTO T VALUE {'metadata': 'id'}",
            "literal",
        ),
    ],
)
def test_a_cached_shape_does_not_decide_a_statement_of_another_meaning(
    cached: str, text: str, kind: str
) -> None:
    cl._by_shape.clear()
    first, second = parse_shape(cached), parse_shape(text)
    assert first is not None and second is not None and first[0] == second[0]  # one shape
    assert cl.statement_kind(cached) == cl.classify(cached).kind
    assert cl.statement_kind(text) == kind == cl.classify(text).kind


def test_shapes_whose_kind_cannot_depend_on_literals_are_decided_once() -> None:
    cl._by_shape.clear()
    text = "UPDATE Person AS p SET p.Balance = 160.47 WHERE p.GovId = 'GOV000003'"
    assert cl.statement_kind(text) == "literal"
    shaped = parse_shape(text)
    assert shaped is not None and cl._by_shape == {shaped[0]: "literal"}
    assert cl.statement_kind(text.replace("160.47", "1.5")) == "literal"
    assert len(cl._by_shape) == 1
    bracketed = "UPDATE T AS t SET t.a = 1 WHERE t['k'] = 'x'"
    assert cl.statement_kind(bracketed) == "literal"
    shaped = parse_shape(bracketed)
    assert shaped is not None and cl._by_shape[shaped[0]] is None  # classified one by one


def test_statements_without_a_shape_are_classified_as_themselves() -> None:
    for text in (
        "CREATE TABLE T",
        "SELECT * FROM T",
        "",
        "   ",
        "SELECT * FROM T WHERE",
        "x" * 100_001,
    ):
        assert cl.statement_kind(text) == cl.classify(text).kind


def test_the_decoder_gives_block_summaries_the_kinds_classify_gives() -> None:
    from ingest_helpers import DYNAMODB_EVENT, ES_EVENT, kinesis_data

    from buffer.port import Incoming

    cl._by_shape.clear()
    seen = 0
    for name in (DYNAMODB_EVENT, ES_EVENT):
        for item in decode_kinesis_data(kinesis_data(name), origin="o"):
            assert isinstance(item, Incoming)
            statements = getattr(item.record, "statements", ())
            assert item.statement_kinds == tuple(cl.classify(s.text).kind for s in statements)
            seen += len(statements)
    assert seen


_names = st.sampled_from(
    ["a", "id", "metadata", "VIN", "['metadata']", "['id']", "['k']", "[0]", '"id"', "data"]
)
_literals = st.one_of(
    st.sampled_from(["'metadata'", "'id'", "'x'", "1", "2.50", "`2020T`", "?", "utcnow()"]),
    st.text(alphabet="abcdi'", max_size=6).map(lambda s: "'" + s.replace("'", "''") + "'"),
)
_tables = st.sampled_from(["T", "_ql_committed_T", "history(T)", "T BY pid"])
_statements = st.one_of(
    st.builds("INSERT INTO T VALUE {{{}: {}}}".format, _literals, _literals),
    st.builds("UPDATE {} AS t SET t.{} = {} WHERE t.{}{} = {}".format,
              _tables, _names, _literals, _names, _names, _literals),
    st.builds("DELETE FROM {} AS t WHERE t.{}{} = {}".format, _tables, _names, _names, _literals),
    st.builds("SELECT * FROM {} AS t WHERE t{}{} = {}".format, _tables, _names, _names, _literals),
    st.builds("UPDATE T AS t SET t.a = {} WHERE metadata{} = {}".format, _literals, _names,
              _literals),
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_statements, min_size=1, max_size=6))
def test_generated_statements_get_the_kind_classify_gives(texts: list[str]) -> None:
    # the cache is kept between examples: later statements meet shapes cached by earlier ones
    for text in texts:
        assert cl.statement_kind(text) == cl.classify(text).kind, text
