"""PostgresDestination against a real PostgreSQL server (tests/postgres/pg_server.py): the schema
users query, what is kept exactly, DDL, the append-only history, the chain check, and a server
killed under the destination. The port's contract is tests/contract/test_destination_contract.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from amazon.ion import simpleion

from destination.port import BlockReplay, Checkpoint, RevisionOp, StatementOp
from destination.postgres import PostgresDestination
from journal.canonical import fingerprint
from journal.errors import ReplayError
from journal.records import BlockAddress
from runtime.errors import ConfigError, TransientError

from .pg_server import fresh_schema, shared_server

LEDGER = "us-east-1:111122223333:source"
STRAND = "SrcStrand0000000000000"
TABLE_ID = "SrcTablePerson00000000"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dest() -> Iterator[PostgresDestination]:
    d = PostgresDestination(shared_server().url("pgtests"), schema=fresh_schema("unit"))
    try:
        yield d
    finally:
        d.close()


def sql(d: PostgresDestination, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(d.url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{d.schema}"')
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def block(seq: int, ops: list[StatementOp | RevisionOp], mode: str = "revisions") -> BlockReplay:
    return BlockReplay(
        block_id=f"{LEDGER}/{STRAND}/{seq}",
        ledger=LEDGER,
        address=BlockAddress(STRAND, seq),
        block_hash=bytes([seq % 256]) * 32,
        mode=mode,  # type: ignore[arg-type]
        ops=tuple(ops),
        table_names=((TABLE_ID, "Person"),),
        transaction_id=f"txn{seq}",
    )


def rev(doc: str, version: int, data: str | None, table: str = "Person") -> RevisionOp:
    return RevisionOp(
        table_name=table,
        table_id=TABLE_ID,
        document_id=doc,
        version=version,
        data=None if data is None else simpleion.loads(data),
    )


def apply_all(d: PostgresDestination, blocks: list[BlockReplay]) -> Checkpoint:
    cp = d.checkpoint(LEDGER, STRAND)
    for b in blocks:
        d.apply([b], cp)
        cp = b.checkpoint()
    assert cp is not None
    return cp


def test_documents_keep_their_exact_ion_and_a_json_copy(dest: PostgresDestination) -> None:
    text = (
        "{Name: 'Raúl', Balance: 12.50, Big: 123456789012345678901234567890.000001, "
        "DOB: 1963-08-19T, At: 2021-09-16T10:00:00.123+02:00, Photo: {{aGVsbG8=}}, "
        "Tags: [a, 'b'], N: null.int, F: 1.5e0}"
    )
    apply_all(dest, [block(0, [StatementOp(text="CREATE TABLE Person", index=0)]),
                     block(1, [rev("DocA", 0, text)])])  # fmt: skip
    rows = sql(dest, 'SELECT id, version, data, ion, block_sequence, txn_id FROM "Person"')
    assert len(rows) == 1
    doc_id, version, data, ion, seq, txn = rows[0]
    assert (doc_id, version, seq, txn) == ("DocA", 0, 1, "txn1")
    # ion is exact: decimal scale, timestamp precision and offset, types
    assert fingerprint(simpleion.loads(bytes(ion))) == fingerprint(simpleion.loads(text))
    # data follows the JSON down-conversion: decimals exact numbers, timestamps as Ion text
    assert data["Balance"] == Decimal("12.50") or str(data["Balance"]) == "12.5"
    assert sql(dest, """SELECT data->>'Balance', data->>'Big' FROM "Person\"""") == [
        ("12.50", "123456789012345678901234567890.000001")
    ]
    assert data["DOB"] == "1963-08-19T"
    assert data["At"] == "2021-09-16T10:00:00.123+02:00"
    assert data["Photo"] == "aGVsbG8="
    assert data["Tags"] == ["a", "b"] and data["N"] is None
    assert [(t, i) for t, i, _ in dest.documents()] == [("Person", "DocA")]


def test_history_keeps_every_revision_and_refuses_changes(dest: PostgresDestination) -> None:
    apply_all(dest, [block(0, [rev("DocA", 0, "{n: 1}")]), block(1, [rev("DocA", 1, "{n: 2}")]),
                     block(2, [rev("DocA", 2, None)])])  # fmt: skip
    assert sql(dest, 'SELECT count(*) FROM "Person"') == [(0,)]
    history = sql(
        dest,
        "SELECT version, data, deleted, block_sequence FROM qldb_history ORDER BY version",
    )
    assert history == [(0, {"n": 1}, False, 0), (1, {"n": 2}, False, 1), (2, None, True, 2)]
    for statement in ("UPDATE qldb_history SET version = 9", "DELETE FROM qldb_history",
                      "TRUNCATE qldb_history", "DELETE FROM qldb_blocks"):  # fmt: skip
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            sql(dest, statement)
    assert len(sql(dest, "SELECT * FROM qldb_blocks")) == 3


def test_ddl_indexes_drop_and_undrop(dest: PostgresDestination) -> None:
    create = block(0, [StatementOp(text="CREATE TABLE Person", index=0),
                       StatementOp(text="CREATE INDEX ON Person (GovId)", index=1),
                       StatementOp(text="CREATE INDEX ON Person (Address.City)", index=2)],
                   mode="statements")  # fmt: skip
    cp = apply_all(
        dest, [create, block(1, [rev("DocA", 0, "{GovId: 'G1', Address: {City: 'X'}}")])]
    )
    defs = [r[0] for r in sql(dest, "SELECT indexdef FROM pg_indexes WHERE tablename = 'Person'")]
    assert any("#>> '{GovId}'" in d for d in defs), defs
    assert any("#>> '{Address,City}'" in d for d in defs), defs
    plan = sql(dest, """EXPLAIN SELECT id FROM "Person" WHERE data #>> '{GovId}' = 'G1'""")
    assert plan  # the expression the index covers is the one users query
    dropped = block(2, [StatementOp(text="DROP TABLE Person", index=0)], mode="statements")
    dest.apply([dropped], cp)
    assert sql(dest, "SELECT active FROM qldb_tables WHERE name = 'Person'") == [(False,)]
    assert sql(dest, 'SELECT count(*) FROM "Person"') == [(1,)]  # rows kept, as QLDB keeps them
    assert list(dest.documents()) == []  # a dropped table is not part of the current state
    with pytest.raises(ReplayError, match="Person is dropped"):
        dest.apply(
            [
                block(
                    3,
                    [StatementOp(text="INSERT INTO Person VALUE {'a': 1}", index=0)],
                    "statements",
                )
            ],
            dropped.checkpoint(),
        )
    undrop = block(3, [StatementOp(text=f'UNDROP TABLE "{TABLE_ID}"', index=0)], "statements")
    dest.apply([undrop], dropped.checkpoint())
    assert [(t, i) for t, i, _ in dest.documents()] == [("Person", "DocA")]


def test_table_names_are_quoted_never_interpolated(dest: PostgresDestination) -> None:
    name = 'Odd "name"; DROP TABLE x --'
    apply_all(dest, [block(0, [rev("DocA", 0, "{a: 1}", table=name)])])
    assert [(t, i) for t, i, _ in dest.documents()] == [(name, "DocA")]
    with pytest.raises(ReplayError, match="replica's own tables"):
        dest.apply([block(1, [rev("DocB", 0, "{a: 1}", table="qldb_history")])],
                   dest.checkpoint(LEDGER, STRAND))  # fmt: skip


def test_a_killed_server_loses_nothing_and_applies_nothing_twice(dest: PostgresDestination) -> None:
    """The server is killed (SIGKILL) and restarted under a live destination: the apply in
    flight fails as transient, and the cycle run again from the checkpoint applies each block
    once."""
    server = shared_server()
    cp = apply_all(dest, [block(0, [rev("DocA", 0, "{n: 0}")])])
    server.kill()
    group = [block(1, [rev("DocA", 1, "{n: 1}")]), block(2, [rev("DocB", 0, "{n: 1}")])]
    with pytest.raises(TransientError):
        dest.apply(group, cp)
    server.restart()
    assert dest.checkpoint(LEDGER, STRAND) == cp  # nothing of the group committed
    dest.apply(group, cp)
    assert dest.checkpoint(LEDGER, STRAND) == group[-1].checkpoint()
    assert sql(dest, "SELECT document_id, version FROM qldb_history ORDER BY 1, 2") == [
        ("DocA", 0), ("DocA", 1), ("DocB", 0)
    ]  # fmt: skip


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qldb_settle.cli", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


def test_demo_into_postgresql_verifies_and_its_chain_checks(tmp_path: Path) -> None:
    """The whole pipeline into PostgreSQL through the CLI, then ``verify --chain`` on what it
    stored, then the same check after a superuser tampers with one stored revision."""
    server = shared_server()
    schema = fresh_schema("demo")
    url = server.url("pgdemo")
    demo = _cli("demo", "--workdir", str(tmp_path / "demo"), "--transactions", "150",
                "--destination", url, "--pg-schema", schema, "--json")  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-2000:]
    report = json.loads(demo.stdout)
    assert report["verified"] is True and report["blocks_replayed"] > 0
    chain = _cli("verify", "--chain", "--destination", url, "--pg-schema", schema, "--json")
    assert chain.returncode == 0, chain.stdout + chain.stderr
    verdict = json.loads(chain.stdout)
    assert verdict["equal"] is True and verdict["breaks"] == 0
    assert verdict["blocks"] == report["blocks_replayed"]
    assert verdict["revisions_hashed"] > 0

    with psycopg.connect(url, autocommit=True) as conn:  # the superuser gets around the trigger
        conn.execute(f'ALTER TABLE "{schema}".qldb_history DISABLE TRIGGER USER')
        conn.execute(
            f'UPDATE "{schema}".qldb_history SET ion = %s WHERE ctid = '
            f'(SELECT ctid FROM "{schema}".qldb_history WHERE ion IS NOT NULL LIMIT 1)',
            (simpleion.dumps(simpleion.loads("{tampered: true}"), binary=True),),
        )
    broken = _cli("verify", "--chain", "--destination", url, "--pg-schema", schema)
    assert broken.returncode == 1
    assert "CHAIN BROKEN" in broken.stdout and "do not hash to its hash" in broken.stdout


def test_in_aws_the_password_comes_from_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """``QLDB_SETTLE_PG_SECRET_ARN`` (set by the CDK app): the password is read from RDS's secret
    JSON and used to connect. No Secrets Manager exists here: moto stands in for it."""
    moto = pytest.importorskip("moto")
    import boto3

    from compose.roots import open_destination
    from compose.settings import Settings

    server = shared_server()
    hba = server.data_dir / "pg_hba.conf"
    rules = hba.read_text()
    if "secret_user" not in rules:  # this role must give its password (the others are trusted)
        hba.write_text("host all secret_user 127.0.0.1/32 scram-sha-256\n" + rules)
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS secret_user")
        conn.execute("CREATE ROLE secret_user LOGIN PASSWORD 's3cret' SUPERUSER")
        conn.execute("SELECT pg_reload_conf()")
    url = server.url("pgtests").replace("postgres@", "secret_user@")
    with pytest.raises(ConfigError, match="password"):  # exit 2, not "run it again"
        PostgresDestination(url, schema="secretcase").checkpoint(LEDGER, STRAND)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with moto.mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name="replica",
            SecretString=json.dumps({"username": "secret_user", "password": "s3cret"}),
        )["ARN"]
        dest = open_destination(
            Settings(destination=url, pg_schema="secretcase", pg_secret_arn=arn)
        )
    try:
        assert dest.checkpoint(LEDGER, STRAND) is None  # connected with the secret's password
    finally:
        dest.close()


def test_a_transaction_waiting_past_the_invocations_deadline_is_cancelled_and_rolled_back(
    dest: PostgresDestination,
) -> None:
    """``runtime.deadline``: the apply's statements carry ``statement_timeout`` = what is left;
    held up by another session's lock on the strand, the apply is cancelled at the deadline
    (``DeadlineReached``), nothing of it stays, and the same apply succeeds afterwards."""
    from runtime import deadline

    b0 = block(0, [StatementOp(text="CREATE TABLE Person", index=0)], mode="statements")
    with psycopg.connect(dest.url) as other:
        other.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{LEDGER}/{STRAND}",))
        with deadline.until(0.5), pytest.raises(deadline.DeadlineReached, match="deadline"):
            dest.apply([b0], None)
        other.rollback()  # the lock goes with the other session's transaction
    assert dest.checkpoint(LEDGER, STRAND) is None
    with deadline.until(30.0):
        dest.apply([b0], None)
    assert dest.checkpoint(LEDGER, STRAND) == b0.checkpoint()
    with deadline.until(0.0), pytest.raises(deadline.DeadlineReached):
        dest.checkpoint(LEDGER, STRAND)
