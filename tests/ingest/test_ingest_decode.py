"""Decoding: one event holding good records and each kind of bad one; Firehose objects plain and
GZIP; Ion files; and a bounded fuzz of the decoder (only documented outcomes)."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import (
    DYNAMODB_EVENT,
    ES_EVENT,
    WALLET,
    altered,
    bad_records,
    binary,
    fixture,
    kinesis_data,
    kinesis_entry,
    real_user_records,
    seq_no,
)

from buffer.port import Incoming, Rejection
from ingest import kpl
from ingest.decode import (
    decode_bytes,
    decode_event,
    decode_file,
    decode_kinesis_data,
    decode_kinesis_event,
    decode_kinesis_record,
)
from journal.errors import InputError
from journal.ion_binary import BVM

pytestmark = pytest.mark.ingest_env

REJECTION_KINDS = {
    "base64",
    "aggregate",
    "gzip",
    "json",
    "ion",
    "record-type",
    "field",
    "oversized",
}


def test_one_event_with_good_and_every_kind_of_bad_record() -> None:
    good_aggregate = kinesis_data(ES_EVENT)
    wallet = binary(simpleion.loads(fixture(WALLET).read_text()))
    bad = bad_records()
    entries = [kinesis_entry(good_aggregate, seq=seq_no(0))]
    for i, (data, _, _) in enumerate(bad.values(), start=1):
        entries.append(kinesis_entry(data, seq=seq_no(i)))
    entries.append(kinesis_entry(wallet, seq=seq_no(len(entries))))
    decoded = decode_kinesis_event({"Records": entries})
    assert [d.sequence_number for d in decoded] == [seq_no(i) for i in range(len(entries))]
    # The good ones: both records of the aggregate and the plain wallet revision.
    assert [type(i) for i in decoded[0].items] == [Incoming, Incoming]
    assert [type(i) for i in decoded[-1].items] == [Incoming]
    # Each bad one: exactly one rejection of the expected kind and reason, its bytes kept.
    for (name, (data, kind, reason)), d in zip(bad.items(), decoded[1:-1], strict=True):
        (item,) = d.items
        assert isinstance(item, Rejection), name
        assert item.kind == kind, (name, item.reason)
        assert reason in item.reason, (name, item.reason)
        expected_raw = data.encode() if isinstance(data, str) else data
        assert item.raw == expected_raw, name
        assert item.origin == f"shardId-000000000000/{d.sequence_number}", name
        assert item.arrived_at is not None


def test_a_bad_user_record_inside_a_good_aggregate_loses_only_itself() -> None:
    block, revision = real_user_records()[:2]
    broken = altered(block, ("recordType",), "BLOCK")
    data = kpl.aggregate([("a", broken), ("b", revision)])
    items = decode_kinesis_data(data, origin="s/1")
    assert isinstance(items[0], Rejection) and items[0].kind == "record-type"
    assert items[0].origin == "s/1/0" and items[0].raw == broken
    assert isinstance(items[1], Incoming) and items[1].origin == "s/1/1"


def test_event_shapes() -> None:
    with pytest.raises(InputError, match="no Records list"):
        decode_event({"records": []})
    with pytest.raises(InputError, match="eventSource 'aws:dynamodb'"):
        decode_event({"Records": [{"eventSource": "aws:dynamodb", "dynamodb": {}}]})
    assert decode_event({"Records": []}) == []
    items = decode_event({"Records": [kinesis_entry(BVM, seq="1"), "junk"]})
    assert [getattr(i, "kind", None) for i in items] == ["ion", "json"]
    entry = kinesis_entry(real_user_records()[1], seq="5")
    entry["kinesis"]["subSequenceNumber"] = 3
    entry["kinesis"]["approximateArrivalTimestamp"] = "yesterday"
    (item,) = decode_event({"Records": [entry]})
    assert isinstance(item, Rejection) and item.kind == "json"
    assert item.origin == "shardId-000000000000/5/3"
    assert "approximateArrivalTimestamp is not a number" in item.reason


# --- Firehose objects and Ion files -------------------------------------------------------------


def test_firehose_object_plain_and_gzip(tmp_path: Path) -> None:
    records = real_user_records()
    obj = b"".join(records)
    for name, content in (("plain", obj), ("gz", gzip.compress(obj))):
        path = tmp_path / f"firehose-{name}"
        path.write_bytes(content)
        items = decode_file(path)
        assert all(isinstance(i, Incoming) for i in items)
        assert [i.raw for i in items] == records
        assert [i.origin for i in items] == [f"{path}#{n}" for n in range(4)]


def test_firehose_object_keeps_the_records_around_a_broken_one(tmp_path: Path) -> None:
    records = real_user_records()
    broken = records[1][: len(records[1]) // 2]  # cut in the middle of a value
    items = decode_bytes(records[0] + broken + records[2] + records[3], name="obj")
    assert [type(i).__name__ for i in items] == ["Incoming", "Rejection", "Incoming", "Incoming"]
    rejection = items[1]
    assert isinstance(rejection, Rejection) and rejection.kind == "ion"
    assert rejection.raw == broken
    assert f"at byte {len(records[0])}" in rejection.reason
    assert [i.raw for i in items if isinstance(i, Incoming)] == [records[0], *records[2:]]


def test_version_marker_bytes_inside_a_value_do_not_split_a_record() -> None:
    value = simpleion.loads(fixture(WALLET).read_text())
    value["payload"]["revision"]["data"]["note"] = BVM * 3
    record = binary(value)
    assert record.count(BVM) == 4
    items = decode_bytes(record + real_user_records()[0], name="obj")
    assert [type(i).__name__ for i in items] == ["Incoming", "Incoming"]
    assert items[0].raw == record


def test_several_records_after_one_version_marker(tmp_path: Path) -> None:
    values = [simpleion.loads(r) for r in real_user_records()[:2]]
    path = tmp_path / "two.ion"
    path.write_bytes(simpleion.dumps(values, binary=True, sequence_as_stream=True))
    items = decode_file(path)
    assert all(isinstance(i, Incoming) for i in items) and len(items) == 2
    direct = [decode_kinesis_data(r, origin="x")[0] for r in real_user_records()[:2]]
    assert [i.fingerprint for i in items] == [getattr(d, "fingerprint", None) for d in direct]


def test_corrupt_gzip_is_rejected_whole() -> None:
    content = gzip.compress(b"".join(real_user_records()))[:-12]
    (item,) = decode_bytes(content, name="obj.gz")
    assert isinstance(item, Rejection) and item.kind == "gzip"
    assert item.raw == content and item.origin == "obj.gz"


def test_ion_text_file_with_a_non_struct_value(tmp_path: Path) -> None:
    path = tmp_path / "mixed.ion"
    path.write_text(fixture(WALLET).read_text() + "\n42\n")
    items = decode_file(path)
    assert isinstance(items[0], Incoming)
    assert isinstance(items[1], Rejection) and items[1].kind == "ion"
    assert items[1].reason == "the top-level value is int, not a struct"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.ion", b"", "empty file"),
        ("other.json", b'{"a": 1}', "JSON, but not a Lambda Kinesis event"),
        ("junk.bin", b"\x00\xff\xfe\x80", "not UTF-8 text and no Ion version marker"),
        ("text.txt", b"hello, world", "neither a Lambda Kinesis event"),
        ("blank.ion", b"  \n", "Ion text without any value"),
    ],
)
def test_files_that_are_not_input(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        decode_file(path)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="cannot read"):
        decode_file("/nonexistent/file.json")


# --- fuzz ---------------------------------------------------------------------------------------


def _check(items: list[Any]) -> None:
    for item in items:
        assert isinstance(item, Incoming | Rejection)
        if isinstance(item, Rejection):
            assert item.kind in REJECTION_KINDS and item.reason


def _mutate(data: bytes, draw: st.DataObject) -> bytes:
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(min_value=1, max_value=4))):
        op = draw.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw.draw(st.integers(min_value=0, max_value=max(0, len(out) - 1)))
        if op == "flip" and out:
            out[pos] ^= draw.draw(st.integers(min_value=1, max_value=255))
        elif op == "cut":
            del out[pos : pos + draw.draw(st.integers(min_value=1, max_value=64))]
        else:
            out[pos:pos] = draw.draw(st.binary(min_size=1, max_size=8))
    return bytes(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_kinesis_records_give_only_documented_outcomes(data: st.DataObject) -> None:
    sources = [*real_user_records(), kinesis_data(DYNAMODB_EVENT)]
    source = data.draw(st.sampled_from(sources))
    payload = data.draw(
        st.one_of(
            st.builds(lambda d: _mutate(source, d), st.just(data)),
            st.binary(max_size=64).map(lambda b: BVM + b),
            st.binary(max_size=64).map(lambda b: kpl.MAGIC + b),
        )
    )
    as_text = data.draw(st.booleans())
    text = base64.b64encode(payload).decode() if not as_text else data.draw(st.text(max_size=40))
    decoded = decode_kinesis_record(kinesis_entry(text, seq="1"))
    assert decoded.items
    _check(list(decoded.items))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_files_give_items_or_input_error(data: st.DataObject) -> None:
    obj = b"".join(real_user_records())
    content = data.draw(
        st.one_of(
            st.builds(lambda d: _mutate(obj, d), st.just(data)),
            st.builds(lambda d: gzip.compress(_mutate(obj, d)), st.just(data)),
            st.builds(lambda d: _mutate(fixture(WALLET).read_bytes(), d), st.just(data)),
            st.binary(max_size=64),
        )
    )
    try:
        items = decode_bytes(content, name="fuzz")
    except InputError:
        return
    _check(items)


def test_the_ingest_path_imports_neither_ionhash_nor_pyqldb() -> None:
    script = (
        "import sys, json\n"
        "import handlers.ingest, ingest.service\n"
        "from ingest.decode import decode_file\n"
        f"decode_file({str(fixture(DYNAMODB_EVENT))!r})\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('ionhash', 'pyqldb', 'boto3', 'botocore', 'aws_lambda_powertools'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout) == []
