"""The ingest decoder gives the same outcome with the fast Ion reader (journal.ion_binary) as with
simpleion alone: equal records, ids and fingerprints for valid records, the same rejection (kind
and reason) for invalid ones. ``journal.ion_binary.check`` still runs first either way.

The reader is switched by setting ``journal.ion_binary.FAST_READER`` (read at each call) for the
duration of one decode: both runs are the real decoder, nothing is mocked. Both compare with
amazon.ion's Python reader (``simpleion.c_ext = False``), the one the fast reader mirrors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from amazon.ion import simpleion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import (
    DYNAMODB_EVENT,
    ES_EVENT,
    bad_records,
    kinesis_data,
    kinesis_entry,
    real_user_records,
)
from ingest_strategies import mutate

import journal.ion_binary as codec
from buffer.port import Incoming, Rejection
from ingest import decode
from ingest.decode import decode_bytes, decode_kinesis_data, decode_kinesis_record

pytestmark = pytest.mark.ingest_env

VARIED = simpleion.dumps(
    simpleion.loads(
        """{
  qldbStreamArn:
    "arn:aws:qldb:ap-northeast-1:670756400362:stream/test-wallet/0FyCS5aYSysK7aD7h8wvp3",
  recordType: "REVISION_DETAILS",
  payload: {
    tableInfo: { tableName: "Wallet", tableId: "AYj94Ipn0re4Fr2PDgadpl" },
    revision: {
      blockAddress: { strandId: "A2mzwAutFNnJm2ho9nls4q", sequenceNo: 27 },
      hash: {{KGQhnyXb/BltXwCY9WPc0y1B8JLk/ok6w5YiaKweOvc=}},
      data: {
        sym: abc, ann: unit::1, flag: true, tn: null.string, nn: null, year: 2020T,
        ms: 2020-07-03T20:36:44.181-07:00, dec: 1.50, f: 1e0, list: [a::b, (x y)],
        clob: {{"text"}}, nested: { deep: [ { x: -0.0 } ] }, dup: 1, dup: 2
      },
      metadata: { id: "59NbC9MoyMw4vsTsoNROxX", version: 1,
                  txTime: 2023-09-23T07:45:11.121Z, txId: "GE2lVViZmSY6QHl0OmvsmN" }
    }
  }
}"""
    ),
    binary=True,
)


@contextmanager
def reader(fast: bool) -> Iterator[None]:
    """The fast reader (for what it takes) or amazon.ion's Python reader alone. In the ingest
    environment amazon.ion's C extension is switched off for both runs: ``decode`` uses it there
    instead of the fast reader, and it differs from the Python reader on a few inputs (see
    tests/journal/test_journal_ion_binary.py)."""
    saved, saved_c, saved_one = codec.FAST_READER, simpleion.c_ext, decode.ONE_PASS
    # the one pass (tests/ingest/test_ingest_one_pass.py) off: both runs take the general path
    codec.FAST_READER, simpleion.c_ext, decode.ONE_PASS = fast, False, False
    try:
        yield
    finally:
        codec.FAST_READER, simpleion.c_ext, decode.ONE_PASS = saved, saved_c, saved_one


def summary(items: Any) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for item in items:
        if isinstance(item, Incoming):
            out.append(
                (
                    "incoming", type(item.record).__name__, item.record.record_id,
                    item.fingerprint, item.statement_kinds, item.raw, item.origin,
                )
            )  # fmt: skip
        else:
            assert isinstance(item, Rejection)
            out.append(("rejection", item.kind, item.reason, item.raw, item.origin))
    return out


def record_items(entry: dict[str, Any]) -> tuple[Any, ...]:
    return decode_kinesis_record(entry).items


def both(fn: Any, *args: Any, **kwargs: Any) -> tuple[list[tuple[Any, ...]], ...]:
    with reader(True):
        fast = summary(fn(*args, **kwargs))
    with reader(False):
        plain = summary(fn(*args, **kwargs))
    return fast, plain


def test_real_and_varied_records_decode_alike() -> None:
    records = [*real_user_records(), VARIED]
    for data in records:
        fast, plain = both(decode_kinesis_data, data, origin="o")
        assert fast == plain
        assert fast[0][0] == "incoming"
    for name in (DYNAMODB_EVENT, ES_EVENT):
        fast, plain = both(decode_kinesis_data, kinesis_data(name), origin="o")
        assert fast == plain and [f[0] for f in fast] == ["incoming", "incoming"]
    fast, plain = both(decode_bytes, b"".join(records), name="firehose")
    assert fast == plain and len(fast) == len(records)


def test_bad_records_are_rejected_alike() -> None:
    for name, (data, kind, _) in bad_records().items():
        if isinstance(data, str):
            fast, plain = both(record_items, kinesis_entry(data, seq="1"))
        else:
            fast, plain = both(decode_kinesis_data, data, origin="o")
        assert fast == plain, name
        assert any(f[0] == "rejection" and f[1] == kind for f in fast), name


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_records_give_the_same_outcome(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from([*real_user_records(), VARIED]))
    payload = mutate(source, data)
    fast, plain = both(decode_kinesis_data, payload, origin="o")
    assert fast == plain
    entry = kinesis_entry(base64.b64encode(payload).decode(), seq="1")
    fast_entry, plain_entry = both(record_items, entry)
    assert fast_entry == plain_entry
