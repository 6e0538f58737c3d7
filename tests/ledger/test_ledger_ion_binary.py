"""The ledger's Ion binary codec reads and writes the same values amazon.ion does."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType, Timestamp, TimestampPrecision
from amazon.ion.simple_types import IonPyNull
from hypothesis import given, settings
from hypothesis import strategies as st

from journal.ion_binary import decode, encode
from ledger.hashing import ion_hash, ionhash_reference, text_hash


def strict(v: Any) -> Any:
    """A comparable form keeping everything Ion distinguishes: types, annotations, precision."""
    t = getattr(v, "ion_type", None)
    ann = tuple(str(getattr(a, "text", a)) for a in (getattr(v, "ion_annotations", ()) or ()))
    if v is None or isinstance(v, IonPyNull):
        return ("null", t, ann)
    if t is IonType.STRUCT:
        return ("struct", ann, sorted((str(k), repr(strict(x))) for k, x in v.iteritems()))
    if t in (IonType.LIST, IonType.SEXP):
        return (t, ann, [strict(x) for x in v])
    if t is IonType.TIMESTAMP:
        return (
            t, ann, v.isoformat(), v.utcoffset(), getattr(v, "precision", None),
            getattr(v, "fractional_seconds", None), getattr(v, "fractional_precision", None),
        )  # fmt: skip
    if t is IonType.FLOAT:
        return (t, ann, "nan" if math.isnan(v) else float(v).hex())
    if t is IonType.DECIMAL:
        return (t, ann, str(v))
    if t is IonType.SYMBOL:
        return (t, ann, v.text, v.sid if v.text is None else None)
    return (t, ann, type(v).__mro__[1].__name__, v)


SAMPLES = [
    '{VIN: "1N4AL11D75C109151", P: 90.25, D: 2017-08-21T, O: {P: {I: "x"}, S: []}}',
    "null", "null.string", "null.struct", "a::b::{x: c::1}", "-0.0", "0.", "-0d0", "0d-3",
    "12.50", "1e0", "-0e0", "nan", "+inf", "-inf", "-1.5e-300", "1.23456789012345678901234567890",
    "2021-09-16T10:00:00.000Z", "2021-09-16T10:00:00.123456789-07:30", "2021T", "2021-01T",
    "2021-01-01T", "2021-01-01T10:00Z", "2007-02-23T12:14:33.079-08:00",
    "2021-09-16T10:00:00-00:00", "2000-01-01T00:00:00.0Z", "{{aGVsbG8=}}", '{{"clob"}}',
    "(a b c)", "'sym'", "$0", "{a:1, a:2}", "[1, -1, 18446744073709551616, -18446744073709551616]",
    "true", "false", "null.bool", "{}", "[]", '""', '"\u00e9t\u00e9 \U0001f600"',
]  # fmt: skip


@pytest.mark.parametrize("text", SAMPLES)
def test_codec_agrees_with_amazon_ion(text: str) -> None:
    value = simpleion.loads(text)
    ours = encode(value)
    reference = simpleion.dumps(value, binary=True)
    expected = strict(simpleion.loads(reference))
    assert strict(decode(ours)) == expected  # our writer, our reader
    assert strict(simpleion.loads(ours)) == expected  # our writer, amazon.ion's reader
    assert strict(decode(reference)) == expected  # amazon.ion's writer, our reader


def test_plain_python_values_are_written_like_amazon_ion_writes_them() -> None:
    value = {
        "s": "x", "i": -7, "d": Decimal("1.10"), "f": 2.5, "b": True, "n": None, "l": [1, "a"],
        "t": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "blob": b"\x00\x01",
        "ts": Timestamp(2024, 1, 2, precision=TimestampPrecision.DAY),
    }  # fmt: skip
    assert strict(decode(encode(value))) == strict(
        simpleion.loads(simpleion.dumps(value, binary=True))
    )


def test_decoded_values_are_simpleion_values_with_annotations() -> None:
    value = decode(encode(simpleion.loads("{a: [x::1, 2.0], b: 'c'}")))
    assert value.ion_type is IonType.STRUCT and value.ion_annotations == ()
    assert [a.text for a in value["a"][0].ion_annotations] == ["x"]  # SymbolTokens, as simpleion
    assert value["a"][1].ion_type is IonType.DECIMAL
    assert value["b"].ion_type is IonType.SYMBOL


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.binary(max_size=8),
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(_values)
def test_codec_round_trips_generated_values(value: Any) -> None:
    reference = simpleion.loads(simpleion.dumps(value, binary=True))
    assert strict(decode(encode(value))) == strict(reference)
    assert strict(simpleion.loads(encode(value))) == strict(reference)


# --- the ledger's Ion hash against the ionhash package ----------------------------------------


@pytest.mark.parametrize("text", SAMPLES)
def test_ion_hash_equals_the_ionhash_package(text: str) -> None:
    value = simpleion.loads(text)
    expected = ionhash_reference(value)
    assert expected is not None, "ionhash is in the pinned set"
    assert ion_hash(value) == expected


def test_ion_hash_of_plain_values_and_strings() -> None:
    value = {"a": [1, Decimal("2.50"), None], "b": "x\x0bx", "t": datetime(2024, 1, 1, tzinfo=UTC)}
    assert ion_hash(value) == ionhash_reference(value)
    assert ion_hash("SELECT * FROM T") == ionhash_reference("SELECT * FROM T")
    assert ion_hash("SELECT * FROM T") == text_hash("SELECT * FROM T")
    assert ion_hash({"a": 1, "b": 2}) == ion_hash({"b": 2, "a": 1})  # field order is not hashed
    assert ion_hash({"a": 1}) != ion_hash({"a": Decimal(1)})  # types are


@settings(max_examples=150, deadline=None)
@given(_values)
def test_ion_hash_equals_the_ionhash_package_on_generated_values(value: Any) -> None:
    assert ion_hash(value) == ionhash_reference(value)


_ion_timestamps = st.builds(
    lambda d, cut, frac, offset: simpleion.loads(
        f"{d.year:04d}-{d:%m-%dT%H:%M:%S}"[: (4, 7, 10, 16, 19, 19)[cut]]
        + ("T" if cut < 3 else "")
        + (f".{frac}" if cut == 5 and frac else "")
        + ("" if cut < 3 else offset)
    ),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.integers(min_value=0, max_value=5),
    st.sampled_from(["", "0", "000", "123", "120", "123456", "123456789", "5"]),
    st.sampled_from(["Z", "-00:00", "+05:30", "-08:00", "+00:00"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ion_timestamps, min_size=1, max_size=3))
def test_timestamps_of_every_precision_and_offset_hash_and_encode_like_amazon_ion(
    values: list[Any],
) -> None:
    ion = simpleion.loads(simpleion.dumps(values, binary=True))
    assert ion_hash(ion) == ionhash_reference(ion)
    assert strict(decode(encode(ion))) == strict(ion)
    assert strict(simpleion.loads(encode(ion))) == strict(ion)


def _annotate(value: Any, names: list[str]) -> Any:
    """``value`` (simpleion values) with annotations put on its containers and scalars in turn,
    nulls and symbol-typed strings among them (the types ``ion_hash`` reads by class first)."""
    out = [0]

    def walk(v: Any) -> None:
        if isinstance(v, IonPyNull) or not hasattr(v, "ion_annotations"):
            return
        k = out[0] = out[0] + 1
        if names and k % 2:
            v.ion_annotations = tuple(names[: 1 + k % len(names)])
        if v.ion_type is IonType.STRUCT:
            for _, x in v.iteritems():
                walk(x)
        elif v.ion_type in (IonType.LIST, IonType.SEXP):
            for x in v:
                walk(x)

    walk(value)
    return value


@settings(max_examples=150, deadline=None)
@given(_values, st.lists(st.text(min_size=1, max_size=4), max_size=3))
def test_ion_hash_of_decoded_values_equals_the_ionhash_package(
    value: Any, names: list[str]
) -> None:
    # Decoded revisions are simpleion values (IonPyText, IonPyDict, ...): ion_hash dispatches on
    # their class first; with annotations, or a class holding another Ion type (a symbol in an
    # IonPyText, a bool in an IonPyInt), it must still give the package's hash.
    decoded = _annotate(decode(encode(value)), names)
    assert ion_hash(decoded) == ionhash_reference(decoded)
    assert ion_hash(decode(encode(value))) == ion_hash(value)


@pytest.mark.parametrize("text", SAMPLES)
def test_ion_hash_of_decoded_samples_equals_the_ionhash_package(text: str) -> None:
    decoded = decode(encode(simpleion.loads(text)))
    assert (
        ion_hash(decoded) == ionhash_reference(decoded) == ionhash_reference(simpleion.loads(text))
    )
