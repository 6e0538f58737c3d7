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
