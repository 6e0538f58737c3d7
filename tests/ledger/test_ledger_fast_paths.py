"""The replay path's shortcuts give exactly the answers of the general code they skip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amazon.ion import simpleion
from hypothesis import given, settings
from hypothesis import strategies as st

from destination.embedded import _same
from journal.ion_binary import decode, encode
from ledger.hashing import ion_hash, statement_digest

_texts = st.sampled_from(
    [
        '"a"', '"b"', "a", "'b'", "null.string", "null", "x::\"a\"", "1", "2", "-1", "null.int",
        "true", "false", "null.bool", "{{YQ==}}", "{{Yg==}}", '{{"a"}}', "1.0", "1.", "1e0",
        "2020T", "[1]", "{a: 1}", "y::1", "$0",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_texts, _texts)
def test_same_is_equal_ion_hashes(a: str, b: str) -> None:
    x, y = decode(encode(simpleion.loads(a))), decode(encode(simpleion.loads(b)))
    assert _same(x, y) == (ion_hash(x) == ion_hash(y))


def test_statement_digests_with_staged_parameters_are_the_general_digest(
    tmp_path: Path,
) -> None:
    from ledger import EmbeddedLedger

    doc: dict[str, Any] = {"VIN": "1", "n": 2, "nested": {"l": [1, "x"]}}
    other: dict[str, Any] = {"VIN": "2"}
    with EmbeddedLedger(tmp_path / "l.db", id_seed=1) as led:
        led.execute("CREATE TABLE T")
        tx = led.begin()
        tx.execute("INSERT INTO T ?", doc)
        tx.execute("INSERT INTO T << ?, ? >>", other, doc)
        tx.execute("UPDATE T AS t SET t.n = ?, t.m = ? WHERE t.VIN = ?", 3, doc, "1")
        block = tx.commit()
    digests = [bytes(s["statementDigest"]) for s in block.payload["transactionInfo"]["statements"]]
    assert digests == [
        statement_digest("INSERT INTO T ?", [doc]),
        statement_digest("INSERT INTO T << ?, ? >>", [other, doc]),
        statement_digest("UPDATE T AS t SET t.n = ?, t.m = ? WHERE t.VIN = ?", [3, doc, "1"]),
    ]


_SCRIPT: list[list[str]] = [
    ["CREATE TABLE A", "CREATE TABLE B"],
    ["INSERT INTO A {'k': 1, 'v': 'a'}", "INSERT INTO B {'k': 1}"],
    ["CREATE INDEX ON A (k)"],
    ["INSERT INTO A {'k': 2}", "UPDATE A AS a SET a.v = 'b' WHERE a.k = 1"],
    ["DROP TABLE B"],
    ["INSERT INTO B {'k': 2}"],  # refused: B is dropped
    ["CREATE TABLE B", "INSERT INTO B {'k': 3}"],
    ["SELECT * FROM A AS a WHERE a.k = 2", "DELETE FROM A AS a WHERE a.k = 2"],
    ["CREATE INDEX ON B (k)", "INSERT INTO B {'k': 4}"],
    ["SELECT * FROM B AS b WHERE b.k = 4", "UPDATE B AS b SET b.z = 1 WHERE b.k = 4"],
    ["CREATE TABLE C", "INSERT INTO C {'x': 1}", "INSERT INTO Nope {'x': 1}"],  # refused whole
    ["INSERT INTO C {'x': 2}"],  # refused: C was never committed
]


def run_script(
    path: Path, script: list[list[str]] | None = None, *, atomic: bool = False
) -> tuple[list[Any], list[Any], list[str]]:
    """Each line of ``script`` (default ``_SCRIPT``) one transaction, in one ``atomic()`` unit
    or not: the journal's blocks, the documents (by Ion hash) and the refusals."""
    from contextlib import nullcontext

    from ledger import EmbeddedLedger, StatementError

    clock = _Clock()
    refused = []
    with EmbeddedLedger(path, id_seed=3, clock=clock) as led:
        with led.atomic() if atomic else nullcontext():
            for n, statements in enumerate(_SCRIPT if script is None else script):
                tx = led.begin()
                try:
                    for text in statements:
                        tx.execute(text)
                    tx.commit()
                except StatementError as exc:
                    refused.append(f"{n}: {exc.reason}")
                finally:
                    if not tx.closed:
                        tx.abort()
        blocks = [(b.sequence_no, b.block_hash, b.statements) for b in led.blocks()]
        documents = [(t, i, ion_hash(d)) for t, i, d in led.documents()]
        return blocks, documents, refused


class _Clock:
    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> Any:
        from datetime import timedelta

        self.now += timedelta(milliseconds=3)
        return self.now


def test_ddl_inside_one_atomic_unit_gives_the_journal_of_separate_transactions(
    tmp_path: Path,
) -> None:
    # One atomic() unit caches the committed tables, indexes and tip it reads: DDL committed
    # inside it must be seen exactly as separate SQLite transactions see it.
    separate = run_script(tmp_path / "separate.db", atomic=False)
    unit = run_script(tmp_path / "unit.db", atomic=True)
    assert unit == separate
    blocks, documents, refused = unit
    assert len(blocks) == 9 and len(documents) == 3
    assert [r.split(":")[0] for r in refused] == ["5", "10", "11"]


def _insert_block(path: Path, doc: Any, hashes: tuple[bytes | None, ...]) -> Any:
    from ledger import EmbeddedLedger

    with EmbeddedLedger(path, id_seed=7, clock=_Clock()) as led:
        led.execute("CREATE TABLE T")
        tx = led.begin()
        tx.execute("INSERT INTO T ?", doc, param_hashes=hashes)
        return tx.commit()


def test_a_carried_parameter_hash_gives_the_journal_of_hashing_it_again(tmp_path: Path) -> None:
    # Issue 14: revision replay passes the data hash verification proved; the replica's block
    # (revision hash, statement digest, block hash) is exactly the one it computes by itself.
    from journal.hashes import dot
    from ledger.blocks import ion_struct, ion_time

    doc = decode(encode(simpleion.loads('{VIN: "1", n: 2, d: 2020-01-01T, l: [1.5, x::"y"]}')))
    plain = _insert_block(tmp_path / "plain.db", doc, ())
    carried = _insert_block(tmp_path / "carried.db", doc, (ion_hash(doc),))
    assert carried.block_hash == plain.block_hash
    assert [r.hash for r in carried.revisions] == [r.hash for r in plain.revisions]
    [rev] = carried.revisions
    meta = ion_struct(
        id=rev.document_id, version=0, txTime=ion_time(rev.tx_time_ms), txId=rev.tx_id
    )
    assert rev.hash == dot(ion_hash(decode(rev.raw)), ion_hash(meta))  # from the stored Ion
    # The carried hash is used, not recomputed: that is why only a proved one may be passed
    # (the settler passes the hash whose dot with the metadata hash equals the source's).
    wrong = _insert_block(tmp_path / "wrong.db", doc, (b"\x01" * 32,))
    assert wrong.revisions[0].hash != rev.hash


def test_an_atomic_unit_stores_the_id_counter_it_used(tmp_path: Path) -> None:
    # Issue 14: the commits of one atomic() unit leave the id counter to one write at its end;
    # a ledger reopened with the same id seed must go on from there, not draw the ids again.
    from ledger import EmbeddedLedger

    path = tmp_path / "l.db"
    with EmbeddedLedger(path, id_seed=9) as led:
        led.execute("CREATE TABLE T")
        with led.atomic():
            for n in range(3):
                tx = led.begin()
                tx.execute("INSERT INTO T ?", {"n": n})
                tx.commit()
        first = {i for _, i, _ in led.documents()}
    with EmbeddedLedger(path, id_seed=9) as led:
        tx = led.begin()  # no retry: an id drawn again would be an OccConflict here
        tx.execute("INSERT INTO T ?", {"n": 3})
        tx.commit()
        ids = {i for _, i, _ in led.documents()}
        assert len(ids) == 4 and first < ids
        assert [b.sequence_no for b in led.blocks()] == list(range(5))


def test_an_update_of_many_documents_gives_each_the_hash_of_its_own_data(tmp_path: Path) -> None:
    """The cache of hashes already computed is by identity: an UPDATE builds each document's new
    value in turn and, once staged, drops it, so CPython hands the next value the freed one's
    address; a map by bare ``id()`` then gave a document another's data hash (the settler saw
    'the replayed statements did not reproduce it', now and then, in groups)."""
    from ledger import EmbeddedLedger

    with EmbeddedLedger(tmp_path / "l.db", id_seed=1) as led:
        led.execute("CREATE TABLE Person")
        tx = led.begin()
        for n in range(40):  # QLDB writes at most 40 documents per transaction
            tx.execute(
                "INSERT INTO Person ?",
                {"FirstName": "Kofi", "LastName": "Logan", "GovId": f"G{n:03}", "Balance": n},
            )
        tx.commit()
        wrong = []
        for tier in range(30):  # the address is reused often, not always: many updates
            tx = led.begin()
            tx.execute(f"UPDATE Person AS p SET p.Tier = {tier} WHERE p.LastName = 'Logan'")
            hashes = {doc: h for _, doc, h in tx.written_hashes()}
            assert len(hashes) == 40
            wrong += [doc for _, doc, value in tx.written() if ion_hash(value) != hashes[doc]]
            tx.commit()
    assert wrong == []
