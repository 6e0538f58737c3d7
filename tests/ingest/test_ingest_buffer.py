"""The ingest core and the Lambda handler against a real SqliteBuffer (a file in a tmp dir)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from emf import emf_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import (
    DYNAMODB_EVENT,
    ES_EVENT,
    bad_records,
    binary,
    fixtures_dir,
    kinesis_data,
    kinesis_entry,
    kinesis_event,
    load_json,
    real_user_records,
    seq_no,
)

import handlers.ingest as ingest_handler
from buffer.port import Incoming, PutReport, Rejection, SettlingBuffer
from buffer.sqlite import SqliteBuffer
from ingest import kpl
from ingest.decode import decode_event, decode_kinesis_event
from ingest.service import IngestReport, ingest_items, ingest_paths
from runtime.distribution import distribution
from runtime.errors import TransientError

pytestmark = pytest.mark.ingest_env


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[SqliteBuffer]:
    buf = SqliteBuffer(tmp_path / "buffer.db")
    yield buf
    buf.close()


class FailingBuffer:
    """A real SqliteBuffer whose ``put`` raises TransientError from the ``fail_from``-th call on
    (a fault injector around the real adapter: nothing else can make SQLite fail on cue)."""

    def __init__(self, inner: SqliteBuffer, fail_from: int) -> None:
        self.inner = inner
        self.fail_from = fail_from
        self.calls = 0

    def put(self, records: Sequence[Incoming], rejections: Sequence[Rejection] = ()) -> PutReport:
        self.calls += 1
        if self.calls >= self.fail_from:
            raise TransientError(f"{self.inner.path}: the database is busy (injected)")
        return self.inner.put(records, rejections)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _accounted(report: IngestReport) -> int:
    put = report.put
    return (
        sum(put.stored.values())
        - put.stored.get("statements", 0)
        + (put.duplicates + put.conflicts + put.late + put.rejected)
    )


def test_real_event_stores_one_block_three_statements_one_revision(buffer: SqliteBuffer) -> None:
    items = decode_event(load_json(DYNAMODB_EVENT))
    first = ingest_items(buffer, items)
    assert first.records == 2
    assert first.put.stored == {"blocks": 1, "statements": 3, "revisions": 1, "control": 0}
    assert (first.put.duplicates, first.put.conflicts, first.put.rejected) == (0, 0, 0)
    assert first.received == {"BLOCK_SUMMARY": 1, "REVISION_DETAILS": 1}
    # Arrival 2020-07-03T20:36:44.342Z − commit 20:36:44.181Z (summary), 20:36:44.163Z (revision).
    assert first.ingest_delays_ms == pytest.approx([161.0, 179.0], abs=0.01)
    assert first.out_of_orderness == [0, 0]
    again = ingest_items(buffer, items)
    assert again.put.stored == {"blocks": 0, "statements": 0, "revisions": 0, "control": 0}
    assert again.put.duplicates == 2
    dump = buffer.dump()
    (block,) = dump["blocks"].values()
    assert block["statement_kinds"] == ["select", "parameterized", "parameterized"]
    assert block["sequence_no"] == 545 and block["state"] == "pending"
    assert [s["kind"] for s in dump["statements"].values()] == [
        "select", "parameterized", "parameterized",
    ]  # fmt: skip


def test_good_and_every_kind_of_bad_record_nothing_lost(buffer: SqliteBuffer) -> None:
    bad = bad_records()
    entries = [kinesis_entry(kinesis_data(ES_EVENT), seq=seq_no(0))]
    entries += [kinesis_entry(d, seq=seq_no(i)) for i, (d, _, _) in enumerate(bad.values(), 1)]
    entries.append(kinesis_entry(kinesis_data(DYNAMODB_EVENT), seq=seq_no(len(entries))))
    report = ingest_items(buffer, decode_event(kinesis_event(entries)), batch_size=3)
    # The good ones: two blocks and their revisions.
    assert report.put.stored == {"blocks": 2, "statements": 6, "revisions": 2, "control": 0}
    assert report.put.rejected == len(bad)
    assert report.records == 4 + len(bad)
    assert _accounted(report) == report.records  # every record counted exactly once
    # Each bad one listed with its reason and raw bytes.
    kept = {(r.kind, r.raw): r for r in buffer.rejected()}
    assert len(kept) == len(bad)
    for name, (data, kind, reason) in bad.items():
        raw = data.encode() if isinstance(data, str) else data
        assert (kind, raw) in kept, name
        assert reason in kept[(kind, raw)].reason, name
    assert buffer.unresolved_rejections() == len(bad)
    assert report.needs_attention


def test_out_of_orderness_and_batches(buffer: SqliteBuffer, synth: Any) -> None:
    blocks = synth.chain(4)
    values = [v for b in reversed(blocks) for v in b.values]  # newest block first
    entries = [kinesis_entry(binary(v), seq=seq_no(i)) for i, v in enumerate(values)]
    report = ingest_items(buffer, decode_event(kinesis_event(entries)), batch_size=1)
    assert report.out_of_orderness == [0, 0, 1, 1, 2, 2, 3, 3]
    assert report.put.stored["blocks"] == 4
    ledger = "eu-west-1:123456789012:synthetic-ledger"
    seeded = ingest_items(
        buffer,
        decode_event(kinesis_event(entries[-2:])),
        highest_seen={(ledger, synth.strand): 10},
    )
    assert seeded.out_of_orderness == [9, 9]
    assert distribution([5.0, 1.0, 3.0]) == {"p50": 3.0, "p99": 5.0, "max": 5.0}
    assert distribution([]) == {"p50": None, "p99": None, "max": None}
    with pytest.raises(ValueError, match="batch_size"):
        ingest_items(buffer, [], batch_size=0)


def test_transient_failure_stops_and_says_from_where(buffer: SqliteBuffer) -> None:
    items = decode_event(load_json(DYNAMODB_EVENT)) + decode_event(load_json(ES_EVENT))
    failing = FailingBuffer(buffer, fail_from=2)
    report = ingest_items(failing, items, batch_size=2)
    assert report.unstored_from == 2
    assert report.transient is not None and "busy (injected)" in report.transient
    assert report.records == 2 and report.put.stored["blocks"] == 1
    # Run again: what was stored is a duplicate, the rest is stored; nothing lost.
    again = ingest_items(buffer, items)
    assert (again.put.duplicates, again.put.stored["blocks"]) == (2, 1)


# --- the Lambda handler -------------------------------------------------------------------------


@pytest.fixture
def handler_buffer(buffer: SqliteBuffer) -> Iterator[SqliteBuffer]:
    ingest_handler.use_buffer(buffer)
    yield buffer
    ingest_handler.use_buffer(None)


def test_handler_keeps_rejected_records_without_failing_them(handler_buffer: SqliteBuffer) -> None:
    bad = bad_records()
    entries = [kinesis_entry(kinesis_data(ES_EVENT), seq=seq_no(0))]
    entries += [kinesis_entry(d, seq=seq_no(i)) for i, (d, _, _) in enumerate(bad.values(), 1)]
    response = ingest_handler.handler(kinesis_event(entries), None)
    assert response == {"batchItemFailures": []}
    assert len(handler_buffer.rejected()) == len(bad)
    assert handler_buffer.dump()["counts"]["blocks"]["pending"] == 1


def test_handler_reports_every_record_from_the_first_transient_failure(
    buffer: SqliteBuffer,
) -> None:
    records = real_user_records()
    entries = [kinesis_entry(r, seq=seq_no(i)) for i, r in enumerate(records)]
    failing = FailingBuffer(buffer, fail_from=1)
    ingest_handler.use_buffer(failing)
    try:
        response = ingest_handler.handler(kinesis_event(entries), None)
    finally:
        ingest_handler.use_buffer(None)
    assert response == {"batchItemFailures": [{"itemIdentifier": seq_no(i)} for i in range(4)]}
    assert buffer.dump()["counts"]["blocks"]["pending"] == 0


def test_handler_failure_in_a_later_batch_names_only_the_records_from_there(
    buffer: SqliteBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = real_user_records()
    # Kinesis record 0: an aggregate of two user records; then two plain ones.
    entries = [
        kinesis_entry(kpl.aggregate([("a", records[0]), ("b", records[1])]), seq=seq_no(0)),
        kinesis_entry(records[2], seq=seq_no(1)),
        kinesis_entry(records[3], seq=seq_no(2)),
    ]
    monkeypatch.setattr(ingest_handler, "ingest_items", _small_batches)
    failing = FailingBuffer(buffer, fail_from=2)  # batches of one item: the 2nd put fails
    ingest_handler.use_buffer(failing)
    try:
        response = ingest_handler.handler(kinesis_event(entries), None)
    finally:
        ingest_handler.use_buffer(None)
    # Puts are whole Kinesis records: the aggregate (a batch of its own) was stored, so the
    # retry starts at the record of the failed put.
    assert response == {"batchItemFailures": [{"itemIdentifier": seq_no(i)} for i in (1, 2)]}


def _small_batches(buffer: SettlingBuffer, items: Sequence[Any], **options: Any) -> Any:
    return ingest_items(buffer, items, batch_size=1, **options)


def test_puts_are_made_of_whole_kinesis_records(buffer: SqliteBuffer) -> None:
    """``units``: batches never split a Kinesis record, so the first unstored item is the first
    of a record; a record larger than a batch is a batch of its own."""
    items = decode_event(load_json(DYNAMODB_EVENT)) + decode_event(load_json(ES_EVENT))
    sizes: list[int] = []

    class Sizes(FailingBuffer):
        def put(self, records: Sequence[Incoming], rejections: Sequence[Rejection] = ()) -> Any:
            sizes.append(len(records) + len(rejections))
            return super().put(records, rejections)

    report = ingest_items(Sizes(buffer, fail_from=3), items, batch_size=2, units=[1, 2, 1])
    assert sizes == [1, 2, 1]  # [1] [2] alone (1 + 2 > 2), then the third put fails
    assert report.unstored_from == 3 and report.records == 3
    with pytest.raises(ValueError, match="do not add up"):
        ingest_items(buffer, items, units=[1, 1])


def test_a_retried_kinesis_record_is_counted_once_by_the_invocation_that_stores_it(
    buffer: SqliteBuffer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kinesis redelivers the failed records; their metrics are published by the invocation that
    acknowledges them, so RecordsReceived adds up to the records sent, and no retry counts
    as a duplicate."""
    pytest.importorskip("aws_lambda_powertools")
    records = real_user_records()
    entries = [
        kinesis_entry(kpl.aggregate([("a", records[0]), ("b", records[1])]), seq=seq_no(0)),
        kinesis_entry(records[2], seq=seq_no(1)),
        kinesis_entry(records[3], seq=seq_no(2)),
    ]
    monkeypatch.setattr(ingest_handler, "ingest_items", _small_batches)
    ingest_handler.use_buffer(FailingBuffer(buffer, fail_from=2))
    try:
        first = ingest_handler.handler(kinesis_event(entries), None)
        ingest_handler.use_buffer(buffer)
        failed = {f["itemIdentifier"] for f in first["batchItemFailures"]}
        again = ingest_handler.handler(
            kinesis_event([e for e in entries if e["kinesis"]["sequenceNumber"] in failed]), None
        )
    finally:
        ingest_handler.use_buffer(None)
    assert failed == {seq_no(1), seq_no(2)} and again == {"batchItemFailures": []}
    sums = {name: sum(v) for name, v in emf_values(capsys.readouterr().out).items()}
    assert sums["RecordsReceived"] == len(records)
    assert sums["Duplicates"] == 0
    assert sums["RecordsRetried"] == 2  # the first invocation handed two back, the second none
    assert sums["StatementsBuffered"] + sums["RevisionsBuffered"] > 0


class _Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_with_no_time_left_the_batch_is_answered_with_failures_not_a_timeout(
    handler_buffer: SqliteBuffer,
) -> None:
    """The deadline (remaining time less the margin) comes before the first put: every record
    is reported for retry and the handler answers in time; with time left, all is stored."""
    entries = [kinesis_entry(r, seq=seq_no(i)) for i, r in enumerate(real_user_records())]
    late = ingest_handler.handler(kinesis_event(entries), _Context(remaining_ms=1_500))
    assert late == {"batchItemFailures": [{"itemIdentifier": seq_no(i)} for i in range(4)]}
    assert handler_buffer.dump()["counts"]["blocks"]["pending"] == 0
    assert ingest_handler.seconds_left(_Context(1_500)) == 0.0
    assert ingest_handler.seconds_left(_Context(60_000)) == 54.0  # a tenth kept back
    assert ingest_handler.seconds_left(_Context(200_000)) == 190.0  # at most 10 s
    assert ingest_handler.seconds_left(None) is None
    on_time = ingest_handler.handler(kinesis_event(entries), _Context(remaining_ms=60_000))
    assert on_time == {"batchItemFailures": []}
    assert handler_buffer.dump()["counts"]["blocks"]["pending"] == 2


def test_handler_composition_root_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("QLDB_SETTLE_BUFFER", f"sqlite:{path}")
    ingest_handler.use_buffer(None)
    try:
        assert ingest_handler.handler(load_json(DYNAMODB_EVENT), None) == {"batchItemFailures": []}
        first = ingest_handler._buffer.get()
        assert ingest_handler._buffer.get() is first  # cached across invocations
    finally:
        ingest_handler._buffer.get().close()
        ingest_handler.use_buffer(None)
    reopened = SqliteBuffer(path)
    assert reopened.dump()["counts"]["statements"] == 3
    reopened.close()


# --- files --------------------------------------------------------------------------------------


def test_ingest_paths_over_the_fixture_folder(buffer: SqliteBuffer) -> None:
    calls: list[tuple[int, int, int]] = []
    report = ingest_paths(
        buffer, [fixtures_dir()], progress=lambda d, t, r: calls.append((d, t, r))
    )
    unreadable = sorted(Path(f).name for f, _ in report.unreadable)
    assert unreadable == [
        "INDEX.md",
        "amazon-qldb-driver-nodejs-issue-405__aggregated_record_prefix.PARTIAL.txt",
        "qldb-bicycle-licence-sam__streams-dynamodb__msg.json",
    ]
    total = sum(p.stat().st_size for p in fixtures_dir().iterdir())
    assert calls[0] == (0, total, 0) and calls[-1] == (total, total, report.records)
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)
    assert [r for _, _, r in calls] == sorted(r for _, _, r in calls)
    assert report.files == len(list(fixtures_dir().iterdir())) - 3
    # The two aggregated events and their derived views are the same two blocks.
    assert report.put.stored["blocks"] == 3  # simple-demo 545 and 7551, DMV block 3
    assert report.put.rejected == 4 + 4  # four base64 reprs, four trimmed samples
    assert _accounted(report) == report.records


# --- the property -------------------------------------------------------------------------------


def _content(buf: SqliteBuffer) -> dict[str, Any]:
    dump = dict(buf.dump())
    dump.pop("provenance")  # which copy, from where: depends on the KPL grouping by design
    return json.loads(json.dumps(dump, sort_keys=True, default=str))  # type: ignore[no-any-return]


def _stream_records(synth: Any) -> list[bytes]:
    """User records of several blocks on one strand plus the real ones and bad ones."""
    synthetic = [binary(v) for b in synth.chain(3, start=20) for v in b.values]
    bad = [binary({"recordType": "BLOCK"}), b"\xe0\x01\x00\xea\xde\x9f"]
    return synthetic + real_user_records() + bad


_REFERENCE: dict[str, dict[str, Any]] = {}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_order_repetition_grouping_and_split_gives_the_same_buffer(
    synth: Any, data: st.DataObject
) -> None:
    records = _stream_records(synth)
    with tempfile.TemporaryDirectory() as tmp:
        if "expected" not in _REFERENCE:  # every record once, in order, in one batch
            reference = SqliteBuffer(Path(tmp) / "reference.db")
            entries = [kinesis_entry(r, seq=seq_no(i)) for i, r in enumerate(records)]
            ingest_items(reference, decode_event(kinesis_event(entries)))
            _REFERENCE["expected"] = _content(reference)
            reference.close()
        expected = _REFERENCE["expected"]
        assert expected["counts"]["blocks"]["pending"] == 5 and expected["counts"]["rejected"] == 2

        copies = data.draw(
            st.lists(st.integers(min_value=1, max_value=3), min_size=len(records),
                     max_size=len(records))
        )  # fmt: skip
        stream = [r for r, n in zip(records, copies, strict=True) for _ in range(n)]
        stream = data.draw(st.permutations(stream))
        # Group into Kinesis records: each a plain record or a KPL aggregate of several.
        entries, i, seq = [], 0, 0
        while i < len(stream):
            size = data.draw(st.integers(min_value=1, max_value=4))
            group = stream[i : i + size]
            i += size
            payload = group[0] if len(group) == 1 and data.draw(st.booleans()) else (
                kpl.aggregate([(f"pk{j}", r) for j, r in enumerate(group)])
            )  # fmt: skip
            arrival = 1700000000.0 + seq
            entries.append(kinesis_entry(payload, seq=seq_no(seq), arrival=arrival))
            seq += 1
        # Split into Lambda batches, each put in batches of some size.
        buf = SqliteBuffer(Path(tmp) / "buffer.db")
        j = 0
        while j < len(entries):
            n = data.draw(st.integers(min_value=1, max_value=6))
            decoded = decode_kinesis_event(kinesis_event(entries[j : j + n]))
            items = [it for d in decoded for it in d.items]
            batch = data.draw(st.integers(min_value=1, max_value=5))
            report = ingest_items(buf, items, batch_size=batch)
            assert report.unstored_from is None
            j += n
        assert _content(buf) == expected
        buf.close()
