"""Transactions: optimistic concurrency like QLDB's, QLDB's limits, threads and processes."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from ledger import EmbeddedLedger, LimitExceeded, OccConflict
from ledger.errors import TransactionClosed


@pytest.fixture
def accounts(led: EmbeddedLedger) -> EmbeddedLedger:
    led.execute("CREATE TABLE Account")
    led.execute("CREATE INDEX ON Account (Owner)")
    led.execute("INSERT INTO Account << {'Owner': 'a', 'n': 0}, {'Owner': 'b', 'n': 0} >>")
    return led


def test_a_read_changed_by_a_later_commit_fails_at_commit(accounts: EmbeddedLedger) -> None:
    t1, t2 = accounts.begin(), accounts.begin()
    t1.execute("SELECT * FROM Account AS x WHERE x.Owner = 'a'")
    t2.execute("UPDATE Account AS x SET x.n = 1 WHERE x.Owner = 'a'")
    t2.commit()
    t1.execute("UPDATE Account AS x SET x.n = 2 WHERE x.Owner = 'a'")
    with pytest.raises(OccConflict, match="OCC conflict"):
        t1.commit()
    assert accounts.execute("SELECT VALUE x.n FROM Account AS x WHERE x.Owner = 'a'") == [1]


def test_disjoint_indexed_reads_do_not_conflict(accounts: EmbeddedLedger) -> None:
    t1, t2 = accounts.begin(), accounts.begin()
    t1.execute("UPDATE Account AS x SET x.n = 1 WHERE x.Owner = 'a'")
    t2.execute("UPDATE Account AS x SET x.n = 1 WHERE x.Owner = 'b'")
    t1.commit()
    t2.commit()  # different documents found through the index: no conflict
    assert sorted(accounts.execute("SELECT VALUE x.n FROM Account AS x")) == [1, 1]


def test_a_phantom_in_an_indexed_read_conflicts(accounts: EmbeddedLedger) -> None:
    t1, t2 = accounts.begin(), accounts.begin()
    assert t1.execute("SELECT * FROM Account AS x WHERE x.Owner = 'c'") == []
    t2.execute("INSERT INTO Account VALUE {'Owner': 'c', 'n': 9}")
    t2.commit()
    t1.execute("INSERT INTO Account VALUE {'Owner': 'c', 'n': 1}")
    with pytest.raises(OccConflict):
        t1.commit()


def test_a_table_scan_conflicts_with_any_later_write_to_the_table(
    accounts: EmbeddedLedger,
) -> None:
    t1, t2 = accounts.begin(), accounts.begin()
    t1.execute("SELECT * FROM Account AS x WHERE x.n > 5")  # not indexed: a scan
    t2.execute("INSERT INTO Account VALUE {'Owner': 'z', 'n': 6}")
    t2.commit()
    with pytest.raises(OccConflict, match="scanned"):
        t1.commit()


def test_a_commit_before_the_read_is_not_a_conflict(accounts: EmbeddedLedger) -> None:
    t1 = accounts.begin()
    accounts.execute("UPDATE Account AS x SET x.n = 5 WHERE x.Owner = 'a'")
    t1.execute("UPDATE Account AS x SET x.n = x.n + 1 WHERE x.Owner = 'a'")  # reads n = 5
    t1.commit()
    assert accounts.execute("SELECT VALUE x.n FROM Account AS x WHERE x.Owner = 'a'") == [6]


def test_ddl_committed_meanwhile_conflicts(accounts: EmbeddedLedger) -> None:
    t1 = accounts.begin()
    t1.execute("SELECT * FROM Account AS x WHERE x.Owner = 'a'")
    accounts.execute("CREATE TABLE Other")
    with pytest.raises(OccConflict, match="tables or indexes"):
        t1.commit()


def test_closed_transactions_refuse_work(accounts: EmbeddedLedger) -> None:
    tx = accounts.begin()
    tx.abort()
    with pytest.raises(TransactionClosed):
        tx.execute("SELECT * FROM Account")
    tx2 = accounts.begin()
    tx2.commit()
    with pytest.raises(TransactionClosed):
        tx2.commit()


def _bump(path: Path, rounds: int, out: Any) -> None:
    led = EmbeddedLedger(path)
    done = conflicts = 0
    try:
        while done < rounds:
            tx = led.begin()
            tx.execute("UPDATE Account AS x SET x.n = x.n + 1 WHERE x.Owner = 'a'")
            try:
                tx.commit()
                done += 1
            except OccConflict:
                conflicts += 1
    finally:
        led.close()
    out.put((done, conflicts))


def test_concurrent_threads_never_lose_an_update(accounts: EmbeddedLedger) -> None:
    import queue

    results: queue.Queue[tuple[int, int]] = queue.Queue()

    def work() -> None:
        done = conflicts = 0
        while done < 15:
            tx = accounts.begin()
            tx.execute("UPDATE Account AS x SET x.n = x.n + 1 WHERE x.Owner = 'a'")
            try:
                tx.commit()
                done += 1
            except OccConflict:
                conflicts += 1
        results.put((done, conflicts))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert accounts.execute("SELECT VALUE x.n FROM Account AS x WHERE x.Owner = 'a'") == [60]
    blocks = list(accounts.blocks())
    assert [b.sequence_no for b in blocks] == list(range(len(blocks)))


def test_two_processes_on_one_file_never_lose_an_update(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with EmbeddedLedger(path) as led:
        led.execute("CREATE TABLE Account")
        led.execute("INSERT INTO Account VALUE {'Owner': 'a', 'n': 0}")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_bump, args=(path, 10, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert sum(out.get(timeout=5)[0] for _ in procs) == 20
    with EmbeddedLedger(path) as led:
        assert led.tip() == 21  # CREATE, INSERT, then one block per committed update
        assert led.execute("SELECT VALUE x.n FROM Account AS x") == [20]


# --- QLDB's limits --------------------------------------------------------------------------------


def test_forty_documents_per_transaction(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    bag = ", ".join(f"{{'i': {i}}}" for i in range(40))
    assert len(led.execute(f"INSERT INTO T << {bag} >>")) == 40
    tx = led.begin()
    tx.execute(f"INSERT INTO T << {bag} >>")
    with pytest.raises(LimitExceeded, match="41 documents, over QLDB's limit of 40"):
        tx.execute("INSERT INTO T VALUE {'i': 41}")
    tx.commit()  # the statement over the limit was not applied; the rest commits
    assert len(led.execute("SELECT * FROM T")) == 80


def test_document_size_limit(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T VALUE {'s': ?}", "x" * 120_000)
    with pytest.raises(LimitExceeded, match="over QLDB's limit of 131072"):
        led.execute("INSERT INTO T VALUE {'s': ?}", "x" * 132_000)
    assert len(led.execute("SELECT * FROM T")) == 1


def test_transaction_size_limit(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    tx = led.begin()
    for _ in range(33):  # 33 x 125,000 bytes fit in 4 MB (4,194,304 bytes), 34 do not
        tx.execute("INSERT INTO T VALUE {'s': ?}", "y" * 125_000)
    with pytest.raises(LimitExceeded, match=r"over QLDB's limit of 4194304 \(4 MB\)"):
        tx.execute("INSERT INTO T VALUE {'s': ?}", "y" * 125_000)
    tx.abort()


def test_statement_length_limit(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    text = "INSERT INTO T VALUE {'s': '" + "z" * 100_000 + "'}"
    with pytest.raises(LimitExceeded, match="over QLDB's limit of 100000"):
        led.execute(text)


def test_limits_do_not_bind_when_off(tmp_path: Path) -> None:
    with EmbeddedLedger(tmp_path / "free.db", enforce_limits=False) as led:
        led.execute("CREATE TABLE T")
        bag = ", ".join(f"{{'i': {i}}}" for i in range(50))
        assert len(led.execute(f"INSERT INTO T << {bag} >>")) == 50
        led.execute("INSERT INTO T VALUE {'s': ?}", "x" * 200_000)
        assert len(led.execute("SELECT * FROM T")) == 51
