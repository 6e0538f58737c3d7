"""``serve-qldb``: the QLDB Session API over an embedded ledger, exercised the way QLDB is, with
pyqldb and with plain botocore, against the real subprocess (``conftest.served``)."""

from __future__ import annotations

import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion
from botocore.exceptions import ClientError

from .conftest import REPO_ROOT, Served, make_client, make_driver


def quick_start(qldb_driver: Any) -> None:
    """The program of the QLDB developer guide's "Amazon QLDB driver for Python – Quick start
    tutorial" (steps 3 to 6), unchanged: only the driver it is given points at serve-qldb."""

    def create_table(transaction_executor: Any) -> None:
        print("Creating a table")
        transaction_executor.execute_statement("CREATE TABLE People")

    def create_index(transaction_executor: Any) -> None:
        print("Creating an index")
        transaction_executor.execute_statement("CREATE INDEX ON People(lastName)")

    # Create a table
    qldb_driver.execute_lambda(lambda executor: create_table(executor))  # noqa: PLW0108

    # Create an index on the table
    qldb_driver.execute_lambda(lambda executor: create_index(executor))  # noqa: PLW0108

    def insert_documents(transaction_executor: Any, arg_1: Any) -> None:
        print("Inserting a document")
        transaction_executor.execute_statement("INSERT INTO People ?", arg_1)

    # Insert a document
    doc_1 = {
        "firstName": "John",
        "lastName": "Doe",
        "age": 32,
    }

    qldb_driver.execute_lambda(lambda x: insert_documents(x, doc_1))

    def read_documents(transaction_executor: Any) -> None:
        print("Querying the table")
        cursor = transaction_executor.execute_statement(
            "SELECT * FROM People WHERE lastName = ?", "Doe"
        )

        for doc in cursor:
            print(doc["firstName"])
            print(doc["lastName"])
            print(doc["age"])

    # Query the table
    qldb_driver.execute_lambda(lambda executor: read_documents(executor))  # noqa: PLW0108

    def update_documents(transaction_executor: Any, age: Any, lastName: Any) -> None:
        print("Updating the document")
        transaction_executor.execute_statement(
            "UPDATE People SET age = ? WHERE lastName = ?", age, lastName
        )

    # Update the document
    age = 42
    lastName = "Doe"

    qldb_driver.execute_lambda(lambda x: update_documents(x, age, lastName))

    # Query the updated document
    qldb_driver.execute_lambda(lambda executor: read_documents(executor))  # noqa: PLW0108


def test_the_getting_started_program_runs_unchanged(
    served: Served, ledger_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    driver = make_driver(served.url, ledger_name)
    try:
        quick_start(driver)
        tables = list(driver.list_tables())
    finally:
        driver.close()
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Creating a table",
        "Creating an index",
        "Inserting a document",
        "Querying the table",
        "John",
        "Doe",
        "32",
        "Updating the document",
        "Querying the table",
        "John",
        "Doe",
        "42",
    ]
    assert tables == ["People"]
    # The ledger file holds what the program did, as journal blocks (one per transaction).
    from ledger import EmbeddedLedger

    with EmbeddedLedger(served.ledger_file(ledger_name), ledger_name=ledger_name) as led:
        docs = [(t, d) for t, _, d in led.documents()]
        statements = [b.statements for b in led.blocks()]
    assert docs == [("People", {"firstName": "John", "lastName": "Doe", "age": 42})]
    assert ["INSERT INTO People ?"] in statements
    assert ["UPDATE People SET age = ? WHERE lastName = ?"] in statements


def _session(client: Any, ledger: str) -> str:
    token: str = client.send_command(StartSession={"LedgerName": ledger})["StartSession"][
        "SessionToken"
    ]
    return token


def _digest(tx_id: str, *statements: tuple[str, tuple[Any, ...]]) -> bytes:
    """The commit digest as pyqldb computes it (its own code, not the server's)."""
    from pyqldb.util.qldb_hash import QldbHash

    h = QldbHash.to_qldb_hash(tx_id)
    for text, params in statements:
        s = QldbHash.to_qldb_hash(text)
        for p in params:
            s = s.dot(QldbHash.to_qldb_hash(simpleion.loads(simpleion.dumps(p))))
        h = h.dot(s)
    digest: bytes = h.get_qldb_hash()
    return digest


def _ion(value: Any) -> dict[str, bytes]:
    return {"IonBinary": simpleion.dumps(value, binary=True)}


def test_a_wrong_commit_digest_is_refused_as_qldb_refuses_it(
    served: Served, ledger_name: str
) -> None:
    client = make_client(served.url)
    token = _session(client, ledger_name)
    tx = client.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]
    tx_id = tx["TransactionId"]
    assert len(tx_id) == 22 and tx_id.isalnum()
    client.send_command(
        SessionToken=token,
        ExecuteStatement={"TransactionId": tx_id, "Statement": "CREATE TABLE Wrong"},
    )
    right = _digest(tx_id, ("CREATE TABLE Wrong", ()))
    wrong = bytes([right[0] ^ 1]) + right[1:]
    with pytest.raises(ClientError) as refused:
        client.send_command(
            SessionToken=token,
            CommitTransaction={"TransactionId": tx_id, "CommitDigest": wrong},
        )
    error = refused.value.response["Error"]
    assert error["Code"] == "BadRequestException"
    assert error["Message"] == "Digests don't match"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Nothing was committed, and the transaction is gone (the session is not).
    with pytest.raises(ClientError) as gone:
        client.send_command(
            SessionToken=token,
            CommitTransaction={"TransactionId": tx_id, "CommitDigest": right},
        )
    assert gone.value.response["Error"]["Code"] == "BadRequestException"
    tx2 = client.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]
    rows = client.send_command(
        SessionToken=token,
        ExecuteStatement={
            "TransactionId": tx2["TransactionId"],
            "Statement": "SELECT VALUE name FROM information_schema.user_tables",
        },
    )["ExecuteStatement"]["FirstPage"]["Values"]
    assert rows == []


def test_a_right_digest_commits_and_comes_back(served: Served, ledger_name: str) -> None:
    client = make_client(served.url)
    token = _session(client, ledger_name)
    tx_id = client.send_command(SessionToken=token, StartTransaction={})["StartTransaction"][
        "TransactionId"
    ]
    doc = {"n": Decimal("1.50"), "tags": ["a", "b"]}
    steps: list[tuple[str, tuple[Any, ...]]] = [
        ("CREATE TABLE Right", ()),
        ("INSERT INTO Right ?", (doc,)),
    ]
    for text, params in steps:
        result = client.send_command(
            SessionToken=token,
            ExecuteStatement={
                "TransactionId": tx_id,
                "Statement": text,
                "Parameters": [_ion(p) for p in params],
            },
        )["ExecuteStatement"]
        assert "ProcessingTimeMilliseconds" in result["TimingInformation"]
        assert set(result["ConsumedIOs"]) == {"ReadIOs", "WriteIOs"}
    digest = _digest(tx_id, *steps)
    done = client.send_command(
        SessionToken=token, CommitTransaction={"TransactionId": tx_id, "CommitDigest": digest}
    )["CommitTransaction"]
    assert done["TransactionId"] == tx_id
    assert done["CommitDigest"] == digest
    assert done["ConsumedIOs"]["WriteIOs"] == 1
    client.send_command(SessionToken=token, EndSession={})
    with pytest.raises(ClientError) as ended:
        client.send_command(SessionToken=token, StartTransaction={})
    assert ended.value.response["Error"]["Code"] == "InvalidSessionException"


def test_an_unknown_session_is_an_invalid_session(served: Served) -> None:
    client = make_client(served.url)
    with pytest.raises(ClientError) as unknown:
        client.send_command(SessionToken="bm90LWEtc2Vzc2lvbg==", StartTransaction={})
    assert unknown.value.response["Error"]["Code"] == "InvalidSessionException"
    assert unknown.value.response["Error"]["Message"] == "No such session"


def test_results_are_ion_binary_pages_fetched_by_token(served: Served, ledger_name: str) -> None:
    driver = make_driver(served.url, ledger_name)
    try:
        driver.execute_lambda(lambda tx: tx.execute_statement("CREATE TABLE Many"))
        for start in range(0, 450, 40):  # QLDB: at most 40 documents per transaction
            batch = [{"i": i} for i in range(start, min(start + 40, 450))]
            # One parameter holding a list inserts one document per element, as on QLDB.
            driver.execute_lambda(
                lambda tx, batch=batch: tx.execute_statement("INSERT INTO Many ?", batch)
            )
        values = driver.execute_lambda(
            lambda tx: [v["i"] for v in tx.execute_statement("SELECT * FROM Many")]
        )
    finally:
        driver.close()
    assert sorted(values) == list(range(450))
    client = make_client(served.url)
    token = _session(client, ledger_name)
    tx_id = client.send_command(SessionToken=token, StartTransaction={})["StartTransaction"][
        "TransactionId"
    ]
    pages = _pages(client, token, tx_id, "SELECT VALUE m.i FROM Many AS m")
    assert [len(p["Values"]) for p in pages] == [200, 200, 50]
    got = [simpleion.loads(v["IonBinary"]) for p in pages for v in p["Values"]]
    assert sorted(got) == list(range(450))
    client.send_command(SessionToken=token, AbortTransaction={})


def test_an_occ_conflict_is_retried_by_the_driver(served: Served, ledger_name: str) -> None:
    first, second = make_driver(served.url, ledger_name), make_driver(served.url, ledger_name)
    try:
        first.execute_lambda(lambda tx: tx.execute_statement("CREATE TABLE Account"))
        first.execute_lambda(lambda tx: tx.execute_statement("CREATE INDEX ON Account (name)"))
        first.execute_lambda(
            lambda tx: tx.execute_statement("INSERT INTO Account ?", {"name": "a", "balance": 10})
        )
        attempts: list[int] = []

        def add_five(tx: Any) -> None:
            attempts.append(len(attempts) + 1)
            balance = next(iter(tx.execute_statement(
                "SELECT VALUE a.balance FROM Account AS a WHERE a.name = 'a'"
            )))  # fmt: skip
            if len(attempts) == 1:
                # Another writer commits a change to what this transaction read.
                second.execute_lambda(
                    lambda t: t.execute_statement(
                        "UPDATE Account AS a SET a.balance = 100 WHERE a.name = 'a'"
                    )
                )
            tx.execute_statement(
                "UPDATE Account AS a SET a.balance = ? WHERE a.name = 'a'", balance + 5
            )

        first.execute_lambda(add_five)
        final = first.execute_lambda(
            lambda tx: list(tx.execute_statement("SELECT VALUE a.balance FROM Account AS a"))
        )
    finally:
        first.close()
        second.close()
    assert attempts == [1, 2]  # the first commit met an OccConflictException, the retry won
    assert final == [105]


def test_a_statement_the_ledger_refuses_is_a_bad_request_and_nothing_commits(
    served: Served, ledger_name: str
) -> None:
    driver = make_driver(served.url, ledger_name)
    try:
        driver.execute_lambda(lambda tx: tx.execute_statement("CREATE TABLE T"))

        def half(tx: Any) -> None:
            tx.execute_statement("INSERT INTO T ?", {"x": 1})
            tx.execute_statement("INSERT INTO NoSuchTable ?", {"x": 2})

        with pytest.raises(ClientError) as refused:
            driver.execute_lambda(half)
        assert refused.value.response["Error"]["Code"] == "BadRequestException"
        assert "NoSuchTable" in refused.value.response["Error"]["Message"]

        def too_many(tx: Any) -> None:
            for i in range(41):
                tx.execute_statement("INSERT INTO T ?", {"i": i})

        with pytest.raises(ClientError) as limit:
            driver.execute_lambda(too_many)
        assert limit.value.response["Error"]["Code"] == "BadRequestException"
        assert "40" in limit.value.response["Error"]["Message"]
        rows = driver.execute_lambda(lambda tx: list(tx.execute_statement("SELECT * FROM T")))
    finally:
        driver.close()
    assert rows == []


def test_sessions_run_concurrently(served: Served, ledger_name: str) -> None:
    driver = make_driver(served.url, ledger_name)
    driver.execute_lambda(lambda tx: tx.execute_statement("CREATE TABLE C"))
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(5):
                driver.execute_lambda(
                    lambda tx, i=i: tx.execute_statement("INSERT INTO C ?", {"k": k, "i": i})
                )
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = driver.execute_lambda(lambda tx: list(tx.execute_statement("SELECT * FROM C")))
    driver.close()
    assert errors == []
    assert sorted((r["k"], r["i"]) for r in rows) == [(k, i) for k in range(4) for i in range(5)]


def test_a_single_ledger_file_answering_to_one_name(tmp_path: Path) -> None:
    from .conftest import start_serve_qldb, stop

    proc, url = start_serve_qldb(
        f"embedded:{tmp_path / 'one.db'}", "--ledger-name", "vehicle-registration"
    )
    try:
        client = make_client(url)
        _session(client, "vehicle-registration")
        with pytest.raises(ClientError) as other:
            _session(client, "another-ledger")
        assert other.value.response["Error"]["Code"] == "BadRequestException"
    finally:
        err = stop(proc)
    assert "stopped" in err
    assert (tmp_path / "one.db").exists()


def test_bad_usage_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qldb_settle.cli", "serve-qldb", "--ledger", "sqlite:x.db"],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "is not embedded:PATH" in result.stderr


def test_pages_also_end_at_a_megabyte(served: Served, ledger_name: str) -> None:
    """QLDB pages a result by size too: 30 documents of about 100 KB come in pages of under 1 MB
    (10 to a page: an 11th would pass 1 MB), and the driver fetches them all."""
    driver = make_driver(served.url, ledger_name)
    blob = "x" * 100_000
    try:
        driver.execute_lambda(lambda tx: tx.execute_statement("CREATE TABLE Big"))
        for start in (0, 15):
            batch = [{"i": i, "pad": blob} for i in range(start, start + 15)]
            driver.execute_lambda(
                lambda tx, batch=batch: tx.execute_statement("INSERT INTO Big ?", batch)
            )
        values = driver.execute_lambda(
            lambda tx: [(v["i"], len(v["pad"])) for v in tx.execute_statement("SELECT * FROM Big")]
        )
    finally:
        driver.close()
    assert sorted(values) == [(i, 100_000) for i in range(30)]
    client = make_client(served.url)
    token = _session(client, ledger_name)
    tx_id = client.send_command(SessionToken=token, StartTransaction={})["StartTransaction"][
        "TransactionId"
    ]
    pages = _pages(client, token, tx_id, "SELECT * FROM Big")
    counts = [len(p["Values"]) for p in pages]
    sizes = [sum(len(v["IonBinary"]) for v in p["Values"]) for p in pages]
    assert counts == [10, 10, 10]
    assert all(s <= 1 << 20 < s * 11 // 10 for s in sizes)
    client.send_command(SessionToken=token, AbortTransaction={})


def _pages(client: Any, token: str, tx_id: str, statement: str) -> list[Any]:
    """Every page of a statement's result, fetched by token as pyqldb does."""
    pages = [
        client.send_command(
            SessionToken=token,
            ExecuteStatement={"TransactionId": tx_id, "Statement": statement},
        )["ExecuteStatement"]["FirstPage"]
    ]
    while "NextPageToken" in pages[-1]:
        pages.append(
            client.send_command(
                SessionToken=token,
                FetchPage={"TransactionId": tx_id, "NextPageToken": pages[-1]["NextPageToken"]},
            )["FetchPage"]["Page"]
        )
    return pages
