"""The shared Ion binary codec reads exactly what amazon.ion reads, and nothing it refuses.

``read_fast`` is the fast reader alone; ``decode``/``decode_all`` are what callers use (the fast
reader, or simpleion for whatever it does not take). Each property is checked against
``simpleion.loads`` on generated values, hand-made edge cases and mutated real records, in both
environments (amazon.ion 0.9.3 here; 0.15 with its C extension in the ingest environment, where
``decode`` uses simpleion itself and the fast reader is still held to the same answers).
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyNull
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import journal.ion_binary as codec
from ingest import kpl
from journal.ion_binary import IonBinaryError, IonCodecError, check, decode, decode_all, read_fast
from tests.ingest.ingest_strategies import mutate

pytestmark = pytest.mark.ingest_env

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "real"
C_EXTENSION = codec._c_extension_active()


def _token(t: Any) -> Any:
    text = getattr(t, "text", t)
    if C_EXTENSION:  # values of the C extension carry neither sids nor import locations
        return (text, None if text is not None else getattr(t, "sid", None))
    return (text, getattr(t, "sid", None), getattr(t, "location", None))


@contextmanager
def pure_python() -> Iterator[None]:
    """amazon.ion's own Python reader (0.9.3 has no other; 0.15 skips its C extension), which
    the fast reader mirrors. The C extension differs from it on a few inputs (a timestamp fraction
    of more than nine digits, the value after an empty symbol table), and ``decode`` does not use
    the fast reader where the C extension is active."""
    global C_EXTENSION
    saved, saved_flag = simpleion.c_ext, C_EXTENSION
    simpleion.c_ext, C_EXTENSION = False, False
    try:
        yield
    finally:
        simpleion.c_ext, C_EXTENSION = saved, saved_flag


def strict(v: Any) -> Any:
    """Everything amazon.ion's values carry: class, Ion type, annotations (as symbol tokens),
    field order and repeats, timestamp precision and offset, decimal digits, float bits."""
    assert hasattr(v, "ion_annotations"), f"{type(v).__name__} without ion_annotations"
    t = v.ion_type
    head = (type(v).__name__, t, tuple(_token(a) for a in v.ion_annotations))
    if isinstance(v, IonPyNull):
        return (*head, "null")
    if t is IonType.STRUCT:
        return (*head, [(k, strict(x)) for k, x in v.iteritems()])
    if t in (IonType.LIST, IonType.SEXP):
        return (*head, [strict(x) for x in v])
    if t is IonType.TIMESTAMP:
        return (
            *head, v.isoformat(), v.utcoffset(), v.tzinfo is None, v.precision,
            v.fractional_seconds, v.fractional_precision,
        )  # fmt: skip
    if t is IonType.FLOAT:
        return (*head, "nan" if math.isnan(v) else float(v).hex())
    if t is IonType.DECIMAL:
        return (*head, v.as_tuple())
    if t is IonType.SYMBOL:
        return (*head, _token(v))
    if t in (IonType.BLOB, IonType.CLOB):
        return (*head, bytes(v))
    return (*head, type(v).__mro__[1].__name__, v)


def outcome(fn: Any, data: bytes) -> Any:
    """``strict`` of the value, or the exception type raised."""
    try:
        return ("value", strict(fn(data)))
    except Exception as exc:
        return ("raised", type(exc).__name__)


def simpleion_outcome(data: bytes) -> Any:
    if C_EXTENSION:
        try:
            check(data)  # the C extension can hang on malformed binary (ion_binary/structure.py)
        except IonBinaryError:
            return ("raised", "IonBinaryError")
    return outcome(simpleion.loads, data)


def assert_fast_reader_agrees(data: bytes) -> None:
    """The fast reader either refuses (``decode`` then asks simpleion) or gives the value
    amazon.ion's Python reader gives; ``decode`` always gives simpleion's outcome."""
    with pure_python():
        expected = outcome(simpleion.loads, data)
        try:
            fast = strict(read_fast(data))
        except IonCodecError:
            pass
        else:
            assert expected == ("value", fast)
    expected = simpleion_outcome(data)
    if expected != ("raised", "IonBinaryError"):
        assert outcome(decode, data) == expected


def real_records() -> tuple[bytes, ...]:
    if not FIXTURES.is_dir():
        pytest.skip(f"real fixtures not found at {FIXTURES} (../shared/fixtures/real)")
    return _real_records()


@functools.lru_cache(maxsize=1)
def _real_records() -> tuple[bytes, ...]:
    out = []
    for name in (
        "qldb-simple-demo__streams-dynamodb__data.json",
        "qldb-simple-demo__streams-es__data.json",
    ):
        for record in json.loads((FIXTURES / name).read_text())["Records"]:
            data = base64.b64decode(record["kinesis"]["data"])
            out += [u.data for u in kpl.deaggregate(data)] if kpl.is_aggregate(data) else [data]
    for path in sorted(FIXTURES.glob("*.ion")):
        value = simpleion.loads(path.read_text(), single_value=False)
        out += [simpleion.dumps(v, binary=True) for v in value]
    return tuple(out)


def test_the_reader_is_chosen_by_the_c_extension() -> None:
    assert codec.FAST_READER is (not C_EXTENSION)
    # one Ion binary reader: the ledger's shim and the ingest's second walker are gone
    assert importlib.util.find_spec("ledger.ion_binary") is None
    assert importlib.util.find_spec("ingest.ionbin") is None


def test_real_records_read_fast_as_amazon_ion_reads_them() -> None:
    records = real_records()
    assert len(records) >= 10
    for data in records:
        with pure_python():
            assert strict(read_fast(data)) == strict(simpleion.loads(data))
        assert [strict(v) for v in decode_all(data)] == [
            strict(v) for v in simpleion.loads(data, single_value=False)
        ]


SAMPLES = [
    '{VIN: "1N4AL11D75C109151", P: 90.25, D: 2017-08-21T, O: {P: {I: "x"}, S: []}}',
    "null", "null.string", "null.struct", "null.list", "a::b::{x: c::1, y: d::null.int}",
    "-0.0", "0.", "-0d0", "0d-3", "12.50", "-12.50", "1e0", "-0e0", "nan", "+inf", "-inf",
    "-1.5e-300", "1.23456789012345678901234567890", "123456789012345678901234567890d-40",
    "2021-09-16T10:00:00.000Z", "2021-09-16T10:00:00.123456789-07:30", "2021T", "2021-01T",
    "2021-01-01T", "2021-01-01T10:00Z", "2007-02-23T12:14:33.079-08:00",
    "2021-09-16T10:00:00-00:00", "2000-01-01T00:00:00.0Z", "2000-01-01T00:00:00.000000Z",
    "{{aGVsbG8=}}", '{{"clob"}}', "{{}}", "(a b c)", "'sym'", "[x::'$ion', $ion_symbol_table]",
    "{a:1, a:2, b:[], c:(), d:{}}", "[1, -1, 18446744073709551616, -18446744073709551616]",
    "true", "false", "null.bool", "{}", "[]", '""', '"\u00e9t\u00e9 \U0001f600"', "[true, false]",
    '{"$ion_symbol_table": {symbols: ["x"]}, x: 1}', "$ion_symbol_table::[1]",
]  # fmt: skip


@pytest.mark.parametrize("text", SAMPLES)
def test_samples_written_by_amazon_ion(text: str) -> None:
    data = simpleion.dumps(simpleion.loads(text), binary=True)
    assert_fast_reader_agrees(data)


# Hand-made streams: what the fast reader takes (True) and what it leaves to simpleion (False).


def tv(tid: int, body: bytes | str) -> bytes:
    """A typed value: type descriptor, length, body (hex text or bytes)."""
    raw = bytes.fromhex(body) if isinstance(body, str) else body
    if len(raw) < 14:
        return bytes((tid << 4 | len(raw),)) + raw
    assert len(raw) < 128
    return bytes((tid << 4 | 14, 0x80 | len(raw))) + raw


def lst(*symbols: bytes, fields: bytes = b"") -> bytes:
    """A local symbol table ``$ion_symbol_table::{<fields> symbols: [...]}``."""
    return tv(0xE, b"\x81\x83" + tv(0xD, fields + b"\x87" + tv(0xB, b"".join(symbols))))


def text(t: str) -> bytes:
    return tv(8, t.encode())


BVM = codec.BVM
X = lst(text("x"))  # "x" is symbol id 10
EDGES: dict[str, tuple[bytes, bool]] = {
    "one int": (BVM + tv(2, "01"), True),
    "struct with a local symbol": (BVM + X + tv(0xD, "8a20"), True),
    # (amazon.ion 0.15's C extension gives the value after it the table's annotation)
    "empty symbol table": (BVM + tv(0xE, b"\x81\x83" + tv(0xD, "")) + tv(0xD, "8420"), False),
    "repeated field names": (BVM + X + tv(0xD, "8a208a2101"), True),
    "annotated nested null": (BVM + X + tv(0xD, "84" + tv(0xE, "818a0f").hex()), True),
    "field name symbol zero": (BVM + tv(0xD, "8020"), False),
    "unknown symbol id": (BVM + tv(0xD, "8b20"), False),
    "NOP pad inside a struct": (BVM + tv(0xD, "8401008520"), False),
    "NOP pad at the top": (BVM + bytes.fromhex("00") + tv(2, "01"), False),
    "sorted struct": (BVM + bytes.fromhex("d1828420"), False),
    "four-byte float": (BVM + tv(4, "3f800000"), False),
    "symbol zero value": (BVM + bytes.fromhex("70"), False),
    "system symbol value": (BVM + tv(7, "01"), False),
    "top-level $ion_1_0 as a local symbol": (BVM + lst(text("$ion_1_0")) + tv(7, "0a"), False),
    "two symbol tables": (BVM + X + X + tv(0xD, "8a20"), False),
    "symbol table only": (BVM + X, False),
    "version marker twice": (BVM + BVM + tv(2, "01"), False),
    "two values": (BVM + tv(2, "01") + tv(2, "02"), False),
    "symbol table importing the previous one": (
        BVM + X + lst(text("y"), fields=bytes.fromhex("867103")) + tv(0xD, "8b20"),
        False,
    ),
    "symbol table with a null symbol": (BVM + lst(bytes.fromhex("8f")) + tv(0xD, "8a20"), False),
    "symbol table with an int symbol": (BVM + lst(tv(2, "01")) + tv(0xD, "8a20"), False),
    "symbol table with another field": (
        BVM + lst(text("x"), fields=bytes.fromhex("842101")) + tv(0xD, "8a20"),
        False,
    ),
    "annotated top-level value": (BVM + tv(0xE, "81842101"), True),
    "top-level value annotated $ion_symbol_table": (BVM + tv(0xE, "81832101"), False),
    "bool 0x12": (BVM + bytes.fromhex("12"), False),
    "negative zero int": (BVM + tv(3, "00"), False),
    "negative zero int without bytes": (BVM + bytes.fromhex("30"), False),
    "decimal with an exponent out of range": (BVM + tv(5, "0c0000ff01"), False),
    # (amazon.ion 0.15's C extension reads this fraction as 1.81E-7)
    "timestamp fraction of 18 digits": (BVM + tv(6, "800fd08181808080d200b5"), True),
    "timestamp month 13": (BVM + tv(6, "800fd08d81"), False),
    "timestamp missing its minute": (BVM + tv(6, "800fd081818a"), False),
    "timestamp VarUInt past its end": (BVM + tv(6, "800f50"), False),
    "empty timestamp": (BVM + bytes.fromhex("60"), False),
    "decimal exponent past its end": (BVM + tv(5, "0001"), False),
    "struct value past the struct": (BVM + bytes.fromhex("d2842101"), False),
    "annotation wrapper around a pad": (BVM + tv(0xD, "84" + tv(0xE, "818400").hex()), False),
    "annotation wrapper around a wrapper": (
        BVM + tv(0xD, "84" + tv(0xE, "8184" + tv(0xE, "818420").hex()).hex()),
        False,
    ),
    "annotation wrapper holding two values": (
        BVM + tv(0xD, "84" + tv(0xE, "81842020").hex()),
        False,
    ),
    "string that is not UTF-8": (BVM + tv(8, "c328"), False),
    "reserved type": (BVM + bytes.fromhex("f0"), False),
    "truncated": (BVM + bytes.fromhex("d48482"), False),
    "Ion text": (b"{a:1}", False),
}


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edge_cases_either_fast_and_equal_or_left_to_simpleion(name: str) -> None:
    data, fast = EDGES[name]
    if fast:
        read_fast(data)
    else:
        with pytest.raises(IonCodecError):
            read_fast(data)
    assert_fast_reader_agrees(data)


# --- generated values ---------------------------------------------------------------------------

_names = st.text(min_size=0, max_size=6)
_annotations = st.lists(st.text(min_size=1, max_size=4), max_size=2)
_offsets: st.SearchStrategy[Any] = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=-7, minutes=-30))]
)
_timestamps = st.builds(
    lambda d, text: simpleion.loads(d.isoformat().replace("+00:00", "Z") if text else "2020T"),
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 1, 1), timezones=_offsets
    ).filter(lambda d: d.tzinfo is not None),
    st.booleans(),
)
_ion_text_scalars = st.sampled_from(
    [
        "null.int", "null.timestamp", "null.sexp", "abc", "'with space'", "1d5", "-0d-2",
        "{{\"c\"}}", "2020-02-29T", "2020-01-01T00:00-00:00", "2020-01-01T23:59:59.5+01:00",
        "1.0e300", "-inf", "nan",
    ]
).map(simpleion.loads)  # fmt: skip
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.binary(max_size=8),
    _timestamps,
    _ion_text_scalars,
)


def _annotated(value: Any, annotations: list[str]) -> Any:
    if annotations and value is not None:
        ion = simpleion.loads(simpleion.dumps(value, binary=True))
        ion.ion_annotations = tuple(annotations)
        return ion
    return value


_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_names, inner, max_size=4),
        st.builds(_annotated, inner, _annotations),
    ),
    max_leaves=14,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_generated_values_read_as_amazon_ion_reads_them(value: Any) -> None:
    data = simpleion.dumps(value, binary=True)
    assert strict(decode(data)) == strict(simpleion.loads(data))
    with pure_python():
        assert strict(read_fast(data)) == strict(simpleion.loads(data))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_what_encode_writes_reads_back_alike(value: Any) -> None:
    data = codec.encode(value)
    with pure_python():
        assert strict(read_fast(data)) == strict(simpleion.loads(data))


# --- mutated records ----------------------------------------------------------------------------


def _mutate(data: bytes, draw: st.DataObject) -> bytes:
    """A mutation of a record's bytes that keeps its Ion version marker."""
    return mutate(data, draw, keep=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_records_are_refused_by_both_or_read_alike(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(real_records()))
    assert_fast_reader_agrees(_mutate(source, data))


# --- copies -------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_copies_are_exactly_the_round_trip(value: Any) -> None:
    data = simpleion.dumps(value, binary=True)
    for original in (value, decode(data), simpleion.loads(data)):
        copied = codec.copy_value(original)
        assert strict(copied) == strict(decode(codec.encode(original)))
        if isinstance(original, list | dict) or hasattr(original, "iteritems"):
            assert copied is not original  # a private copy the caller may change


def _varint(n: int) -> bytes:
    """A signed VarInt (the exponent of an Ion decimal), sign bit in the first byte."""
    magnitude, groups = abs(n), []
    while True:
        groups.append(magnitude & 0x7F)
        magnitude >>= 7
        if not magnitude:
            break
    groups.reverse()
    if groups[0] & 0x40:
        groups.insert(0, 0)
    groups[0] |= 0x40 if n < 0 else 0
    groups[-1] |= 0x80
    return bytes(groups)


@settings(max_examples=300, deadline=None)
@given(
    st.booleans(),
    st.one_of(st.integers(0, 2**24), st.integers(0, 2**2000)),
    st.integers(-99_999, 99_999),
)
def test_a_decimal_read_from_its_text_is_the_digit_tuples(
    negative: bool, coefficient: int, exponent: int
) -> None:
    """The reader builds a decimal from ``<sign><digits>E<exponent>`` text (parsed in C), not a
    digit tuple: the same sign, digits and exponent (a zero coefficient, and the sign of a
    negative zero, keep the tuple form); the timestamp's fraction takes the exponent read."""
    from decimal import Decimal

    from journal.ion_binary import reader

    magnitude = coefficient.to_bytes(max(1, (coefficient.bit_length() + 8) // 8), "big")
    body = _varint(exponent) + bytes((magnitude[0] | (0x80 if negative else 0),)) + magnitude[1:]
    value, read_exponent = reader._decimal_and_exponent(body, 0, len(body))
    digits = tuple(map(int, str(coefficient)))
    expected = Decimal((1 if negative else 0, digits, exponent))
    assert value.as_tuple() == expected.as_tuple() and read_exponent == exponent
    assert reader._decimal_value(body, 0, len(body)).as_tuple() == expected.as_tuple()


def test_timestamps_share_one_tzinfo_per_offset() -> None:
    """The fast reader's timestamps of one offset share one ``OffsetTZInfo`` (it holds no state
    of a value): the offset, the instant and the text are each timestamp's own."""
    from amazon.ion.core import OffsetTZInfo

    from journal.ion_binary import reader

    texts = ("2020-07-03T20:36:44.181-07:00", "2021-01-01T00:00:00.5-07:00")
    a, b = (read_fast(simpleion.dumps(simpleion.loads(t), binary=True)) for t in texts)
    assert isinstance(a.tzinfo, OffsetTZInfo) and a.tzinfo is b.tzinfo
    assert a.utcoffset() == b.utcoffset() == timedelta(hours=-7)
    assert a.isoformat() == "2020-07-03T20:36:44.181000-07:00"
    assert b.isoformat() == "2021-01-01T00:00:00.500000-07:00"
    assert reader._offset_tz(0).utcoffset(None) == timedelta(0)
