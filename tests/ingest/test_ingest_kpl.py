"""KPL aggregates: the real ones split into their user records, every kind of damage is refused
with a reason that says what is wrong, and the encoder round-trips."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import DYNAMODB_EVENT, ES_EVENT, PARTIAL, fixture, kinesis_data

from ingest import kpl
from journal.errors import DecodeError
from journal.ion_binary import BVM

pytestmark = pytest.mark.ingest_env


def _md5(body: bytes) -> bytes:
    return hashlib.md5(body, usedforsecurity=False).digest()


def _framed(body: bytes) -> bytes:
    """Magic + protobuf body + its correct MD5: only the protobuf is wrong, if anything."""
    return kpl.MAGIC + body + _md5(body)


def _v(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _v(field << 3 | 2) + _v(len(payload)) + payload


def _record(pki: int | None = 0, data: bytes | None = b"x", extra: bytes = b"") -> bytes:
    body = b""
    if pki is not None:
        body += _v(1 << 3 | 0) + _v(pki)
    if data is not None:
        body += _ld(3, data)
    return body + extra


def _reason(data: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        kpl.deaggregate(data)
    assert info.value.kind == "aggregate"
    return info.value.reason


@pytest.mark.parametrize(
    ("event", "keys"),
    [
        (
            DYNAMODB_EVENT,
            (
                "be86263c6e356fdfb6dcfed4d841139642347be377a0f2c211fe1a137956abc7",
                "24cd1c4a427f03dc968ba2687a608d2e8044ee4abd40ca4fd7e2d77968bc2596",
            ),
        ),
        (
            ES_EVENT,
            (
                "ff4c9527d7570d06af904faad3c6222c1d0c09c3b47eb5ee3b19bb08c54b323a",
                "c28f4225706099f8cffefbe41528ba996b8aa46a1cdf085ca21068ad1237e8ea",
            ),
        ),
    ],
)
def test_real_aggregates_split_into_two_ion_records_and_reencode_byte_for_byte(
    event: str, keys: tuple[str, str]
) -> None:
    data = kinesis_data(event)
    assert kpl.is_aggregate(data)
    users = kpl.deaggregate(data)
    assert [u.index for u in users] == [0, 1]
    assert tuple(u.partition_key for u in users) == keys
    assert all(u.data.startswith(BVM) for u in users)
    assert all(u.explicit_hash_key is None for u in users)
    # The encoder writes what the KPL wrote: the same bytes.
    assert kpl.aggregate([(u.partition_key, u.data) for u in users]) == data


def test_the_real_truncated_prefix_is_refused_as_truncated() -> None:
    lines = fixture(PARTIAL).read_text().splitlines()
    text = "".join(line.strip() for line in lines if line and not line.startswith("#"))
    # The quoted prefix is not even whole base64 quanta; the bytes it does hold are checked.
    data = base64.b64decode(text[: len(text) // 4 * 4], validate=True)
    assert kpl.is_aggregate(data)
    reason = _reason(data)
    assert reason.startswith("truncated: MD5 trailer missing"), reason
    assert "beyond end" in reason


def test_shorter_than_magic_and_trailer() -> None:
    assert _reason(kpl.MAGIC + b"\x0a\x01") == (
        "truncated: MD5 trailer missing (6 bytes, shorter than magic + MD5)"
    )


def test_cut_short_aggregate_is_truncated() -> None:
    data = kinesis_data(DYNAMODB_EVENT)
    for cut in (1, 3, 16, 17, 500):
        assert _reason(data[:-cut]).startswith("truncated:"), cut


def test_altered_byte_is_an_md5_mismatch() -> None:
    data = bytearray(kinesis_data(DYNAMODB_EVENT))
    data[300] ^= 0x01  # inside record 0's Ion data
    reason = _reason(bytes(data))
    assert reason.startswith("MD5 mismatch: trailer ")
    assert "content was altered" in reason


def test_trailing_garbage_is_named() -> None:
    data = kinesis_data(DYNAMODB_EVENT)
    assert _reason(data + b"\x00garbage") == (
        f"trailing garbage: 8 bytes after the MD5 trailer at offset {len(data) - 16}"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_ld(1, b"k") + b"\x1a\x80", "truncated varint (AggregatedRecord field 3 length)"),
        (_ld(1, b"k") + _v(3 << 3 | 2) + _v(4711) + b"abc", "field 3 length 4711 beyond end"),
        (_ld(1, b"k") + _v(3 << 3 | 3), "has wire type 3 (start-group), expected 2"),
        (_ld(1, b"k") + _v(3 << 3 | 6), "unknown wire type 6"),
        (_ld(1, b"k") + _v(9 << 3 | 2) + _v(0), "AggregatedRecord: unknown field 9"),
        (_ld(1, b"k") + _v(3 << 3 | 0) + _v(1), "field 3 at offset 7 has wire type 0 (varint)"),
        (_ld(1, b"k") + _ld(3, _record(pki=1)), "partition_key_index 1 is outside the partition"),
        (_ld(1, b"k") + _ld(3, _record(pki=None)), "records[0] has no partition_key_index"),
        (_ld(1, b"k") + _ld(3, _record(data=None)), "records[0] has no data (required)"),
        (_ld(1, b"k") + _ld(3, _record(extra=_ld(3, b"y"))), "records[0] repeats field 3"),
        (
            _ld(1, b"k") + _ld(3, _record(extra=_v(2 << 3) + _v(0))),
            "explicit_hash_key_index 0 is outside the explicit hash key table (0 entries)",
        ),
        (_ld(1, b"k") + _ld(3, _record(extra=_ld(4, _ld(2, b"v")))), "tags[0] has no key"),
        (_ld(1, b"k") + _ld(3, _record(extra=_ld(7, b""))), "records[0]: unknown field 7"),
        (_ld(1, b"\xff\xfe") + _ld(3, _record()), "partition_key_table[0] at offset 6 is not UTF"),
        (_ld(1, b"k"), "the aggregate holds no records"),
        (b"", "the aggregate holds no records"),
        (_ld(1, b"k") + b"\x00", "field number 0"),
        (_ld(1, b"k") + _v(3 << 3 | 2) + b"\xff" * 11, "longer than 10 bytes"),
    ],
)
def test_broken_protobuf_with_correct_md5_is_refused_with_its_reason(
    body: bytes, expected: str
) -> None:
    reason = _reason(_framed(body))
    assert reason.startswith("protobuf: "), reason
    assert expected in reason, reason


def test_well_formed_extras_are_accepted() -> None:
    # An explicit hash key and tags are legal; the user record gets its explicit hash key.
    rec = _record(extra=_v(2 << 3) + _v(0) + _ld(4, _ld(1, b"tag") + _ld(2, b"value")))
    users = kpl.deaggregate(_framed(_ld(1, b"pk") + _ld(2, b"12345") + _ld(3, rec)))
    assert users == (
        kpl.UserRecord(index=0, partition_key="pk", explicit_hash_key="12345", data=b"x"),
    )


def test_not_an_aggregate() -> None:
    assert not kpl.is_aggregate(BVM + b"\xd0")
    assert _reason(BVM) == "no KPL magic (starts with e00100ea)"


def test_encoder_needs_a_record() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        kpl.aggregate([])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "ü" * 70, ""]), st.binary(max_size=300)),
        min_size=1,
        max_size=8,
    )
)
def test_aggregate_round_trips(records: list[tuple[str, bytes]]) -> None:
    users = kpl.deaggregate(kpl.aggregate(records))
    assert [(u.partition_key, u.data) for u in users] == records
    assert [u.index for u in users] == list(range(len(records)))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_give_records_or_a_decode_error(body: bytes, fix_md5: bool) -> None:
    data = _framed(body) if fix_md5 else kpl.MAGIC + body
    try:
        users = kpl.deaggregate(data)
    except DecodeError as exc:
        assert exc.kind == "aggregate" and exc.reason
    else:
        assert fix_md5 and users


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_damaged_real_aggregate_is_never_passed_on(data: st.DataObject) -> None:
    real = kinesis_data(DYNAMODB_EVENT)
    pos = data.draw(st.integers(min_value=4, max_value=len(real) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    damaged = bytearray(real)
    damaged[pos] ^= flip
    with pytest.raises(DecodeError):
        kpl.deaggregate(bytes(damaged))
