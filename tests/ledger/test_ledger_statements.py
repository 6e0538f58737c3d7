"""Each statement form of issue 3 run against the embedded ledger and read back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType, TimestampPrecision

from ledger import EmbeddedLedger, StatementError
from ledger.errors import ParseError


def one(rows: list[Any]) -> Any:
    assert len(rows) == 1, rows
    return rows[0]


@pytest.fixture
def people(led: EmbeddedLedger) -> EmbeddedLedger:
    led.execute("CREATE TABLE Person")
    led.execute("CREATE INDEX ON Person (GovId)")
    led.execute(
        "INSERT INTO Person << {'FirstName': 'Raul', 'GovId': 'A1', 'Balance': 12.50, "
        "'Tags': ['a'], 'Address': {'City': 'Seattle', 'Zip': '98109'}}, "
        "{'FirstName': 'Brent', 'GovId': 'B2', 'Balance': 300, 'Tags': []} >>"
    )
    return led


def test_create_and_drop_table_return_ids_and_refuse_duplicates(led: EmbeddedLedger) -> None:
    created = one(led.execute("CREATE TABLE Vehicle"))
    assert len(created["tableId"]) == 22
    with pytest.raises(StatementError, match="already exists"):
        led.execute("CREATE TABLE Vehicle")
    dropped = one(led.execute("DROP TABLE Vehicle"))
    assert dropped["tableId"] == created["tableId"]
    with pytest.raises(StatementError, match="no active table named 'Vehicle'"):
        led.execute("SELECT * FROM Vehicle")
    one(led.execute("CREATE TABLE Vehicle"))  # the name is free again
    with pytest.raises(StatementError, match="already exists"):
        led.execute(f'UNDROP TABLE "{created["tableId"]}"')


def test_undrop_table_brings_back_its_documents(led: EmbeddedLedger) -> None:
    table_id = one(led.execute("CREATE TABLE T"))["tableId"]
    led.execute("INSERT INTO T VALUE {'a': 1}")
    led.execute("DROP TABLE T")
    assert list(led.documents()) == []
    assert one(led.execute(f'UNDROP TABLE "{table_id}"'))["tableId"] == table_id
    assert [d for _, _, d in led.documents()] == [{"a": 1}]
    with pytest.raises(StatementError, match="not dropped"):
        led.execute(f'UNDROP TABLE "{table_id}"')


def test_indexes_are_created_used_and_dropped(people: EmbeddedLedger) -> None:
    [(fld, index_id)] = people.indexes("Person")
    assert fld == "GovId"
    with pytest.raises(StatementError, match="already has an index"):
        people.execute("CREATE INDEX ON Person (GovId)")
    with pytest.raises(StatementError, match="top-level field"):
        people.execute("CREATE INDEX ON Person (Address.City)")
    assert one(people.execute("SELECT p.FirstName FROM Person AS p WHERE p.GovId = 'B2'")) == {
        "FirstName": "Brent"
    }
    with pytest.raises(StatementError, match="purge = true"):
        people.execute(f'DROP INDEX "{index_id}" ON Person')
    people.execute(f'DROP INDEX "{index_id}" ON Person WITH (purge = true)')
    assert people.indexes("Person") == []
    # Without the index the same query scans and finds the same document.
    assert one(people.execute("SELECT p.FirstName FROM Person AS p WHERE p.GovId = 'B2'")) == {
        "FirstName": "Brent"
    }
    table = one(people.execute("SELECT * FROM information_schema.user_tables"))
    assert table["name"] == "Person" and table["status"] == "ACTIVE" and table["indexes"] == []


def test_insert_value_bag_parameter_and_bare_struct(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    ids = [r["documentId"] for r in led.execute("INSERT INTO T << {'n': 1}, {'n': 2} >>")]
    ids += [one(led.execute("INSERT INTO T VALUE {'n': 3}"))["documentId"]]
    ids += [one(led.execute("INSERT INTO T ?", {"n": 4}))["documentId"]]
    ids += [r["documentId"] for r in led.execute("INSERT INTO T ?", [{"n": 5}, {"n": 6}])]
    ids += [one(led.execute("INSERT INTO T {'n': 7}"))["documentId"]]
    assert len(set(ids)) == 7 and all(len(i) == 22 for i in ids)
    assert sorted(r["n"] for r in led.execute("SELECT * FROM T")) == [1, 2, 3, 4, 5, 6, 7]
    by_id = {d: v["n"] for _, d, v in led.documents()}
    assert [by_id[i] for i in ids] == [1, 2, 3, 4, 5, 6, 7]


def test_insert_refuses_non_documents_and_applies_nothing(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    with pytest.raises(StatementError, match="must be a struct"):
        led.execute("INSERT INTO T << {'n': 1}, 2 >>")
    with pytest.raises(StatementError, match="cannot refer to 'x'"):
        led.execute("INSERT INTO T VALUE {'n': x}")
    # deep in the value too (the check does not walk the tree with ``nodes.walk`` any more)
    for deep in (
        "INSERT INTO T VALUE {'a': [1, {'b': <<2, y.z>>}]}",
        "INSERT INTO T << {'n': 1}, {'m': [3, 4 + y]} >>",
        "INSERT INTO T VALUE {'a': {'b': {'c': upper(y)}}}",
    ):
        with pytest.raises(StatementError, match="cannot refer to 'y'"):
            led.execute(deep)
    assert led.execute("SELECT * FROM T") == []


def test_decimals_and_timestamps_survive_unchanged(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    led.execute(
        "INSERT INTO T VALUE {'amount': 12.50, 'zero': 0.00, 'big': 123456789012345678901234.5, "
        "'day': `1963-08-19T`, 'ms': `2021-09-16T10:00:00.000Z`, 'ns': "
        "`2021-09-16T10:00:00.123456789-07:30`, 'blob': `{{aGVsbG8=}}`, 'f': 1.5e0}"
    )
    led.execute("INSERT INTO T ?", simpleion.loads("{amount: 7.10, day: 2020-01-01T}"))
    rows = {str(r["amount"]): r for r in led.execute("SELECT * FROM T")}
    r = rows["12.50"]
    assert r["amount"].ion_type is IonType.DECIMAL and str(r["zero"]) == "0.00"
    assert str(r["big"]) == "123456789012345678901234.5"
    assert r["day"].precision is TimestampPrecision.DAY
    assert r["ms"].fractional_precision == 3 and r["ms"].microsecond == 0
    assert str(r["ns"].fractional_seconds) == "0.123456789"
    assert r["ns"].utcoffset().total_seconds() == -(7 * 3600 + 1800)
    assert r["blob"].ion_type is IonType.BLOB and bytes(r["blob"]) == b"hello"
    assert r["f"].ion_type is IonType.FLOAT
    assert str(rows["7.10"]["amount"]) == "7.10"
    # and in the Ion text a person would see
    text = simpleion.dumps(r, binary=False)
    assert "12.50" in text and "1963-08-19T" in text and "2021-09-16T10:00:00.000Z" in text


def test_update_set_nested_paths_creates_missing_structs(people: EmbeddedLedger) -> None:
    people.execute(
        "UPDATE Person AS p SET p.Address.City = 'Tacoma', p.Contact.Phone.Home = '555', "
        "p.Tags[0] = 'z', p.Balance = p.Balance + 1.25 WHERE p.GovId = 'A1'"
    )
    r = one(people.execute("SELECT * FROM Person AS p WHERE p.GovId = 'A1'"))
    assert r["Address"] == {"City": "Tacoma", "Zip": "98109"}
    assert r["Contact"] == {"Phone": {"Home": "555"}}
    assert r["Tags"] == ["z"] and str(r["Balance"]) == "13.75"
    with pytest.raises(StatementError, match="out of range"):
        people.execute("UPDATE Person AS p SET p.Tags[5] = 'x' WHERE p.GovId = 'A1'")


def test_update_without_alias_and_bracket_paths(people: EmbeddedLedger) -> None:
    people.execute("UPDATE Person SET Nick = 'R' WHERE GovId = 'A1'")
    people.execute("UPDATE Person AS p SET p['Nick 2'] = 'RR' WHERE p['GovId'] = 'A1'")
    r = one(people.execute("SELECT Nick, p['Nick 2'] AS n2 FROM Person AS p WHERE GovId = 'A1'"))
    assert r == {"Nick": "R", "n2": "RR"}


def test_remove_fields_list_elements_and_whole_documents(people: EmbeddedLedger) -> None:
    people.execute("UPDATE Person AS p REMOVE p.Address.Zip WHERE p.GovId = 'A1'")
    people.execute("UPDATE Person AS p REMOVE p.Tags[0] WHERE p.GovId = 'A1'")
    people.execute("UPDATE Person AS p REMOVE p.NotThere WHERE p.GovId = 'A1'")  # a no-op
    r = one(people.execute("SELECT * FROM Person AS p WHERE p.GovId = 'A1'"))
    assert r["Address"] == {"City": "Seattle"} and r["Tags"] == []
    deleted = one(people.execute("FROM Person AS p WHERE p.GovId = 'B2' REMOVE p"))
    assert people.execute("SELECT * FROM Person AS p WHERE p.GovId = 'B2'") == []
    history = people.execute(
        f"SELECT h.metadata.version AS v FROM history(Person) AS h "
        f"WHERE h.metadata.id = '{deleted['documentId']}'"
    )
    assert [h["v"] for h in history] == [0, 1]


def test_from_insert_into_a_nested_list_and_a_struct(people: EmbeddedLedger) -> None:
    people.execute("FROM Person AS p WHERE p.GovId = 'A1' INSERT INTO p.Tags VALUE 'b'")
    people.execute("FROM Person AS p WHERE p.GovId = 'A1' INSERT INTO p.Tags VALUE 'first' AT 0")
    people.execute(
        "FROM Person AS p WHERE p.GovId = 'A1' "
        "INSERT INTO p.Address VALUE {'Line': 'Unit 5'} AT 'Extra'"
    )
    people.execute("UPDATE Person AS p INSERT INTO p VALUE 'L-1' AT 'License' WHERE p.GovId = 'A1'")
    r = one(people.execute("SELECT * FROM Person AS p WHERE p.GovId = 'A1'"))
    assert r["Tags"] == ["first", "a", "b"]
    assert r["Address"]["Extra"] == {"Line": "Unit 5"} and r["License"] == "L-1"
    with pytest.raises(StatementError, match="already exists"):
        people.execute(
            "UPDATE Person AS p INSERT INTO p VALUE 'x' AT 'License' WHERE p.GovId = 'A1'"
        )
    with pytest.raises(StatementError, match="list or a struct"):
        people.execute("FROM Person AS p WHERE p.GovId = 'A1' INSERT INTO p.FirstName VALUE 'x'")


def test_delete_with_and_without_where(people: EmbeddedLedger) -> None:
    gone = one(people.execute("DELETE FROM Person AS p WHERE p.GovId = 'A1'"))
    assert [r["FirstName"] for r in people.execute("SELECT * FROM Person")] == ["Brent"]
    assert people.execute("DELETE FROM Person AS p WHERE p.GovId = 'A1'") == []
    assert len(people.execute("DELETE FROM Person")) == 1
    assert list(people.documents()) == []
    committed = people.execute(
        f"SELECT * FROM _ql_committed_Person AS c WHERE c.metadata.id = '{gone['documentId']}'"
    )
    assert committed == []


def test_by_id_select_update_and_delete(people: EmbeddedLedger) -> None:
    pid = one(people.execute("SELECT pid FROM Person AS p BY pid WHERE p.GovId = 'B2'"))["pid"]
    assert one(people.execute("UPDATE Person AS p BY pid SET p.X = ? WHERE pid = ?", 5, pid)) == {
        "documentId": pid
    }
    assert one(people.execute("SELECT p.X FROM Person AS p BY pid WHERE pid = ?", pid)) == {"X": 5}
    assert one(people.execute("DELETE FROM Person AS p BY pid WHERE pid = ?", pid)) == {
        "documentId": pid
    }
    assert people.execute("SELECT * FROM Person AS p BY pid WHERE pid = ?", pid) == []


def test_committed_view_and_history(people: EmbeddedLedger) -> None:
    people.execute("UPDATE Person AS p SET p.Balance = 1 WHERE p.GovId = 'A1'")
    row = one(people.execute("SELECT * FROM _ql_committed_Person AS r WHERE r.data.GovId = 'A1'"))
    assert set(row) == {"blockAddress", "hash", "data", "metadata"}
    assert row["metadata"]["version"] == 1 and row["data"]["Balance"] == 1
    assert row["blockAddress"]["strandId"] == people.strand_id and len(row["hash"]) == 32
    doc_id = row["metadata"]["id"]
    versions = people.execute(
        f"SELECT h.metadata.version AS v, h.data.Balance AS b FROM history(Person) AS h "
        f"WHERE h.metadata.id = '{doc_id}'"
    )
    assert [(v["v"], str(v["b"])) for v in versions] == [(0, "12.50"), (1, "1")]


def test_select_projections_and_predicates(people: EmbeddedLedger) -> None:
    def names(where: str, *params: Any) -> list[str]:
        rows = people.execute(f"SELECT VALUE p.FirstName FROM Person AS p {where}", *params)
        return sorted(str(v) for v in rows)

    assert names("WHERE p.GovId IN ('A1', 'Z9')") == ["Raul"]
    assert names("WHERE p.GovId NOT IN ('A1')") == ["Brent"]
    assert names("WHERE p.GovId IN ?", ["B2"]) == ["Brent"]
    assert names("WHERE p.Balance BETWEEN 10 AND 20") == ["Raul"]
    assert names("WHERE p.Balance > 12.5") == ["Brent"]  # 12.50 = 12.5: not greater
    assert names("WHERE p.Balance = 12.5") == ["Raul"]
    assert names("WHERE p.FirstName LIKE 'R%'") == ["Raul"]
    assert names("WHERE p.FirstName LIKE '_rent'") == ["Brent"]
    assert names("WHERE p.Address IS MISSING") == ["Brent"]
    assert names("WHERE p.Address IS NOT MISSING AND p.Address.City = 'Seattle'") == ["Raul"]
    assert names("WHERE p.Nothing IS NULL") == ["Brent", "Raul"]  # missing IS NULL too
    assert names("WHERE NOT (p.GovId = 'A1') OR p.Balance < 0") == ["Brent"]
    assert names("WHERE p.Tags[0] = 'a'") == ["Raul"]
    assert names("WHERE p.Nothing = 1") == []  # unknown is not true
    assert names("WHERE upper(p.FirstName) = 'RAUL' AND char_length(p.GovId) = 2") == ["Raul"]
    row = one(people.execute("SELECT p.FirstName, p.Address.City, p.Nope FROM Person AS p "
                             "WHERE p.GovId = 'A1'"))  # fmt: skip
    assert row == {"FirstName": "Raul", "City": "Seattle"}  # missing values are left out
    star = one(people.execute("SELECT * FROM Person WHERE GovId = 'B2'"))
    assert star["FirstName"] == "Brent" and star["Balance"] == 300


def test_parameters_must_match(people: EmbeddedLedger) -> None:
    with pytest.raises(StatementError, match="takes 1 parameter"):
        people.execute("SELECT * FROM Person AS p WHERE p.GovId = ?")
    with pytest.raises(StatementError, match="takes 0 parameter"):
        people.execute("SELECT * FROM Person", 1)


def test_unsupported_statements_name_the_part_and_apply_nothing(people: EmbeddedLedger) -> None:
    before = list(people.documents())
    with pytest.raises(ParseError) as info:
        people.execute("UPDATE Person AS p SET p.A = 1 WHERE p.GovId = 'A1' ORDER BY p.A")
    assert "'ORDER'" in info.value.reason and "ORDER BY" in str(info.value)
    with pytest.raises(StatementError, match="user view"):
        people.execute("DELETE FROM _ql_committed_Person")
    with pytest.raises(StatementError, match="cannot set field"):
        # the first document gets the change, the second fails: neither is applied
        people.execute("UPDATE Person AS p SET p.FirstName.x = 1")
    with pytest.raises(StatementError, match="needs numbers"):
        people.execute("UPDATE Person AS p SET p.Y = p.FirstName + 1")
    assert list(people.documents()) == before
    last = next(people.blocks(after=people.tip() - 1))
    assert last.statements[0].startswith("INSERT")  # no block for the failed statements


def test_a_failed_statement_leaves_the_transaction_usable(people: EmbeddedLedger) -> None:
    tx = people.begin()
    tx.execute("UPDATE Person AS p SET p.Z = 1 WHERE p.GovId = 'A1'")
    with pytest.raises(StatementError):
        tx.execute("UPDATE Person AS p SET p.FirstName.x = 1")
    tx.execute("UPDATE Person AS p SET p.Z2 = 2 WHERE p.GovId = 'A1'")
    block = tx.commit()
    assert block.statements == [
        "UPDATE Person AS p SET p.Z = 1 WHERE p.GovId = 'A1'",
        "UPDATE Person AS p SET p.Z2 = 2 WHERE p.GovId = 'A1'",
    ]
    [rev] = block.revisions
    assert rev.data["Z"] == 1 and rev.data["Z2"] == 2 and rev.version == 1


def test_reads_see_the_transaction_s_own_writes(people: EmbeddedLedger) -> None:
    tx = people.begin()
    new = one(tx.execute("INSERT INTO Person VALUE {'FirstName': 'Nova', 'GovId': 'N3'}"))
    assert one(tx.execute("SELECT p.FirstName FROM Person AS p WHERE p.GovId = 'N3'")) == {
        "FirstName": "Nova"
    }
    tx.execute("UPDATE Person AS p SET p.Age = 30 WHERE p.GovId = 'N3'")
    tx.execute("DELETE FROM Person AS p WHERE p.GovId = 'A1'")
    assert sorted(str(v) for v in tx.execute("SELECT VALUE p.GovId FROM Person AS p")) == [
        "B2", "N3"
    ]  # fmt: skip
    assert people.execute("SELECT * FROM Person AS p WHERE p.GovId = 'N3'") == []  # not yet
    block = tx.commit()
    versions = {r.document_id: (r.version, r.data) for r in block.revisions}
    assert versions[new["documentId"]] == (0, {"FirstName": "Nova", "GovId": "N3", "Age": 30})
    assert sorted(v for v, _ in versions.values()) == [0, 1]  # insert+update is one revision


def test_inserting_and_deleting_in_one_transaction_leaves_no_revision(
    people: EmbeddedLedger,
) -> None:
    tx = people.begin()
    tx.execute("INSERT INTO Person VALUE {'GovId': 'TMP'}")
    tx.execute("DELETE FROM Person AS p WHERE p.GovId = 'TMP'")
    block = tx.commit()
    assert block.revisions == () and len(block.statements) == 2


def test_deterministic_ids_with_a_seed(tmp_path: Any, clock: Any) -> None:
    def run(name: str) -> list[str]:
        with EmbeddedLedger(tmp_path / name, clock=clock, id_seed="s") as led:
            led.execute("CREATE TABLE T")
            return [r["documentId"] for r in led.execute("INSERT INTO T << {'a': 1}, {'a': 2} >>")]

    assert run("a.db") == run("b.db")
    with EmbeddedLedger(tmp_path / "c.db", clock=clock) as other:
        other.execute("CREATE TABLE T")
        assert [r["documentId"] for r in other.execute("INSERT INTO T VALUE {'a': 1}")] != run(
            "d.db"
        )[:1]


def test_decimal_arithmetic_stays_exact(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T VALUE {'a': 0.10, 'b': 7, 'c': -7}")
    led.execute("UPDATE T AS t SET t.a = t.a + 0.20, t.q = t.b / 2, t.r = t.c / 2, t.m = t.c % 3")
    r = one(led.execute("SELECT * FROM T"))
    assert r["a"] == Decimal("0.30") and str(r["a"]) == "0.30"
    assert (r["q"], r["r"], r["m"]) == (3, -3, -1)
