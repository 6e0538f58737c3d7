"""The fingerprint's fast paths (exact IonPy strings, ints, structs, lists) give the same bytes as
its general branches, so fingerprints stored in existing buffers still match."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amazon.ion import simpleion

from journal import canonical
from journal.ion_binary import decode_all

RECORD = simpleion.dumps(
    {
        "qldbStreamArn": "arn:aws:qldb:us-east-1:1:stream/ledger/abc",
        "recordType": "BLOCK_SUMMARY",
        "payload": {
            "blockAddress": {"strandId": "S", "sequenceNo": 12},
            "statements": [{"statement": "INSERT INTO T VALUE {'a': 1}", "startTime": None}],
            "n": -5,
            "big": 2**70,
            "list": [1, "x", [True, False], {"k": "v"}],
            "text": "h\u00e9llo",
        },
    },
    binary=True,
)


def _nested(value: Any) -> list[Any]:
    out = [value]
    if isinstance(value, Mapping):
        for v in value.values():
            out.extend(_nested(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_nested(v))
    return out


def _general(value: Any) -> bytes:
    out: list[bytes] = []
    canonical._enc_general(value, out)
    return b"".join(out)


def _fast(value: Any) -> bytes:
    out: list[bytes] = []
    canonical._enc(value, out)
    return b"".join(out)


def test_fast_paths_equal_general_branches() -> None:
    for loaded in (decode_all(RECORD)[0], simpleion.loads(RECORD)):
        values = _nested(loaded)
        assert len(values) > 15
        for v in values:
            assert _fast(v) == _general(v), v


def test_fingerprint_of_known_record_is_unchanged() -> None:
    # Computed by the fingerprint before the fast paths existed (both amazon.ion versions).
    assert canonical.record_fingerprint(decode_all(RECORD)[0]) == EXPECTED


EXPECTED = "ba52bb0d3abf9766fb1159044fd2220adf5db60ee6002865b42b88aff3e763e6"
