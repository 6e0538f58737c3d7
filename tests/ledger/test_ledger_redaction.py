"""``EXEC redact_revision``: QLDB's REDACT_REVISION stored procedure on the embedded ledger.

The QLDB Developer Guide: the arguments are the revision's block address (``{strandId,
sequenceNo}``), its table id and its document id; only an inactive revision (not the latest of
its document) may be redacted, once, one per transaction; the revision's ``data`` is replaced by
``dataHash`` (the Ion hash of the removed data) in history and in the journal, and its hash,
the journal's sequence and the document's metadata are unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from journal.hashes import dot, merkle_root
from ledger import EmbeddedLedger, StatementError
from ledger.hashing import ion_hash


@pytest.fixture
def led(tmp_path: Path) -> Any:
    ledger = EmbeddedLedger(tmp_path / "l.db", id_seed="redact")
    yield ledger
    ledger.close()


def _person(led: Any) -> tuple[str, str]:
    led.execute("CREATE TABLE Person")
    [r] = led.execute("INSERT INTO Person ?", {"Name": "Ann", "License": "X1"})
    led.execute("UPDATE Person SET License = 'X2' WHERE Name = 'Ann'")
    table_id = next(i for n, i, _ in led.tables() if n == "Person")
    return str(r["documentId"]), table_id


def _history(led: Any, doc_id: str) -> list[Any]:
    return led.execute("SELECT * FROM history(Person) AS h WHERE h.metadata.id = ?", doc_id)


def _chain_is_valid(led: Any) -> None:
    prev = None
    for b in led.blocks():
        entries = list(b.payload["entriesHashList"])
        assert merkle_root(entries) == b.entries_hash
        assert dot(b.entries_hash, b.previous_block_hash) == b.block_hash
        if prev is not None:
            assert b.previous_block_hash == prev
        prev = b.block_hash
        for r in b.revisions:
            assert r.hash in entries
            data_hash = r.data_hash if r.raw is None else ion_hash(r.data)
            meta = ion_hash(r.metadata())
            assert r.hash == (meta if data_hash is None else dot(data_hash, meta))


def test_redacting_an_inactive_revision_keeps_its_hash_and_removes_its_data(led: Any) -> None:
    doc_id, table_id = _person(led)
    old, new = _history(led, doc_id)
    tip_before = led.tip()
    out = led.execute("EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, doc_id)
    assert out == [
        {"blockAddress": dict(old["blockAddress"]), "tableId": table_id, "documentId": doc_id,
         "version": 0}
    ]  # fmt: skip
    redacted, current = _history(led, doc_id)
    assert "data" not in redacted
    assert redacted["dataHash"] == ion_hash({"Name": "Ann", "License": "X1"})
    assert redacted["hash"] == old["hash"] and redacted["metadata"] == old["metadata"]
    assert current == new
    assert [d for _, _, d in led.documents()] == [{"Name": "Ann", "License": "X2"}]
    # The journal: the old revision carries dataHash instead of data; the redacting block says
    # what it redacted and has no revision of its own; the chain is unchanged and valid.
    block = led.block(old["blockAddress"]["sequenceNo"])
    [rev] = block.revisions
    assert rev.raw is None and rev.data_hash == redacted["dataHash"]
    [_, record] = block.stream_records(led.stream_arn())
    assert "data" not in record["payload"]["revision"]
    assert record["payload"]["revision"]["dataHash"] == redacted["dataHash"]
    redacting = next(b for b in led.blocks(tip_before) if "redactionInfo" in b.payload)
    assert redacting.revisions == ()
    assert redacting.payload["redactionInfo"] == {
        "revisions": [{"blockAddress": dict(old["blockAddress"]), "tableId": table_id,
                       "documentId": doc_id, "version": 0}]
    }  # fmt: skip
    _chain_is_valid(led)


def test_what_may_not_be_redacted_is_refused_with_a_reason(led: Any) -> None:
    doc_id, table_id = _person(led)
    old, new = _history(led, doc_id)
    address = dict(old["blockAddress"])

    def refused(*args: Any, statement: str = "EXEC redact_revision ?, ?, ?") -> str:
        with pytest.raises(StatementError) as err:
            led.execute(statement, *args)
        return str(err.value)

    assert "latest revision" in refused(new["blockAddress"], table_id, doc_id)
    assert "not in table" in refused(address, "otherTableId00000000", doc_id)
    assert "no revision" in refused(address, table_id, "noSuchDocument00000000")
    assert "strand" in refused({**address, "strandId": "x"}, table_id, doc_id)
    assert "block address" in refused({"sequenceNo": 1}, table_id, doc_id)
    assert "takes 3 arguments" in refused(address, table_id, statement="EXEC redact_revision ?, ?")
    assert "no stored procedure" in refused(statement="EXEC drop_everything")
    tx = led.begin()
    tx.execute("EXEC redact_revision ?, ?, ?", address, table_id, doc_id)
    with pytest.raises(StatementError, match="one revision only"):
        tx.execute("EXEC redact_revision ?, ?, ?", address, table_id, doc_id)
    tx.commit()
    assert "already redacted" in refused(address, table_id, doc_id)
    # A deleted document's last revision is the deletion; the one before it is inactive.
    led.execute("DELETE FROM Person WHERE Name = 'Ann'")
    _, still, deleted = _history(led, doc_id)
    assert "latest revision" in refused(deleted["blockAddress"], table_id, doc_id)
    led.execute("EXEC redact_revision ?, ?, ?", still["blockAddress"], table_id, doc_id)
    assert [("dataHash" in h, "data" in h) for h in _history(led, doc_id)] == [
        (True, False), (True, False), (False, False)
    ]  # fmt: skip
    _chain_is_valid(led)


def test_the_literal_form_of_the_developer_guide_runs(led: Any) -> None:
    doc_id, table_id = _person(led)
    old, _ = _history(led, doc_id)
    seq = old["blockAddress"]["sequenceNo"]
    led.execute(
        f'EXEC REDACT_REVISION `{{strandId:"{led.strand_id}", sequenceNo:{seq}}}`, '
        f"'{table_id}', '{doc_id}'"
    )
    assert "dataHash" in _history(led, doc_id)[0]


def test_two_transactions_redacting_one_revision_conflict(led: Any) -> None:
    from ledger import OccConflict

    doc_id, table_id = _person(led)
    old, _ = _history(led, doc_id)
    t1, t2 = led.begin(), led.begin()
    for t in (t1, t2):
        t.execute("EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, doc_id)
    t1.commit()
    with pytest.raises(OccConflict):
        t2.commit()
    assert "dataHash" in _history(led, doc_id)[0]
