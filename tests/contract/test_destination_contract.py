"""The ``Destination`` contract (destination/port.py), checked against every adapter in
``DESTINATIONS``.

Each entry is ``(name, factory)``; ``factory(tmp_path)`` returns a ``Target``: the destination
under test, a way to read what it holds (``contents()``: data by (table, source document id),
internal tables excluded; a document replayed without a known source id is keyed by its own id)
and ``table_size(table)`` (how many current documents a table has). Extend ``DESTINATIONS`` with a
factory for another adapter (the QLDB-through-pyqldb one builds its ``Target`` over a local
session server).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from amazon.ion import simpleion

from destination.port import BlockReplay, Checkpoint, Destination, RevisionOp, StatementOp
from journal.canonical import fingerprint
from journal.errors import ReplayError
from journal.records import BlockAddress
from runtime.errors import CheckpointMismatch

LEDGER = "us-east-1:111122223333:source"
STRAND = "SrcStrand0000000000000"
TABLE_ID = "SrcTablePerson00000000"


@dataclass(frozen=True, slots=True)
class Target:
    destination: Destination
    contents: Callable[[], dict[tuple[str, str], Any]]
    table_size: Callable[[str], int]


def _embedded(tmp_path: Path) -> Target:
    from destination.embedded import EmbeddedDestination

    dest = EmbeddedDestination(tmp_path / "replica.db", id_seed=3)

    def contents() -> dict[tuple[str, str], Any]:
        sources = dest.source_ids()
        return {(t, sources.get(i, i)): data for t, i, data in dest.documents()}

    def table_size(table: str) -> int:
        return sum(1 for t, _, _ in dest.documents() if t == table)

    return Target(dest, contents, table_size)


def _qldb(tmp_path: Path) -> Target:
    """QldbDestination through pyqldb, against ``serve-qldb`` started as a real subprocess (one
    per test process, a fresh ledger per test; tests/qldb/qldb_server.py)."""
    from qldb.qldb_server import fresh_ledger_name, shared_served

    from destination.qldb import QldbDestination

    dest = QldbDestination(fresh_ledger_name("contract"), endpoint=shared_served().url)

    def contents() -> dict[tuple[str, str], Any]:
        return {(c.table, c.source_id or c.id): c.data for c in dest.copies()}

    def table_size(table: str) -> int:
        return sum(1 for t, _, _ in dest.documents() if t == table)

    return Target(dest, contents, table_size)


def _postgres(tmp_path: Path) -> Target:
    """PostgresDestination against a real PostgreSQL server started for the test process
    (tests/postgres/pg_server.py), in a schema of its own per test."""
    from postgres.pg_server import fresh_schema, shared_server

    from destination.postgres import PostgresDestination

    dest = PostgresDestination(shared_server().url("contract"), schema=fresh_schema("contract"))

    def contents() -> dict[tuple[str, str], Any]:
        return {(t, i): data for t, i, data in dest.documents()}

    def table_size(table: str) -> int:
        return sum(1 for t, _, _ in dest.documents() if t == table)

    return Target(dest, contents, table_size)


DESTINATIONS: list[tuple[str, Callable[[Path], Target]]] = [
    ("embedded", _embedded),
    ("qldb", _qldb),
    ("postgres", _postgres),
]


# The destinations that run a statements block's PartiQL and match its revisions to what the
# statements wrote (destination/statement_replay.py); PostgreSQL replays the revisions instead.
RUNS_STATEMENTS = ("embedded", "qldb")


def _target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    factory: Callable[[Path], Target] = request.param
    t = factory(tmp_path)
    try:
        yield t
    finally:
        t.destination.close()


@pytest.fixture(params=[pytest.param(f, id=n) for n, f in DESTINATIONS])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from _target(request, tmp_path)


@pytest.fixture(params=[pytest.param(f, id=n) for n, f in DESTINATIONS if n in RUNS_STATEMENTS])
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from _target(request, tmp_path)


def _hash(seq: int) -> bytes:
    return hashlib.sha256(f"block {seq}".encode()).digest()


def block(
    seq: int,
    mode: Literal["statements", "revisions"],
    ops: Sequence[StatementOp | RevisionOp],
    *,
    revisions: Sequence[RevisionOp] = (),
    part: int | None = None,
    parts: int | None = None,
    strand: str = STRAND,
) -> BlockReplay:
    return BlockReplay(
        block_id=f"{LEDGER}/{strand}/{seq}",
        ledger=LEDGER,
        address=BlockAddress(strand, seq),
        block_hash=_hash(seq),
        mode=mode,
        ops=tuple(ops),
        part=part,
        parts=parts,
        table_names=((TABLE_ID, "Person"),),
        revisions=tuple(revisions),
    )


def rev(doc: str, version: int, data: str | None, table: str = "Person") -> RevisionOp:
    return RevisionOp(
        table_name=table,
        table_id=TABLE_ID,
        document_id=doc,
        version=version,
        data=None if data is None else simpleion.loads(data),
    )


def stmt(text: str, index: int = 0) -> StatementOp:
    return StatementOp(text=text, index=index)


def ion(text: str) -> Any:
    return simpleion.loads(text)


def prints(contents: dict[tuple[str, str], Any]) -> dict[tuple[str, str], str]:
    """Contents compared by canonical fingerprint (types, decimal scale, timestamp precision)."""
    return {k: fingerprint(v) for k, v in contents.items()}


DOC_A = "SourceDocA000000000000"
DOC_B = "SourceDocB000000000000"
GENESIS = [stmt("CREATE TABLE Person")]


def _start(d: Destination) -> Checkpoint:
    b0 = block(0, "statements", GENESIS)
    d.apply([b0], None)
    return b0.checkpoint()


def test_checkpoint_is_none_at_first(target: Target) -> None:
    assert target.destination.checkpoint(LEDGER, STRAND) is None
    assert target.destination.checkpoint("other:ledger", "OtherStrand") is None


def test_apply_moves_the_checkpoint(target: Target) -> None:
    d = target.destination
    cp = _start(d)
    assert d.checkpoint(LEDGER, STRAND) == cp
    assert cp.sequence_no == 0 and cp.part is None and cp.block_hash == _hash(0)
    b1 = block(1, "revisions", [rev(DOC_A, 0, '{Name: "a"}')])
    b2 = block(2, "revisions", [rev(DOC_B, 0, '{Name: "b"}')])
    report = d.apply([b1, b2], cp)  # several blocks in one transaction
    assert d.checkpoint(LEDGER, STRAND) == b2.checkpoint()
    assert report.revisions == 2 and report.documents_written == 2
    assert d.checkpoint(LEDGER, "AnotherStrand000000000") is None


def test_compare_and_set_mismatch_applies_nothing(target: Target) -> None:
    d = target.destination
    cp = _start(d)
    b1 = block(1, "revisions", [rev(DOC_A, 0, '{Name: "a"}')])
    with pytest.raises(CheckpointMismatch):
        d.apply([b1], None)  # stale: the checkpoint moved past None
    assert target.contents() == {} and d.checkpoint(LEDGER, STRAND) == cp
    d.apply([b1], cp)
    with pytest.raises(CheckpointMismatch):
        d.apply([b1], cp)  # a retried commit whose answer was lost: not applied twice
    assert prints(target.contents()) == prints({("Person", DOC_A): ion('{Name: "a"}')})
    assert d.checkpoint(LEDGER, STRAND) == b1.checkpoint()


def test_statement_replay_maps_the_written_documents(target: Target) -> None:
    d = target.destination
    data = '{Name: "Raul", Balance: 12.50, DOB: 1963-08-19T}'
    b0 = block(
        0,
        "statements",
        [
            stmt("CREATE TABLE Person"),
            stmt("SELECT * FROM Person", 1),
            stmt(
                "INSERT INTO Person VALUE {'Name': 'Raul', 'Balance': 12.50, 'DOB': `1963-08-19T`}",
                2,
            ),
        ],
        revisions=[rev(DOC_A, 0, data)],
    )
    report = d.apply([b0], None)
    assert report.statements == 3
    assert prints(target.contents()) == prints({("Person", DOC_A): ion(data)})
    stored = target.contents()[("Person", DOC_A)]
    assert str(stored["Balance"]) == "12.50"  # a decimal stays a decimal, with its scale
    # a later block replayed from revisions finds the copy the statements wrote
    b1 = block(1, "revisions", [rev(DOC_A, 1, '{Name: "Raul", Balance: 1.00}')])
    d.apply([b1], b0.checkpoint())
    assert prints(target.contents()) == prints(
        {("Person", DOC_A): ion('{Name: "Raul", Balance: 1.00}')}
    )
    assert target.table_size("Person") == 1


def test_statement_replay_of_updates_keeps_the_map(target: Target) -> None:
    d = target.destination
    b0 = block(
        0,
        "statements",
        [stmt("CREATE TABLE Person"), stmt("INSERT INTO Person VALUE {'Name': 'a', 'n': 1}", 1)],
        revisions=[rev(DOC_A, 0, '{Name: "a", n: 1}')],
    )
    d.apply([b0], None)
    b1 = block(
        1,
        "statements",
        [stmt("UPDATE Person AS p SET p.n = p.n + 1 WHERE p.Name = 'a'")],
        revisions=[rev(DOC_A, 1, '{Name: "a", n: 2}')],
    )
    d.apply([b1], b0.checkpoint())
    b2 = block(2, "revisions", [rev(DOC_A, 2, '{Name: "a", n: 3, extra: [1]}')])
    d.apply([b2], b1.checkpoint())
    assert prints(target.contents()) == prints(
        {("Person", DOC_A): ion('{Name: "a", n: 3, extra: [1]}')}
    )
    assert target.table_size("Person") == 1


def test_statements_that_do_not_reproduce_the_revisions_apply_nothing(runner: Target) -> None:
    d = runner.destination
    b0 = block(
        0,
        "statements",
        [stmt("CREATE TABLE Person"), stmt("INSERT INTO Person VALUE {'Name': 'a', 'n': 1}", 1)],
        revisions=[rev(DOC_A, 0, '{Name: "a", n: 1}')],
    )
    d.apply([b0], None)
    cp, before = b0.checkpoint(), prints(runner.contents())
    update_a = [stmt("UPDATE Person AS p SET p.n = 5 WHERE p.Name = 'a'")]
    refused = [
        # a new document, written other than the revision says
        block(
            1,
            "statements",
            [stmt("INSERT INTO Person VALUE {'Name': 'b', 'n': 2}")],
            revisions=[rev(DOC_B, 0, '{Name: "b", n: 3}')],
        ),
        # the copy of a known document, updated other than the revision says
        block(1, "statements", update_a, revisions=[rev(DOC_A, 1, '{Name: "a", n: 6}')]),
        # a deletion the statements did not make (they updated the copy)
        block(1, "statements", update_a, revisions=[rev(DOC_A, 1, None)]),
    ]
    for bad in refused:
        with pytest.raises(ReplayError, match=r"revision SourceDoc[AB]0+ v\d") as info:
            d.apply([bad], cp)
        assert info.value.block == bad.block_id
        assert prints(runner.contents()) == before and d.checkpoint(LEDGER, STRAND) == cp
    gone = block(
        1,
        "statements",
        [stmt("DELETE FROM Person AS p WHERE p.Name = 'a'")],
        revisions=[rev(DOC_A, 1, None)],
    )
    d.apply([gone], cp)  # a deletion the statements made: applied, the copy forgotten
    assert runner.contents() == {}
    again = block(2, "revisions", [rev(DOC_A, 2, '{Name: "a", n: 9}')])
    d.apply([again], gone.checkpoint())
    assert prints(runner.contents()) == prints({("Person", DOC_A): ion('{Name: "a", n: 9}')})


def test_revision_replay_insert_replace_and_delete(target: Target) -> None:
    d = target.destination
    cp = _start(d)
    steps = [
        rev(DOC_A, 0, "{a: 1, b: {c: [1, 2]}, t: 2021-09-16T10:00:00.000Z}"),
        rev(DOC_A, 1, '{a: 2, b: {c: [1]}, new: "x"}'),  # replaced, field t removed
        rev(DOC_B, 0, '{z: null, s: "it\'s"}'),
    ]
    seq = 1
    for op in steps:
        b = block(seq, "revisions", [op])
        d.apply([b], cp)
        cp = b.checkpoint()
        seq += 1
    expected = {
        ("Person", DOC_A): ion('{a: 2, b: {c: [1]}, new: "x"}'),
        ("Person", DOC_B): ion('{z: null, s: "it\'s"}'),
    }
    assert prints(target.contents()) == prints(expected)
    assert target.table_size("Person") == 2  # the later revision replaced the same copy
    b = block(seq, "revisions", [rev(DOC_A, 2, None)])
    report = d.apply([b], cp)
    assert report.documents_written == 1
    assert prints(target.contents()) == prints({("Person", DOC_B): ion('{z: null, s: "it\'s"}')})
    # deleting a document the replica never had changes nothing
    b2 = block(seq + 1, "revisions", [rev("NeverSeen000000000000", 4, None)])
    assert d.apply([b2], b.checkpoint()).documents_written == 0


def test_revisions_of_an_unknown_table_create_it(target: Target) -> None:
    d = target.destination
    b = block(0, "revisions", [rev(DOC_A, 0, "{x: 1}", table="Vehicle")])
    d.apply([b], None)
    assert prints(target.contents()) == prints({("Vehicle", DOC_A): ion("{x: 1}")})


def test_a_failing_operation_applies_nothing(target: Target) -> None:
    d = target.destination
    cp = _start(d)
    good = block(1, "revisions", [rev(DOC_A, 0, "{a: 1}")])
    bad = block(
        2,
        "statements",
        [stmt("INSERT INTO Person VALUE {'b': 2}"), stmt("UPDATE NoSuchTable SET a = 1", 1)],
    )
    with pytest.raises(ReplayError) as info:
        d.apply([good, bad], cp)
    assert info.value.block == bad.block_id
    assert target.contents() == {} and d.checkpoint(LEDGER, STRAND) == cp
    with pytest.raises(ReplayError):
        d.apply([block(1, "statements", [stmt("THIS IS NOT PARTIQL")])], cp)
    assert target.contents() == {} and d.checkpoint(LEDGER, STRAND) == cp
    d.apply([good], cp)  # the destination is still usable
    assert prints(target.contents()) == prints({("Person", DOC_A): ion("{a: 1}")})


def test_part_checkpoints(target: Target) -> None:
    d = target.destination
    cp = _start(d)
    part0 = block(1, "revisions", [rev(DOC_A, 0, "{a: 1}")], part=0, parts=2)
    part1 = block(1, "revisions", [rev(DOC_B, 0, "{b: 1}")], part=1, parts=2)
    d.apply([part0], cp)
    mid = d.checkpoint(LEDGER, STRAND)
    assert mid == part0.checkpoint() and mid is not None and mid.part == 0
    assert mid.sequence_no == 1
    with pytest.raises(CheckpointMismatch):
        d.apply([part1], cp)  # part 1 must follow part 0
    d.apply([part1], mid)
    done = d.checkpoint(LEDGER, STRAND)
    assert done == part1.checkpoint() and done is not None and done.part is None
    assert set(target.contents()) == {("Person", DOC_A), ("Person", DOC_B)}
