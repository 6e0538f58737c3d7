"""The one pass over a user record's bytes (``journal.ion_binary.one_pass``, used first by
``ingest.decode``) gives exactly what the general path gives (structure check, amazon.ion's parse
or the fast reader, ``record_from_ion``, ``record_fingerprint``): the same records, the same
fingerprints (stored fingerprints stay comparable, so a re-delivered duplicate is still a
duplicate), the same documents (as encoded, and as stored: the one pass hands the buffer the
document's own bytes, ``RevisionDetails.data_ion``, which read back as the general path's
document), and, since it hands every record it does not read to the
general path, the same rejections with the same reasons. It reads every real record.

Both runs are the real decoder: the one pass is switched off by ``ingest.decode.ONE_PASS``."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.simple_types import IonPySymbol
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import (
    DYNAMODB_EVENT,
    ES_EVENT,
    altered,
    bad_records,
    binary,
    fixtures_dir,
    kinesis_data,
    kinesis_entry,
    real_user_records,
)
from ingest_strategies import ion_values, mutate

from buffer._common import RevisionParts, decode_data, encode_data
from buffer.port import Incoming, Rejection
from ingest import decode
from journal import canonical
from journal.ion_binary import check, decode_all
from journal.ion_binary.one_pass import read_fields, read_record
from journal.records import RevisionDetails

pytestmark = pytest.mark.ingest_env


@contextmanager
def one_pass(on: bool) -> Iterator[None]:
    saved = decode.ONE_PASS
    decode.ONE_PASS = on
    try:
        yield
    finally:
        decode.ONE_PASS = saved


def strict(v: Any) -> Any:
    """A revision's document as everything its values carry: class, Ion type, annotations, field
    order and repeats, timestamp precision and offset, decimal digits (IonPyNull has no ``==``)."""
    cls = type(v).__name__
    ann = tuple(getattr(v, "ion_annotations", ()))
    t = getattr(v, "ion_type", None)
    if isinstance(v, Mapping):
        return (cls, t, ann, [(k, strict(x)) for k, x in v.items()])
    if isinstance(v, list):
        return (cls, t, ann, [strict(x) for x in v])
    if isinstance(v, datetime):
        return (cls, t, ann, v.isoformat(), v.utcoffset(), v.precision, v.fractional_precision,
                v.fractional_seconds)  # fmt: skip
    if cls == "IonPyNull":
        return (cls, t, ann)
    return (cls, t, ann, repr(v))


def outcome(items: Any) -> list[tuple[Any, ...]]:
    """Everything an item carries that the buffer stores or compares."""
    out: list[tuple[Any, ...]] = []
    for item in items:
        if isinstance(item, Incoming):
            rec = item.record
            data: Any = None
            if isinstance(rec, RevisionDetails):
                stored = RevisionParts.of(rec).data  # the document as the buffer stores it
                data = (encode_data(rec.data), strict(rec.data), strict(decode_data(stored)))
                rec = dataclasses.replace(rec, data=None)
            out.append(
                (
                    "incoming", rec, rec.record_id, item.fingerprint, item.statement_kinds,
                    item.raw, item.origin, item.arrived_at, data,
                )
            )  # fmt: skip
        else:
            assert isinstance(item, Rejection)
            out.append(("rejection", item.kind, item.reason, item.raw, item.origin))
    return out


def both(fn: Any, *args: Any, **kwargs: Any) -> tuple[list[tuple[Any, ...]], ...]:
    with one_pass(True):
        fast = outcome(fn(*args, **kwargs))
    with one_pass(False):
        general = outcome(fn(*args, **kwargs))
    return fast, general


def record_items(entry: dict[str, Any]) -> tuple[Any, ...]:
    return decode.decode_kinesis_record(entry).items


def fixture_records() -> list[bytes]:
    """The Ion binary of every valid stream record of the real fixtures (events, Ion files)."""
    out: list[bytes] = []
    with one_pass(False):
        for path in sorted(fixtures_dir().iterdir()):
            try:
                items = decode.decode_file(path)
            except Exception:  # a fixture that is not input (INDEX.md, a fragment)
                continue
            out.extend(i.raw for i in items if isinstance(i, Incoming))
    return out


VARIED_DATA = {
    "flag": True, "off": False, "one": 1, "neg": -7, "big": 2**70, "nn": None,
    "dec": Decimal("1.50"), "zero": Decimal("0"), "f": 1e0, "f0": 0.0, "s": "h\u00e9llo",
    "day": simpleion.loads("2020-07-03T"), "year": simpleion.loads("2020T"),
    "ms": simpleion.loads("2020-07-03T20:36:44.181-07:00"), "blob": b"\x00\x01",
    "nested": {"deep": [{"x": -0.0}, [], {}]}, "long": "x" * 300,
    "tn": simpleion.loads("null.string"),
}  # fmt: skip


def varied_revision() -> bytes:
    revision = real_user_records()[1]
    return altered(revision, ("payload", "revision", "data"), VARIED_DATA)


def test_every_real_record_is_read_in_one_pass_as_the_general_path_reads_it() -> None:
    records = [*real_user_records(), *fixture_records(), varied_revision()]
    assert len(records) > 15
    for data in records:
        fields = read_fields(data)
        assert fields is not None  # the one pass reads it (it is not just handed on)
        check(data)
        general = decode_all(data)[0]
        # each field's canonical bytes are journal.canonical's encoding of amazon.ion's value
        for name, _, item in fields:
            enc: list[bytes] = []
            canonical._enc(general[name], enc)
            key = name.encode()
            assert item == b"%d:%b=" % (len(key), key) + b"".join(enc), name
        assert canonical.record_fingerprint_of_fields(fields) == canonical.record_fingerprint(
            general
        )
        fast, plain = both(decode.decode_kinesis_data, data, origin="o")
        assert fast == plain and fast[0][0] == "incoming"


def test_the_stored_document_is_the_records_own_bytes() -> None:
    """What the one pass hands the buffer for a revision's document is the record's version
    marker and symbol table, then the document's bytes as received: valid Ion binary reading as
    the document (strictly: types, precision, field order), which the buffer stores instead of
    writing the document again; a deletion has none."""
    revisions = [
        r for r in [*real_user_records(), *fixture_records(), varied_revision()]
        if b"REVISION_DETAILS" in r
    ]  # fmt: skip
    assert len(revisions) > 5
    kept = 0
    for raw in revisions:
        read = read_record(raw)
        assert read is not None
        _, document = read
        with one_pass(True):
            item = decode.decode_kinesis_data(raw, origin="o")[0]
        assert isinstance(item, Incoming) and isinstance(item.record, RevisionDetails)
        rec = item.record
        if rec.data is None:
            assert document is None or rec.data_ion is None
            assert RevisionParts.of(rec).data is None
            continue
        assert document is not None and rec.data_ion == document
        kept += 1
        shared = next(i for i, (a, b) in enumerate(zip(document, raw, strict=False)) if a != b)
        assert shared >= 4 and document[shared:] in raw[shared:]  # the record's own bytes
        check(document)
        assert strict(decode_all(document)[0]) == strict(rec.data)
        general = decode_all(raw)[0]["payload"]["revision"]["data"]
        assert strict(decode_data(RevisionParts.of(rec).data)) == strict(general)
        assert RevisionParts.of(rec).data == document  # stored as received, not re-encoded
    assert kept > 3


def test_real_events_and_fixture_files_decode_alike() -> None:
    for name in (DYNAMODB_EVENT, ES_EVENT):
        fast, plain = both(decode.decode_kinesis_data, kinesis_data(name), origin="o")
        assert fast == plain and [f[0] for f in fast] == ["incoming", "incoming"]
    files = sorted(p for p in fixtures_dir().iterdir() if p.suffix in (".ion", ".json", ".txt"))
    assert len(files) > 10
    for path in files:
        try:
            fast, plain = both(decode.decode_file, path)
        except Exception as exc:  # not input at all: both paths must say so alike
            with one_pass(False), pytest.raises(type(exc)):
                decode.decode_file(path)
            continue
        assert fast == plain, path.name
    firehose = b"".join([*real_user_records(), varied_revision()])
    fast, plain = both(decode.decode_bytes, firehose, name="firehose")
    assert fast == plain and len(fast) == 5


def test_bad_records_are_rejected_with_the_same_reasons() -> None:
    for name, (data, kind, reason) in bad_records().items():
        if isinstance(data, str):
            fast, plain = both(record_items, kinesis_entry(data, seq="1"))
        else:
            fast, plain = both(decode.decode_kinesis_data, data, origin="o")
        assert fast == plain, name
        assert any(f[0] == "rejection" and f[1] == kind and reason in f[2] for f in fast), name


def test_what_the_one_pass_leaves_to_the_general_path() -> None:
    block, revision = real_user_records()[:2]
    data = ("payload", "revision", "data")
    rare = {
        "a symbol": altered(revision, data, {"s": IonPySymbol("abc", None, None)}),
        "annotations": binary(simpleion.loads('a::{recordType: "CONTROL"}')),
        "a repeated field": bytes(simpleion.dumps(simpleion.loads("{a: 1, a: 2}"), binary=True)),
        "a bool outside the document": altered(block, ("payload", "flag"), True),
        "a decimal outside the document": altered(block, ("payload", "d"), Decimal("1.5")),
        "a fraction finer than a microsecond": altered(
            block, ("payload", "blockTimestamp"), simpleion.loads("2020-07-03T20:36:44.1234567Z")
        ),
        "two values": block + revision[4:],
        "a mistyped field": altered(revision, ("payload", "revision", "metadata", "version"), "0"),
        "deep nesting": altered(revision, data, _nest(60)),
    }
    for name, payload in rare.items():
        with one_pass(True):
            assert decode._one_pass_item(payload, origin="o", arrived_at=None) is None, name
        fast, plain = both(decode.decode_kinesis_data, payload, origin="o")
        assert fast == plain, name


def _nest(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"x": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


documents = st.dictionaries(st.text(max_size=8), ion_values, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_generated_documents_decode_alike(document: dict[str, Any]) -> None:
    payload = altered(real_user_records()[1], ("payload", "revision", "data"), document)
    fast, plain = both(decode.decode_kinesis_data, payload, origin="o")
    assert fast == plain


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_records_give_the_same_outcome(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from([*real_user_records(), varied_revision()]))
    payload = mutate(source, data)
    fast, plain = both(decode.decode_kinesis_data, payload, origin="o")
    assert fast == plain
    entry = kinesis_entry(base64.b64encode(payload).decode(), seq="1")
    fast_entry, plain_entry = both(record_items, entry)
    assert fast_entry == plain_entry


def test_a_decimal_beyond_decimal128_reads_as_the_general_path_reads_it() -> None:
    """Found by the mutation test above in the ingest env: amazon.ion 0.15's C extension clamps a
    decimal's exponent to decimal128's (``0d16406`` reads as ``0E+6111``); the one pass leaves
    such a decimal to the general path, so both give one fingerprint and one stored document."""
    source = varied_revision()
    assert source.count(b"\x53\xc2\x00\x96") == 1  # 1.50 in the generated document
    payload = source.replace(b"\x53\xc2\x00\x96", b"\x53\x01\x00\x96")  # 0d16406
    fast, plain = both(decode.decode_kinesis_data, payload, origin="o")
    assert fast == plain
