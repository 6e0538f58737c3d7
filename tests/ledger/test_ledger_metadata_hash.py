"""``ledger.hashing.metadata_hash`` (a revision's metadata struct hashed without building it) gives
the Ion hash of the struct itself, and ionhash's answer, for every timestamp precision and offset,
ids with bytes the Ion hash escapes, and versions of any size; the settler's plain ``dict``
metadata hashes and encodes as the typed simpleion struct it replaced."""

from __future__ import annotations

from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyDict, IonPyInt, IonPyText, IonPyTimestamp
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ledger_ion_binary import _ion_timestamps

from journal.ion_binary import encode
from journal.records import RevisionMetadata
from ledger.blocks import ion_time
from ledger.hashing import ion_hash, ionhash_reference, metadata_hash
from settler.block_checks import metadata_struct


def _typed(doc_id: str, version: int, tx_time: Any, tx_id: str) -> Any:
    """The metadata struct as typed simpleion values (what verification built before)."""
    return IonPyDict.from_value(
        IonType.STRUCT,
        {
            "id": IonPyText.from_value(IonType.STRING, doc_id),
            "version": IonPyInt.from_value(IonType.INT, version),
            "txTime": IonPyTimestamp.from_value(IonType.TIMESTAMP, tx_time),
            "txId": IonPyText.from_value(IonType.STRING, tx_id),
        },
    )


_ids = st.text(min_size=0, max_size=30) | st.sampled_from(["\x0b\x0c\x0e", "ÄÖ€", "7a1B2c3D"])


@settings(max_examples=200, deadline=None)
@given(_ids, st.integers(min_value=0, max_value=2**70), _ion_timestamps, _ids)
def test_metadata_hash_is_the_ion_hash_of_the_struct(
    doc_id: str, version: int, tx_time: Any, tx_id: str
) -> None:
    typed = _typed(doc_id, version, tx_time, tx_id)
    expected = ionhash_reference(typed)
    assert expected is not None, "ionhash is in the pinned set"
    assert ion_hash(typed) == expected
    assert metadata_hash(doc_id, version, tx_time, tx_id) == expected


def test_each_field_changes_the_hash() -> None:
    t = ion_time(1_700_000_000_123)
    base = metadata_hash("doc", 3, t, "tx")
    assert metadata_hash("dox", 3, t, "tx") != base
    assert metadata_hash("doc", 4, t, "tx") != base
    assert metadata_hash("doc", 3, ion_time(1_700_000_000_124), "tx") != base
    assert metadata_hash("doc", 3, t, "ty") != base
    # precision is part of the timestamp's hash: the same instant to the second is another value
    same_instant = simpleion.loads("2023-11-14T22:13:20.123Z")
    coarser = simpleion.loads("2023-11-14T22:13:20.1230Z")
    assert metadata_hash("doc", 3, same_instant, "tx") != metadata_hash("doc", 3, coarser, "tx")


@settings(max_examples=100, deadline=None)
@given(_ids, st.integers(min_value=0, max_value=10**6), _ion_timestamps, _ids)
def test_the_plain_metadata_struct_hashes_and_encodes_as_the_typed_one(
    doc_id: str, version: int, tx_time: Any, tx_id: str
) -> None:
    meta = RevisionMetadata(id=doc_id, version=version, tx_time=tx_time, tx_id=tx_id)
    plain = metadata_struct(meta)
    typed = _typed(doc_id, version, tx_time, tx_id)
    assert ion_hash(plain) == ion_hash(typed)
    assert encode(plain) == encode(typed)  # PostgreSQL's qldb_history stores this encoding
