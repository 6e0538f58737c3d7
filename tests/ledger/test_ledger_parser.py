"""The parser: every statement form of issue 3, errors that point at the token, classification."""

from __future__ import annotations

import pathlib
from decimal import Decimal

import pytest
from amazon.ion import simpleion
from amazon.ion.core import TimestampPrecision

from ledger.classify import KINDS, classify
from ledger.errors import ParseError
from ledger.nodes import (
    MISSING,
    And,
    BagExpr,
    Between,
    Call,
    Compare,
    CreateIndex,
    CreateTable,
    Delete,
    DropIndex,
    DropTable,
    Field,
    Index,
    InList,
    InsertIntoOp,
    InsertMany,
    InsertValue,
    IsType,
    Like,
    ListExpr,
    Lit,
    Not,
    Or,
    Param,
    Path,
    RemoveOp,
    Select,
    SetOp,
    StructExpr,
    UndropTable,
    Update,
)
from ledger.parser import parse

# The ingest Lambda classifies with this parser under amazon.ion 0.15: these run there too.
pytestmark = pytest.mark.ingest_env


def test_ddl_forms() -> None:
    assert parse("CREATE TABLE Vehicle").statement == CreateTable("Vehicle")
    assert parse("drop table Vehicle").statement == DropTable("Vehicle")
    assert parse('UNDROP TABLE "5PLf9SXwndd63lPaSIa0O6"').statement == UndropTable(
        "5PLf9SXwndd63lPaSIa0O6"
    )
    assert parse("CREATE INDEX ON Person (GovId)").statement == CreateIndex("Person", Path("GovId"))
    s = parse('DROP INDEX "4tPW3fUhaVhDinRgKRLhGU" ON Person WITH (purge = true)').statement
    assert s == DropIndex("4tPW3fUhaVhDinRgKRLhGU", "Person", (("purge", Lit(True)),))


def test_insert_forms() -> None:
    one = parse("INSERT INTO T VALUE {'a': 1}").statement
    assert one == InsertValue("T", StructExpr((("a", Lit(1)),)))
    bag = parse("INSERT INTO T << {'a': 1}, {'a': 2} >>").statement
    assert isinstance(bag, InsertMany) and isinstance(bag.values, BagExpr)
    assert len(bag.values.items) == 2
    param = parse("INSERT INTO T ?")
    assert param.statement == InsertMany("T", Param(0)) and param.parameters == 1
    bare = parse("INSERT INTO T {'a': 1}").statement  # the form of QLDB's revisions guide
    assert bare == InsertMany("T", StructExpr((("a", Lit(1)),)))


def test_update_forms() -> None:
    s = parse("UPDATE T AS t BY pid SET t.a = 1, t.b.c[0] = ? WHERE pid = ?")
    assert s.parameters == 2
    u = s.statement
    assert isinstance(u, Update) and u.source.alias == "t" and u.source.by == "pid"
    assert u.ops == (
        SetOp(
            (
                (Path("t", (Field("a"),)), Lit(1)),
                (Path("t", (Field("b"), Field("c"), Index(Lit(0)))), Param(0)),
            )
        ),
    )
    assert u.where == Compare("=", Path("pid"), Param(1))
    r = parse("UPDATE Person REMOVE Address WHERE GovId = 'x'").statement
    assert isinstance(r, Update) and r.ops == (RemoveOp(Path("Address")),)
    ins = parse("UPDATE Person AS p INSERT INTO p VALUE 'L1' AT 'LicenseNumber'").statement
    assert isinstance(ins, Update) and ins.where is None
    assert ins.ops == (InsertIntoOp(Path("p"), Lit("L1"), Lit("LicenseNumber")),)


def test_delete_and_from_forms() -> None:
    d = parse("DELETE FROM T AS t BY id WHERE id = ?").statement
    assert isinstance(d, Delete) and d.source.by == "id"
    every = parse("DELETE FROM T").statement
    assert isinstance(every, Delete) and every.where is None and every.source.table == "T"
    f = parse(
        "FROM VehicleRegistration AS r WHERE r.VIN = '1N4AL11D75C109151' "
        "INSERT INTO r.Owners.SecondaryOwners VALUE { 'PersonId' : 'abc' } AT 0"
    ).statement
    assert isinstance(f, Update) and f.form == "from"
    assert f.ops == (
        InsertIntoOp(
            Path("r", (Field("Owners"), Field("SecondaryOwners"))),
            StructExpr((("PersonId", Lit("abc")),)),
            Lit(0),
        ),
    )
    g = parse("FROM Person p WHERE p.GovId = 'x' SET p.A = 1 REMOVE p.B").statement
    assert isinstance(g, Update) and len(g.ops) == 2 and g.source.alias == "p"


def test_select_forms() -> None:
    s = parse("SELECT * FROM Person AS p WHERE p.FirstName = 'Raul'").statement
    assert isinstance(s, Select) and s.items is None and s.source.kind == "table"
    c = parse("SELECT r.metadata.id FROM _ql_committed_VehicleRegistration AS r").statement
    assert isinstance(c, Select) and c.source.kind == "committed"
    assert c.source.table == "VehicleRegistration"
    h = parse("SELECT * FROM history(Person) AS h WHERE h.metadata.id = 'x'").statement
    assert isinstance(h, Select) and h.source.kind == "history"
    v = parse("SELECT VALUE x['a'] FROM T x").statement
    assert isinstance(v, Select) and v.value == Path("x", (Field("a"),))
    b = parse("SELECT pid, p.VIN AS vin FROM T AS p BY pid").statement
    assert isinstance(b, Select) and b.items is not None and b.items[1].alias == "vin"
    u = parse("SELECT * FROM information_schema.user_tables").statement
    assert isinstance(u, Select) and u.source.kind == "user_tables"


def test_literals() -> None:
    s = parse(
        "INSERT INTO T VALUE {'s': 'it''s', 'i': 12, 'd': 12.50, 'f': 1.5e3, 't': true, "
        "'n': null, 'm': missing, 'l': [1, [2]], 'b': <<1>>, 'ts': `2021-09-16T10:00:00.000Z`, "
        "'day': `2021-09-16T`, 'blob': `{{aGVsbG8=}}`, 'neg': -2.5}"
    ).statement
    assert isinstance(s, InsertValue) and isinstance(s.value, StructExpr)
    f = dict(s.value.fields)
    assert f["s"] == Lit("it's") and f["i"] == Lit(12) and f["f"] == Lit(1500.0)
    assert isinstance(f["d"], Lit) and str(f["d"].value) == "12.50"
    assert f["t"] == Lit(True) and f["n"] == Lit(None) and f["m"] == Lit(MISSING)
    assert f["l"] == ListExpr((Lit(1), ListExpr((Lit(2),))))
    assert f["b"] == BagExpr((Lit(1),))
    assert isinstance(f["ts"], Lit) and f["ts"].value.fractional_precision == 3
    assert isinstance(f["day"], Lit) and f["day"].value.precision is TimestampPrecision.DAY
    assert isinstance(f["blob"], Lit) and bytes(f["blob"].value) == b"hello"
    assert f["neg"] == Lit(Decimal("-2.5"))


def test_predicates_and_precedence() -> None:
    s = parse(
        "SELECT * FROM T AS x WHERE x.a IN (1, 2) AND x.b BETWEEN 1 AND 2 OR NOT x.c LIKE 'a%' "
        "AND x.d IS NOT MISSING AND x.e IS NULL AND x.f <> 1 AND x.g != 2 AND upper(x.h) >= 'A'"
    ).statement
    assert isinstance(s, Select) and isinstance(s.where, Or)
    left, right = s.where.left, s.where.right
    assert isinstance(left, And) and isinstance(left.left, InList)
    assert isinstance(left.right, Between)
    nodes = []
    stack: list[object] = [right]
    while stack:
        n = stack.pop()
        nodes.append(n)
        for attr in ("left", "right", "operand"):
            if hasattr(n, attr):
                stack.append(getattr(n, attr))
    assert any(isinstance(n, Not) and isinstance(n.operand, Like) for n in nodes)
    assert any(isinstance(n, IsType) and n.kind == "missing" and n.negated for n in nodes)
    assert any(isinstance(n, IsType) and n.kind == "null" and not n.negated for n in nodes)
    assert sum(isinstance(n, Compare) and n.op == "<>" for n in nodes) == 2
    assert any(isinstance(n, Compare) and isinstance(n.left, Call) for n in nodes)


@pytest.mark.parametrize(
    ("text", "token", "column"),
    [
        ("EXEC redact_revision 'a' 'b'", "'b'", 26),
        ("SELECT * FROM T WHERE x = = 1", "'='", 27),
        ("INSERT INTO T VALUE foo(1)", "'foo'", 21),
        ("SELECT * FROM @t.x AS y", "'@'", 15),  # unnesting needs an earlier source
        ("SELECT # FROM T", "'#'", 8),
        ("SELECT * FROM T WHERE a = `{a:`", "'`{a:`'", 27),
        ("SELECT * FROM T WHERE a = 1 ORDER BY a", "'ORDER'", 29),
    ],
)
def test_errors_point_at_the_offending_token(text: str, token: str, column: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert token in info.value.reason
    assert f"column {column}" in info.value.reason
    assert info.value.statement == text


def test_errors_at_the_end_and_on_later_lines() -> None:
    with pytest.raises(ParseError, match="unexpected end of statement"):
        parse("SELECT * FROM T WHERE")
    with pytest.raises(ParseError, match="line 2, column 11"):
        parse("SELECT * FROM T\nWHERE x = = 1")


def test_keywords_are_whole_words_and_names_may_look_like_them() -> None:
    s = parse("SELECT x.value, x.order FROM Orders AS selection WHERE selection.orx = 1").statement
    assert isinstance(s, Select) and s.source.table == "Orders"
    assert s.source.alias == "selection" and s.items is not None
    assert [i.expr for i in s.items] == [Path("x", (Field("value"),)), Path("x", (Field("order"),))]


def test_the_parse_is_cached_per_text() -> None:
    text = "SELECT * FROM CachedTable WHERE a = 1"
    assert parse(text) is parse(text)


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("CREATE TABLE T", "literal", "DDL"),
        ("CREATE INDEX ON T (f)", "literal", "DDL"),
        ("INSERT INTO T VALUE {'a': 1}", "literal", "text"),
        ("UPDATE T AS t SET t.a = 1 WHERE t.b = 2", "literal", "text"),
        ("DELETE FROM T", "literal", "text"),
        ("SELECT * FROM T WHERE a = ?", "select", "read-only"),
        ("SELECT * FROM _ql_committed_T", "select", "read-only"),
        ("INSERT INTO T ?", "parameterized", "1 parameter"),
        ("UPDATE T SET a = ? WHERE b = ?", "parameterized", "2 parameters"),
        ("UPDATE T AS t BY pid SET t.a = 1 WHERE pid = 'x'", "document_id", "BY pid"),
        ("DELETE FROM T AS t WHERE t.metadata.id = 'x'", "document_id", "metadata.id"),
        ("INSERT INTO T VALUE {'at': utcnow()}", "nondeterministic", "utcnow()"),
        ('UNDROP TABLE "abc"', "ddl_id", '"abc"'),
        ('DROP INDEX "ix" ON T WITH (purge = true)', "ddl_id", '"ix"'),
        ("EXEC redact_revision 'a', 'b', 'c'", "unsupported", "stored procedure"),
        ("SELECT * FROM T, T2", "select", "read-only"),  # joins are reads: skipped on replay
        ("SELECT t FROM T AS t INNER JOIN T2 AS u ON t.a = u.a", "select", "read-only"),
    ],
)
def test_classify(text: str, kind: str, reason: str) -> None:
    c = classify(text)
    assert c.kind == kind and kind in KINDS
    assert reason in c.reason


def test_classify_the_statements_of_real_stream_records(fixtures_dir: pathlib.Path) -> None:
    kinds = []
    for name in (
        "qldb-simple-demo__streams-dynamodb__data.DECODED.DERIVED.ion",
        "amazon-qldb-streams-dmv-sample-lambda-python__tests_unit_fixtures__"
        "person_block_summary_ion_record.ion",
    ):
        for value in simpleion.loads((fixtures_dir / name).read_bytes(), single_value=False):
            if value.get("recordType") == "BLOCK_SUMMARY":
                for st in value["payload"]["transactionInfo"]["statements"]:
                    kinds.append(classify(str(st["statement"])).kind)
    # SELECT ... = ?, INSERT INTO BicycleLicence ?, UPDATE ... = ?; then a literal bag INSERT.
    assert kinds == ["select", "parameterized", "parameterized", "literal"]
