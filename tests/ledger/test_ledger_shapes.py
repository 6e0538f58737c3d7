"""Parsing by shape (ledger.parser: literals replaced by placeholders, the shape parsed once)
gives exactly the tree, parameter count and error lark gives for the statement itself."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import parser
from ledger.errors import ParseError

pytestmark = pytest.mark.ingest_env

_strings = st.one_of(
    st.sampled_from(
        [
            "", "a", "VIN0001", "it''s", "--not a comment", "/* no */", "`x`", "12", "1.5",
            '"q"', "é ✓", "a\nb", "\ue001", "''",
        ]
    ),
    st.text(
        alphabet=st.characters(blacklist_characters="'", codec="utf-8"),
        max_size=6,
    ),
).map(lambda s: "'" + s + "'")  # fmt: skip
_numbers = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(str),
    st.sampled_from(
        [
            "0", "007", "1.", "1.50", ".5", "0.0", "12345678901234567890123",
            "900000000000000000000", "900000000000000000000.5",
            "1234567890123456789012345678901234567890", "123456789012345678901234567.5",
            "99999999999999999999999999999999.999", "1e5", "1.5E-3", ".5e1", "5e", "1.5e",
            "2.e3", "1.5.5",
        ]
    ),
)  # fmt: skip
_ions = st.sampled_from(
    [
        "`2020T`", "`2021-01-01T00:00:00.123Z`", "`2021-01-01T00:00:00.123-07:00`", "`1000T`",
        "` 2021-05T `", "`2021-01-01T00:00-00:00`", "`2021-13-01T`", "`{a: 1}`", "`[1, 2]`",
        "`1.0`", "`abc`", "`{{`", "`\"s\"`", "``",
    ]
)  # fmt: skip
_atoms = st.one_of(
    _strings, _numbers, _ions, st.sampled_from(["null", "true", "false", "missing", "?", "NULL"])
)
_negated = st.builds(lambda a, n: "-" * n + a, _numbers, st.integers(0, 2)) | st.one_of(
    _numbers, _ions
).map(lambda a: "- " + a)


def _containers(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(st.tuples(_strings, inner), max_size=4).map(
            lambda fs: "{" + ", ".join(f"{k}: {v}" for k, v in fs) + "}"
        ),
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(inner, max_size=3).map(lambda xs: "<<" + ", ".join(xs) + ">>"),
    )


_values = st.recursive(st.one_of(_atoms, _negated), _containers, max_leaves=8)
_tables = st.sampled_from(["Car", "T", '"Quoted1"', '"a""b"', "x1", "Vehicle_2", "$t"])
_fields = st.sampled_from(
    ["a", "VIN", '"f 1"', "x2", "['k']", "[0]", "[1].b", "value", ".5", "[`2020T`]", '[`"k"`]']
)
_ops = st.sampled_from(["=", "<>", "!=", "<", ">=", "LIKE", "||", "+", "*", "-", "IS NOT"])
_statements = st.one_of(
    st.builds("INSERT INTO {} VALUE {}".format, _tables, _values),
    st.builds("INSERT INTO {} {}".format, _tables, _values),
    st.builds(
        "UPDATE {} AS t SET t.{} = {} WHERE t.{} {} {}".format,
        _tables, _fields, _values, _fields, _ops, _values,
    ),
    st.builds("DELETE FROM {} AS t WHERE t.{} {} {}".format, _tables, _fields, _ops, _values),
    st.builds(
        "SELECT t.{1}, {2} AS x FROM {0} AS t WHERE t.{1} IN ({2}, {3})".format,
        _tables, _fields, _values, _values,
    ),
    st.builds(
        "SELECT VALUE t[{2}] FROM {0} AS t BY id WHERE id = {3} AND t.{1} BETWEEN {2} AND {3}"
        .format,
        _tables, _fields, _values, _values,
    ),
    st.builds(
        "FROM {} AS t WHERE t.a = {} INSERT INTO t.l VALUE {} AT {}".format,
        _tables, _values, _values, _numbers,
    ),
    st.builds("CREATE TABLE {} WITH (aws_tags = {})".format, _tables, _values),
    st.builds("SELECT * FROM history({}, {}) AS h WHERE h.metadata.id = {}".format,
              _tables, _values, _values),
)  # fmt: skip
_spaces = st.sampled_from([" ", "  ", "\n", " /* c '1' */ ", " -- c '2'\n", "\t"])


def _outcome(parse: Any, text: str) -> tuple[Any, ...]:
    try:
        parsed = parse(text)
    except ParseError as exc:
        return ("refused", str(exc))
    except Exception as exc:  # the same unexpected error either way
        return ("raised", type(exc).__name__)
    return ("parsed", repr(parsed.statement), parsed.parameters, parsed.text)


def assert_same_as_lark(text: str) -> None:
    by_shape = parser._parse_by_shape(text)
    direct = _outcome(parser._parse_lark, text)
    if by_shape is not None:
        assert ("parsed", repr(by_shape.statement), by_shape.parameters, by_shape.text) == direct
    assert _outcome(parser.parse.__wrapped__, text) == direct


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _statements,
    _spaces,
    st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(0, 2), st.text(max_size=1))),
)
def test_statements_parse_by_shape_as_lark_parses_them(
    text: str, space: str, mutation: tuple[int, int, str] | None
) -> None:
    text = text.replace(" ", space, 1)
    if mutation is not None:  # a character inserted, deleted or replaced: errors too
        pos, op, ch = mutation
        pos %= len(text)
        text = (text[:pos] + ch + text[pos + (op != 1) :]) if op else text[:pos] + text[pos + 1 :]
    assert_same_as_lark(text)


@pytest.mark.parametrize(
    "text",
    [
        "INSERT INTO Car {'VIN': 'V1', 'Year': 2001, 'Price': 10.50, 'Tags': ['a', 1]}",
        "UPDATE Car AS c SET c.Price = -5, c.n = - -2.50 WHERE c.VIN = 'V1'",
        "SELECT * FROM Car AS c WHERE c['VIN'] = 'x' AND c.l[0] = 1 -- 'comment'",
        "SELECT * FROM \"a'1\" WHERE x = '\ue000'",
        "SELECT * FROM T WHERE x = 1234567890123456789012345678901234567890",
        "SELECT * FROM T WHERE a.5 = 1",
        "INSERT INTO T VALUE {'a': `2020T`, 'b': 1e3, 'c': `2021-01-01T00:00:00.5Z`}",
        "SELECT * FROM T AS t WHERE t[`2020T`] = `1000T` AND t.b = - `1`",
        "DELETE FROM T WHERE x = 'unterminated",
    ],
)
def test_shapes_of_known_statements(text: str) -> None:
    assert_same_as_lark(text)


def test_statements_of_one_shape_share_one_lark_parse() -> None:
    parser._parse_shape.cache_clear()
    for i in range(5):
        parsed = parser.parse.__wrapped__(f"UPDATE T AS t SET t.n = {i} WHERE t.id = 'd{i}'")
        assert repr(parsed.statement).count(f"'d{i}'") == 1
    info = parser._parse_shape.cache_info()
    assert (info.misses, info.hits) == (1, 4)
