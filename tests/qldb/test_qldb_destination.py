"""``QldbDestination`` through pyqldb against ``serve-qldb`` (a real subprocess): checkpoint
compare-and-set inside the transaction, revision replay with Ion parameters, the source id kept
in a field, statement blocks, atomicity, parts, a lost commit answer, and the botocore check."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion

from destination.port import BlockReplay, Checkpoint, RevisionOp, StatementOp
from destination.qldb import SOURCE_ID_FIELD, QldbDestination, check_botocore
from journal.canonical import fingerprint
from journal.errors import ReplayError
from journal.records import BlockAddress
from runtime.errors import CheckpointMismatch, ConfigError, TransientError

from .conftest import Served
from .qldb_proxy import LossyProxy

LEDGER = "us-east-1:000000000000:source"
STRAND = "StrandS000000000000000"


def block(
    seq: int,
    ops: tuple[StatementOp | RevisionOp, ...],
    *,
    mode: str = "revisions",
    part: int | None = None,
    parts: int | None = None,
    revisions: tuple[RevisionOp, ...] = (),
) -> BlockReplay:
    return BlockReplay(
        block_id=f"{LEDGER}/{STRAND}/{seq}",
        ledger=LEDGER,
        address=BlockAddress(STRAND, seq),
        block_hash=hashlib.sha256(f"block {seq}".encode()).digest(),
        mode=mode,  # type: ignore[arg-type]
        ops=ops,
        part=part,
        parts=parts,
        revisions=revisions,
    )


def rev(doc: str, version: int, data: Any, table: str = "Vehicle") -> RevisionOp:
    return RevisionOp(
        table_name=table,
        table_id="TableV0000000000000000",
        document_id=doc,
        version=version,
        data=None if data is None else simpleion.loads(simpleion.dumps(data)),
    )


def ion(text: str) -> Any:
    return simpleion.loads(text)


@pytest.fixture
def dest(served: Served, ledger_name: str) -> Iterator[QldbDestination]:
    d = QldbDestination(ledger_name, endpoint=served.url)
    yield d
    d.close()


def contents(d: QldbDestination) -> dict[tuple[str, str | None], str]:
    return {(doc.table, doc.source_id): fingerprint(doc.data) for doc in d.copies()}


def journal_blocks(served: Served, name: str) -> list[list[str]]:
    from ledger import EmbeddedLedger

    with EmbeddedLedger(served.ledger_file(name), ledger_name=name) as led:
        return [b.statements for b in led.blocks()]


def test_the_limits_are_qldbs(dest: QldbDestination) -> None:
    assert (dest.limits.documents, dest.limits.bytes) == (40, 4 * 1024 * 1024)


def test_checkpoint_compare_and_set(dest: QldbDestination) -> None:
    assert dest.checkpoint(LEDGER, STRAND) is None
    b0 = block(0, (StatementOp(text="CREATE TABLE Vehicle", index=0),), mode="statements")
    report = dest.apply([b0], None)
    assert report.statements == 1
    assert dest.checkpoint(LEDGER, STRAND) == b0.checkpoint()
    assert dest.tables() == ["Vehicle"]
    # A stale expectation applies nothing.
    b1 = block(1, (rev("DocA000000000000000001", 0, {"VIN": "1"}),))
    with pytest.raises(CheckpointMismatch):
        dest.apply([b1], None)
    assert list(dest.copies()) == []
    assert dest.checkpoint(LEDGER, STRAND) == b0.checkpoint()
    dest.apply([b1], b0.checkpoint())
    assert dest.checkpoint(LEDGER, STRAND) == b1.checkpoint()
    other = Checkpoint(ledger=LEDGER, strand_id=STRAND, sequence_no=1, block_hash=b"\0" * 32)
    with pytest.raises(CheckpointMismatch):
        dest.apply([block(2, ())], other)


def test_revisions_replay_as_ion_values_and_keep_the_destination_id(
    served: Served, ledger_name: str, dest: QldbDestination
) -> None:
    first = ion(
        '{VIN: "1N4AL11D75C109151", price: 9.90, when: 2019-06-01T, at: 2020-07-03T20:36:44.181Z,'
        ' raw: {{aGVsbG8=}}, kind: car, tags: [a::1, 2e0], owner: {name: "Alice", n: null.int}}'
    )
    second = ion('{VIN: "1N4AL11D75C109151", price: 10.00, color: "red", owner: {name: "Bob"}}')
    b0 = block(0, (StatementOp(text="CREATE TABLE Vehicle", index=0),), mode="statements")
    b1 = block(
        1, (rev("DocA000000000000000001", 0, first), rev("DocB000000000000000002", 0, {"VIN": "2"}))
    )
    dest.apply([b0, b1], None)
    before = {d.source_id: d for d in dest.copies()}
    assert fingerprint(before["DocA000000000000000001"].data) == fingerprint(first)
    assert before["DocA000000000000000001"].data["price"] == Decimal("9.90")
    b2 = block(
        2, (rev("DocA000000000000000001", 1, second), rev("DocB000000000000000002", 1, None))
    )
    report = dest.apply([b2], b1.checkpoint())
    assert (report.revisions, report.documents_written) == (2, 2)
    after = {d.source_id: d for d in dest.copies()}
    assert set(after) == {"DocA000000000000000001"}
    assert after["DocA000000000000000001"].id == before["DocA000000000000000001"].id
    assert fingerprint(after["DocA000000000000000001"].data) == fingerprint(second)
    assert SOURCE_ID_FIELD not in after["DocA000000000000000001"].data
    # Replayed with parameters, never as text.
    statements = [s for b in journal_blocks(served, ledger_name) for s in b]
    assert 'INSERT INTO "Vehicle" ?' in statements
    assert not any("1N4AL11D75C109151" in s for s in statements)


def test_a_statement_block_maps_the_documents_it_wrote(dest: QldbDestination) -> None:
    data = {"GovId": "P626-168-229-765", "FirstName": "Raul"}
    b0 = block(
        0,
        (
            StatementOp(text="CREATE TABLE Person", index=0),
            StatementOp(
                text="INSERT INTO Person << {'GovId': 'P626-168-229-765', 'FirstName': 'Raul'} >>",
                index=1,
            ),
        ),
        mode="statements",
        revisions=(rev("DocP000000000000000001", 0, data, table="Person"),),
    )
    dest.apply([b0], None)
    (doc,) = dest.copies()
    assert (doc.table, doc.source_id) == ("Person", "DocP000000000000000001")
    # A later block replayed from revisions finds that copy.
    changed = {"GovId": "P626-168-229-765", "FirstName": "Raúl"}
    b1 = block(1, (rev("DocP000000000000000001", 1, changed, table="Person"),))
    dest.apply([b1], b0.checkpoint())
    (again,) = dest.copies()
    assert again.id == doc.id
    assert again.data["FirstName"] == "Raúl"


def test_a_failing_operation_applies_nothing(dest: QldbDestination) -> None:
    b0 = block(0, (StatementOp(text="CREATE TABLE Vehicle", index=0),), mode="statements")
    dest.apply([b0], None)
    good = block(1, (rev("DocA000000000000000001", 0, {"VIN": "1"}),))
    bad = block(2, (StatementOp(text="UPDATE NoSuchTable SET x = 1", index=0),), mode="statements")
    with pytest.raises(ReplayError) as err:
        dest.apply([good, bad], b0.checkpoint())
    assert err.value.block == bad.block_id
    assert "NoSuchTable" in err.value.reason
    assert list(dest.copies()) == []
    assert dest.checkpoint(LEDGER, STRAND) == b0.checkpoint()


def test_parts_move_a_part_checkpoint(dest: QldbDestination) -> None:
    dest.apply(
        [block(0, (StatementOp(text="CREATE TABLE Vehicle", index=0),), mode="statements")], None
    )
    cp0 = dest.checkpoint(LEDGER, STRAND)
    p0 = block(1, tuple(rev(f"Doc{i:019d}", 0, {"i": i}) for i in range(30)), part=0, parts=2)
    p1 = block(1, tuple(rev(f"Doc{i:019d}", 0, {"i": i}) for i in range(30, 45)), part=1, parts=2)
    dest.apply([p0], cp0)
    mid = dest.checkpoint(LEDGER, STRAND)
    assert mid is not None and (mid.sequence_no, mid.part) == (1, 0)
    dest.apply([p1], mid)
    end = dest.checkpoint(LEDGER, STRAND)
    assert end is not None and (end.sequence_no, end.part) == (1, None)
    assert len(list(dest.copies())) == 45


def test_a_lost_commit_answer_never_applies_twice(served: Served, ledger_name: str) -> None:
    proxy = LossyProxy(served.url)
    d = QldbDestination(ledger_name, endpoint=proxy.url)
    try:
        b0 = block(0, (StatementOp(text="CREATE TABLE Vehicle", index=0),), mode="statements")
        d.apply([b0], None)
        b1 = block(1, (rev("DocA000000000000000001", 0, {"VIN": "1"}),))
        proxy.drop_commit_answers(1)
        report = d.apply([b1], b0.checkpoint())  # pyqldb retries; the retry finds it applied
        assert proxy.dropped == 1
        assert report.revisions == 1
        assert any("answer was lost" in line for line in report.details)
        assert d.checkpoint(LEDGER, STRAND) == b1.checkpoint()
        assert [doc.source_id for doc in d.copies()] == ["DocA000000000000000001"]
    finally:
        d.close()
        proxy.stop()
    inserts = [b for b in journal_blocks(served, ledger_name) if 'INSERT INTO "Vehicle" ?' in b]
    assert len(inserts) == 1


def test_a_lost_answer_without_retries_is_transient_and_the_rerun_finds_it_done(
    served: Served, ledger_name: str
) -> None:
    proxy = LossyProxy(served.url)
    d = QldbDestination(ledger_name, endpoint=proxy.url, retry_limit=0)
    try:
        b0 = block(0, (StatementOp(text="CREATE TABLE Vehicle", index=0),), mode="statements")
        assert d.checkpoint(LEDGER, STRAND) is None
        d.apply([b0], None)
        b1 = block(1, (rev("DocA000000000000000001", 0, {"VIN": "1"}),))
        proxy.drop_commit_answers(1)
        with pytest.raises(TransientError):
            d.apply([b1], b0.checkpoint())
        assert proxy.dropped == 1
        # The commit landed: the caller's next cycle starts from the destination's checkpoint.
        assert d.checkpoint(LEDGER, STRAND) == b1.checkpoint()
        with pytest.raises(CheckpointMismatch):
            d.apply([b1], b0.checkpoint())
        assert [c.source_id for c in d.copies()] == ["DocA000000000000000001"]
    finally:
        d.close()
        proxy.stop()


def test_an_unreachable_endpoint_is_transient(ledger_name: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = QldbDestination(ledger_name, endpoint=f"http://127.0.0.1:{port}", retry_limit=0)
    try:
        with pytest.raises(TransientError) as err:
            d.checkpoint(LEDGER, STRAND)
        assert f"127.0.0.1:{port}" in str(err.value)
    finally:
        d.close()


def test_botocore_without_the_qldb_session_model_is_a_clear_error(tmp_path: Path) -> None:
    import botocore.session
    from botocore.loaders import Loader

    check_botocore()  # the pinned botocore has it
    # A botocore whose data has no qldb-session model, as 1.40.61 and later.
    empty = tmp_path / "models"
    empty.mkdir()
    newer = botocore.session.get_session()
    newer.register_component(
        "data_loader", Loader(extra_search_paths=[str(empty)], include_default_search_paths=False)
    )
    with pytest.raises(ConfigError) as err:
        check_botocore(newer)
    assert "qldb-session" in str(err.value)
    assert "botocore==1.40.60" in str(err.value)


def test_ddl_naming_source_ids_is_translated(dest: QldbDestination) -> None:
    source_table = "SrcTablePerson00000000"

    def with_names(b: BlockReplay) -> BlockReplay:
        return BlockReplay(
            block_id=b.block_id, ledger=b.ledger, address=b.address, block_hash=b.block_hash,
            mode=b.mode, ops=b.ops, table_names=((source_table, "Person"),),
        )  # fmt: skip

    ddl = [
        ["CREATE TABLE Person", "CREATE INDEX ON Person (GovId)"],
        None,  # a revision block: the replica learns which table the source id is
        ["DROP TABLE Person"],
        [f'UNDROP TABLE "{source_table}"'],
        ['DROP INDEX "SrcIndexGovId000000000" ON Person WITH (purge = true)'],
    ]
    expected = None
    for seq, texts in enumerate(ddl):
        if texts is None:
            b = with_names(
                block(seq, (rev("DocP000000000000000001", 0, {"GovId": "X"}, "Person"),))
            )
        else:
            ops = tuple(StatementOp(text=t, index=i) for i, t in enumerate(texts))
            b = with_names(block(seq, ops, mode="statements"))
        dest.apply([b], expected)
        expected = b.checkpoint()
    (doc,) = dest.copies()
    assert (doc.table, doc.source_id) == ("Person", "DocP000000000000000001")
    (person,) = dest.execute(
        "SELECT name, status, indexes FROM information_schema.user_tables WHERE name = 'Person'"
    )
    assert person["status"] == "ACTIVE"
    # GovId's index is gone; the replica's own source-id index stays.
    assert [str(i["expr"]) for i in person["indexes"]] == [f"[{SOURCE_ID_FIELD}]"]
    # An id the replica never saw is refused, naming the block.
    unknown = block(
        5, (StatementOp(text='UNDROP TABLE "NeverSeen0000000000000"', index=0),), mode="statements"
    )
    with pytest.raises(ReplayError) as err:
        dest.apply([unknown], expected)
    assert err.value.block == unknown.block_id and "never seen" in err.value.reason


def test_no_transaction_and_no_retry_past_the_invocations_deadline(
    served: Served, ledger_name: str
) -> None:
    """``runtime.deadline``: with the deadline gone nothing is started; a commit whose answer is
    lost when the deadline has come is not retried (``DeadlineReached``, a transient error), and
    the commit that did land is what the next cycle finds."""
    import time

    from runtime import deadline

    proxy = LossyProxy(served.url)
    d = QldbDestination(ledger_name, endpoint=proxy.url)
    skew = [0.0]
    deadline.use_clock(lambda: time.monotonic() + skew[0])
    try:
        with deadline.until(0.0), pytest.raises(deadline.DeadlineReached, match="listing tables"):
            d.checkpoint(LEDGER, STRAND)
        b0 = block(0, (StatementOp(text="CREATE TABLE Vehicle", index=0),), mode="statements")
        d.apply([b0], None)
        b1 = block(1, (rev("DocA000000000000000001", 0, {"VIN": "1"}),))
        proxy.drop_commit_answers(1)
        take_drop = proxy.take_drop

        def drop_and_run_out_of_time() -> bool:
            dropped = take_drop()
            if dropped:
                skew[0] += 3600.0  # the answer is lost, and with it the invocation's time
            return dropped

        proxy.take_drop = drop_and_run_out_of_time  # type: ignore[method-assign]
        with deadline.until(60.0), pytest.raises(deadline.DeadlineReached, match="no time"):
            d.apply([b1], b0.checkpoint())
        assert proxy.dropped == 1
        assert d.checkpoint(LEDGER, STRAND) == b1.checkpoint()
        assert [c.source_id for c in d.copies()] == ["DocA000000000000000001"]
    finally:
        deadline.use_clock(time.monotonic)
        d.close()
        proxy.stop()
