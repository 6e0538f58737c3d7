"""What only the SQLite adapter does: the file, its schema, locks, read-only use, transactions and
the release query's plan. The port's guarantees are in tests/contract."""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from buffer.port import Incoming, Mark
from buffer.sqlite import (
    APPLICATION_ID,
    PENDING_SQL,
    REVISIONS_SQL,
    SCHEMA_VERSION,
    SqliteBuffer,
)
from buffer.sqlite_schema import translate
from buffer.sqlite_store import header_select
from buffer.store import HeaderQuery
from journal.canonical import fingerprint
from journal.errors import InputError
from journal.records import RevisionDetails
from runtime.errors import TransientError

from synth import SYNTH_LEDGER, SYNTH_STRAND, SYNTH_T0, Synth  # isort: skip

pytestmark = pytest.mark.ingest_env


def _filled(path: Path, synth: Synth, n: int = 3) -> SqliteBuffer:
    buf = SqliteBuffer(path)
    buf.put(synth.incomings(synth.chain(n)))
    return buf


def test_a_new_buffer_is_in_wal_mode_with_its_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    SqliteBuffer(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
    db.close()


def test_creating_the_schema_again_changes_nothing(tmp_path: Path, synth: Synth) -> None:
    path = tmp_path / "b.db"
    buf = _filled(path, synth)
    expected = buf.dump()
    buf.store._create()  # what opening an older or half-created file does
    assert buf.dump() == expected
    buf.close()
    for _ in range(3):
        with SqliteBuffer(path) as again:
            assert again.dump() == expected


def test_two_processes_creating_one_buffer_at_once_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_it() -> None:
        try:
            barrier.wait()
            SqliteBuffer(path).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with SqliteBuffer(path) as buf:
        assert buf.dump()["counts"]["statements"] == 0


def test_a_locked_database_is_a_transient_error_naming_the_file(
    tmp_path: Path, synth: Synth
) -> None:
    path = tmp_path / "b.db"
    buf = SqliteBuffer(path, busy_timeout_s=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    try:
        with pytest.raises(TransientError, match=str(path)) as caught:
            buf.put(synth.incomings(synth.chain(1)))
        assert "busy" in str(caught.value) or "locked" in str(caught.value)
        assert buf.stats(SYNTH_T0).blocks["pending"] == 0  # readers do not wait (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert buf.put(synth.incomings(synth.chain(1))).stored["blocks"] == 1
    buf.close()


def test_a_read_only_buffer_reads_and_refuses_writes_as_transient(
    tmp_path: Path, synth: Synth
) -> None:
    path = tmp_path / "b.db"
    _filled(path, synth).close()
    with SqliteBuffer(path, read_only=True) as ro:
        assert len(ro.pending(SYNTH_LEDGER, SYNTH_STRAND, 0, 10)) == 3
        assert ro.stats(SYNTH_T0).blocks["pending"] == 3
        with pytest.raises(TransientError, match="read-only"):
            ro.put(synth.incomings([synth.block(9)]))
        with pytest.raises(TransientError, match=str(path)):
            ro.mark(
                [Mark(block_id=f"{SYNTH_LEDGER}/{SYNTH_STRAND}/1", state="replayed", at=SYNTH_T0)]
            )
        assert ro.dump()["counts"]["blocks"]["pending"] == 3


def test_a_file_without_write_permission_is_transient(tmp_path: Path, synth: Synth) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop writes (read_only covers it)")
    path = tmp_path / "b.db"
    _filled(path, synth).close()
    path.chmod(0o444)
    try:
        with SqliteBuffer(path) as buf, pytest.raises(TransientError, match="read-only"):
            buf.put(synth.incomings([synth.block(9)]))
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is a text file, not a database at all\n" * 40, "not a qldb-settle buffer"),
        (None, "another kind"),  # a different SQLite database
        (b"newer", "newer than this qldb-settle"),
    ],
)
def test_a_file_that_is_not_a_buffer_is_refused(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "x.db"
    if content is None:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE documents (id TEXT)")
        db.close()
    elif content == b"newer":
        SqliteBuffer(path).close()
        with sqlite3.connect(path) as db:
            db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        db.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(InputError, match=message):
        SqliteBuffer(path)
    assert path.read_bytes() == before


def test_a_missing_directory_or_read_only_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        SqliteBuffer(tmp_path / "no" / "such" / "dir" / "b.db")
    with pytest.raises(InputError):
        SqliteBuffer(tmp_path / "absent.db", read_only=True)
    assert not (tmp_path / "absent.db").exists()


def test_an_empty_file_becomes_a_buffer(tmp_path: Path, synth: Synth) -> None:
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with SqliteBuffer(path) as buf:
        assert buf.put(synth.incomings(synth.chain(1))).stored["blocks"] == 1


def test_a_put_is_all_or_nothing(tmp_path: Path, synth: Synth) -> None:
    buf = SqliteBuffer(tmp_path / "b.db")
    empty = buf.dump()
    good = synth.incomings(synth.chain(2))
    broken = Incoming(record=cast(Any, object()), raw=b"", fingerprint="", origin="x")
    with pytest.raises(TypeError):
        buf.put([*good, broken])
    assert buf.dump() == empty
    assert buf.stats(SYNTH_T0).statements == 0
    assert buf.put(good).stored["blocks"] == 2  # the connection is still usable
    buf.close()


def test_the_release_query_is_an_index_range_scan(tmp_path: Path, synth: Synth) -> None:
    buf = _filled(tmp_path / "b.db", synth, n=20)
    db = buf.store._db
    plan = " | ".join(
        str(row[-1])
        for row in db.execute(
            "EXPLAIN QUERY PLAN " + PENDING_SQL, (SYNTH_LEDGER, SYNTH_STRAND, "pending", 0, 5)
        )
    )
    assert "USING INDEX blocks_release (ledger=? AND strand_id=? AND state=? AND seq>?)" in plan
    assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan
    plan = " | ".join(
        str(row[-1])
        for row in db.execute("EXPLAIN QUERY PLAN " + REVISIONS_SQL.format(marks="?,?"), ("a", "b"))
    )
    assert "USING INDEX revisions_block (block_id=?)" in plan, plan
    buf.close()


def test_a_state_of_every_strand_is_read_strand_by_strand(tmp_path: Path, synth: Synth) -> None:
    """``blocks(state)`` and ``purge_replayed`` (no strand named) search ``blocks_release`` per
    ``strands`` row: a scan of the index would cost every held block (issue 17)."""
    buf = _filled(tmp_path / "b.db", synth, n=20)
    db = buf.store._db
    for query in (
        HeaderQuery(state="quarantined"),
        HeaderQuery(state="replayed", committed_before_us=1, unpurged=True),
    ):
        sql, args = header_select(query)
        plan = " | ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "SEARCH b USING INDEX blocks_release (ledger=? AND strand_id=? AND state=?)" in plan
        assert "SCAN b" not in plan and "SCAN blocks" not in plan, plan
    buf.close()


def test_concurrent_writers_leave_the_state_of_one_writer(tmp_path: Path, synth: Synth) -> None:
    records = synth.incomings(synth.chain(12))
    reference = SqliteBuffer(tmp_path / "ref.db")
    reference.put(records)
    expected = reference.dump()
    reference.close()
    path = tmp_path / "shared.db"
    SqliteBuffer(path).close()
    errors: list[BaseException] = []

    def ingest(seed: int) -> None:
        order = records[:]
        random.Random(seed).shuffle(order)
        try:
            with SqliteBuffer(path, busy_timeout_s=10) as buf:
                for i in range(0, len(order), 5):
                    buf.put(order[i : i + 5])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(seed,)) for seed in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with SqliteBuffer(path) as buf:
        assert buf.dump() == expected


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("database is locked", TransientError),
        ("attempt to write a readonly database", TransientError),
        ("disk I/O error", TransientError),
        ("file is not a database", InputError),
        ("unable to open database file", InputError),
    ],
)
def test_sqlite_errors_are_translated_by_their_message_when_no_code_is_given(
    message: str, kind: type[Exception]
) -> None:
    mapped = translate(sqlite3.OperationalError(message), "/data/b.db")
    assert isinstance(mapped, kind)
    assert "/data/b.db" in str(mapped)


def test_other_sqlite_errors_are_not_disguised() -> None:
    assert translate(sqlite3.IntegrityError("UNIQUE constraint failed"), "b.db") is None


def test_a_version_1_file_is_upgraded_in_place(tmp_path: Path, synth: Synth) -> None:
    path = tmp_path / "b.db"
    _filled(path, synth).close()
    with sqlite3.connect(path) as db:  # what version 1 wrote: no tx_time_form
        db.execute("ALTER TABLE revisions DROP COLUMN tx_time_form")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.close()
    with SqliteBuffer(path) as buf:
        (block, *_) = buf.pending(SYNTH_LEDGER, SYNTH_STRAND, 0, 10)
        assert block.complete
        assert buf.put(synth.incomings([synth.block(9)])).stored["revisions"] == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
    db.close()


def test_revision_timestamps_keep_their_ion_precision_and_offset(
    tmp_path: Path, synth: Synth
) -> None:
    from amazon.ion import simpleion

    block = synth.block(3)
    meta = block.revisions[0]["payload"]["revision"]["metadata"]
    texts = ("2024-03-01T13:00:03.5+01:00", "2024-03-01T12:00:03Z", "2024-03-01T12:00:03.000123Z")
    for n, text in enumerate(texts):
        meta["txTime"] = simpleion.loads(text)
        item = synth.incoming(block.revisions[0])
        assert isinstance(item.record, RevisionDetails)
        with SqliteBuffer(tmp_path / f"{n}.db") as buf:
            buf.put([synth.incoming(block.summary), item])
            (got,) = buf.pending(SYNTH_LEDGER, SYNTH_STRAND, 0, 1)
        tx_time = got.revisions[f"Doc{3:019d}"].metadata.tx_time
        assert fingerprint(tx_time) == fingerprint(item.record.metadata.tx_time), text
        assert simpleion.dumps(tx_time, binary=False).endswith(text)


_RICH_DATA = (
    "{Name: \"Ana\", Price: 12345.670, Count: 7, Ratio: 2.5e0, Tag: 'vip', When: "
    '2024-03-01T13:00:03.50+01:00, Blob: {{aGVsbG8=}}, None: null.string, List: [1, a::"x", '
    "(sexp 1)], Nested: {Deep: [{}, []]}}"
)


def test_revisions_written_by_either_ion_writer_read_back_alike(
    tmp_path: Path, synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A buffer written before the writer changed (``simpleion.dumps``) reads as one written now
    (``buffer._common.ENCODE``): both are Ion 1.0 binary, read by one reader."""
    from amazon.ion import simpleion

    from buffer import _common

    block = synth.block(3)
    block.revisions[0]["payload"]["revision"]["data"] = simpleion.loads(_RICH_DATA)
    items = [synth.incoming(v) for v in block.values]
    expected = cast(RevisionDetails, items[1].record).data
    got = {}
    for name, writer in (
        ("simpleion", _common._simpleion_dumps),
        ("ion_binary", _common.encode),
    ):
        monkeypatch.setattr(_common, "ENCODE", writer)
        with SqliteBuffer(tmp_path / f"{name}.db") as buf:
            buf.put(items)
        monkeypatch.undo()
        with SqliteBuffer(tmp_path / f"{name}.db", read_only=True) as buf:
            (block_read,) = buf.pending(SYNTH_LEDGER, SYNTH_STRAND, 0, 1)
        got[name] = block_read.revisions[f"Doc{3:019d}"].data
    for name, data in got.items():
        assert fingerprint(data) == fingerprint(expected), name
        assert simpleion.dumps(data, binary=False) == simpleion.dumps(expected, binary=False)


def test_a_put_reads_and_writes_in_bulk_in_one_transaction(tmp_path: Path, synth: Synth) -> None:
    """One BEGIN..COMMIT per put, and a number of statements that does not grow with the batch
    (reads by id in IN lists, writes by executemany), for a batch of new records."""

    def statements_of_put(n: int, start: int) -> list[str]:
        seen: list[str] = []
        with SqliteBuffer(tmp_path / f"{n}.db") as buf:
            buf.put(synth.incomings(synth.chain(1)))  # the strand exists
            items = synth.incomings(synth.chain(n, start=start))
            buf.store._db.set_trace_callback(seen.append)
            report = buf.put(items)
            buf.store._db.set_trace_callback(None)
        assert report.stored["blocks"] == n and report.stored["revisions"] == n
        return seen

    small, large = statements_of_put(20, 2), statements_of_put(200, 2)
    for seen in (small, large):
        assert [s for s in seen if s.startswith(("BEGIN", "COMMIT"))] == [
            "BEGIN IMMEDIATE",
            "COMMIT",
        ]
    selects = [s for s in large if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == len([s for s in small if s.lstrip().upper().startswith("SELECT")])
    assert len(selects) <= 6  # revisions, blocks, control by id; the strand's mark and gaps
