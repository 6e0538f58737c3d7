"""The export-ingest Lambda handler (``handlers.export``): an export in S3 into the buffer, and
resumed where it stopped when its invocation runs out of time.

Exports are written by the simulator (``qldb_settle.simulate``) or the export tests' builder
(several small objects per strand) and uploaded to a bucket; the buffer is a real SQLite file.
moto (``moto.mock_aws``) stands in for S3, because no real S3 can be had here; the Lambda
context is a small stand-in with ``get_remaining_time_in_millis``, as Lambda passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moto", reason="the export handler tests need moto (the main environment)")

from export_helpers import LEDGER_ARN, export, source_ledger
from moto import mock_aws

import handlers.export as export_handler
from buffer.sqlite import SqliteBuffer
from handlers.export import ResumingStore, handler
from ingest.export.service import LedgerRef, ingest_export
from ingest.export.store import FolderStore
from journal.errors import InputError
from qldb_settle.simulate import SimulationConfig, simulate
from runtime.errors import TransientError

BUCKET = "exports-111122223333"
REGION = "eu-west-1"


class Context:
    """Remaining time that falls by ``step_ms`` each time it is asked."""

    def __init__(self, start_ms: int, step_ms: int = 0) -> None:
        self.left, self.step = start_ms, step_ms

    def get_remaining_time_in_millis(self) -> int:
        self.left -= self.step
        return self.left


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv(export_handler.EXPORT_ENV, raising=False)
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        export_handler.use_s3(client)
        yield client
    export_handler.use_s3(None)


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[SqliteBuffer]:
    buf = SqliteBuffer(tmp_path / "buffer.db")
    export_handler.use_buffer(buf)
    yield buf
    export_handler.use_buffer(None)
    buf.close()


def upload(client: Any, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())


def block_ids(buf: SqliteBuffer) -> list[str]:
    return sorted(row.block_id for row in buf.blocks())


@pytest.mark.parametrize("fmt", ["ION_TEXT", "ION_BINARY", "JSON"])
def test_a_simulated_export_in_s3_is_ingested_in_one_invocation(
    tmp_path: Path, s3: Any, buffer: SqliteBuffer, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    sim = simulate(tmp_path / "sim", SimulationConfig(transactions=20, seed=1, export_format=fmt))
    info = sim.stats["export"]
    folder = Path(info["path"])
    upload(s3, folder, "journalExport")
    monkeypatch.setenv(export_handler.EXPORT_ENV, f"s3://{BUCKET}/journalExport")
    monkeypatch.setenv(export_handler.LEDGER_ARN_ENV, info["ledger_arn"])

    out = handler({}, Context(900_000))

    assert out["done"] is True and out["transient"] is None
    assert out["needs_attention"] is False, out
    assert out["totals"]["blocks"] == info["blocks"] > 0
    assert out["totals"]["problems"] == 0
    # the same blocks as the command line's ingest of the folder
    expected = SqliteBuffer(tmp_path / "expected.db")
    report = ingest_export(expected, FolderStore(folder), LedgerRef.from_arn(info["ledger_arn"]))
    ids = block_ids(expected)
    expected.close()
    assert report.problems == [] and block_ids(buffer) == ids
    # every object of every strand is done
    assert sum(out["resume"].values()) == info["objects"]
    # running it again stores nothing new (duplicates)
    again = handler({}, Context(900_000))
    assert again["done"] is True and again["totals"]["problems"] == 0
    assert again["invocation"]["blocks"] == info["blocks"] and block_ids(buffer) == ids


def test_out_of_time_it_stops_between_objects_and_resumes_where_it_stopped(
    tmp_path: Path, s3: Any, buffer: SqliteBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = source_ledger(tmp_path / "source.db", transactions=30)
    info = export(ledger, tmp_path / "journalExport", "ION_BINARY", blocks_per_object=3)
    ledger.close()
    assert info["objects"] >= 6
    upload(s3, tmp_path / "journalExport", "exports/journalExport")
    monkeypatch.setenv(export_handler.LEDGER_ARN_ENV, LEDGER_ARN)
    event: dict[str, Any] = {"export": f"s3://{BUCKET}/exports/journalExport"}

    # Each object costs 100 s of a 900 s invocation; below the 120 s margin it stops.
    outputs = []
    for _ in range(10):
        out = handler(event, Context(900_000, step_ms=100_000))
        outputs.append(out)
        if out["done"]:
            break
        event = out
    assert [o["done"] for o in outputs][-1] is True and len(outputs) >= 2
    first = outputs[0]
    assert first["transient"] is None and 0 < sum(first["resume"].values()) < info["objects"]
    assert all(o["invocation"]["objects"] > 0 for o in outputs)
    # every object read once: none skipped, none read twice
    assert sum(o["invocation"]["objects"] for o in outputs) == info["objects"]
    assert outputs[-1]["totals"]["problems"] == 0 and not outputs[-1]["needs_attention"]

    expected = SqliteBuffer(tmp_path / "expected.db")
    ingest_export(expected, FolderStore(tmp_path / "journalExport"), LedgerRef.from_arn(LEDGER_ARN))
    assert block_ids(buffer) == block_ids(expected)
    assert len(block_ids(buffer)) == info["blocks"]
    assert buffer.rejected() == []
    expected.close()


def test_a_transient_buffer_failure_resumes_at_the_object_it_failed(
    tmp_path: Path, s3: Any, buffer: SqliteBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = source_ledger(tmp_path / "source.db", transactions=12)
    info = export(ledger, tmp_path / "journalExport", "ION_TEXT", blocks_per_object=3)
    ledger.close()
    upload(s3, tmp_path / "journalExport", "journalExport")
    monkeypatch.setenv(export_handler.LEDGER_ARN_ENV, LEDGER_ARN)
    event: dict[str, Any] = {"export": f"s3://{BUCKET}/journalExport"}

    real_put = buffer.put
    calls = {"n": 0}

    def flaky_put(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise TransientError("buffer unavailable")
        return real_put(*args, **kw)

    monkeypatch.setattr(buffer, "put", flaky_put)
    out = handler(event, Context(900_000))
    assert out["done"] is False and out["transient"] == "buffer unavailable"
    assert sum(out["resume"].values()) == 1  # the first object is buffered, the second is not
    out = handler(out, Context(900_000))
    assert out["done"] is True and out["transient"] is None
    assert len(block_ids(buffer)) == info["blocks"]
    assert buffer.rejected() == []


def test_a_put_cut_by_the_hard_deadline_is_a_transient_stop_resumed_at_that_object(
    tmp_path: Path, s3: Any, buffer: SqliteBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every buffer request keeps to the invocation's hard deadline (``runtime.deadline``, the
    remaining time less ``HARD_MARGIN_MS``). The buffer here checks it as the OpenSearch client
    does, on a clock each put moves by 300 s: the third put finds it gone, the run stops at
    that object, and the next invocation goes on from there."""
    import time

    from runtime import deadline

    ledger = source_ledger(tmp_path / "source.db", transactions=12)
    info = export(ledger, tmp_path / "journalExport", "ION_TEXT", blocks_per_object=3)
    ledger.close()
    upload(s3, tmp_path / "journalExport", "journalExport")
    monkeypatch.setenv(export_handler.LEDGER_ARN_ENV, LEDGER_ARN)
    event: dict[str, Any] = {"export": f"s3://{BUCKET}/journalExport"}
    now = [0.0]
    real_put = buffer.put

    def put_keeping_the_deadline(*args: Any, **kw: Any) -> Any:
        now[0] += 300.0
        deadline.check("a bulk request")
        return real_put(*args, **kw)

    monkeypatch.setattr(buffer, "put", put_keeping_the_deadline)
    deadline.use_clock(lambda: now[0])
    try:
        out = handler(event, Context(900_000))  # hard deadline: 895 s, the soft stop never comes
    finally:
        deadline.use_clock(time.monotonic)
    assert out["done"] is False and "deadline" in (out["transient"] or "")
    assert sum(out["resume"].values()) == 2  # two objects stored, the third's put cut
    monkeypatch.setattr(buffer, "put", real_put)
    out = handler(out, Context(900_000))
    assert out["done"] is True and len(block_ids(buffer)) == info["blocks"]
    assert export_handler.hard_seconds_left(Context(3_000)) == 0.0
    assert export_handler.hard_seconds_left(None) is None


def test_no_progress_fails_after_a_few_invocations(
    tmp_path: Path, s3: Any, buffer: SqliteBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = source_ledger(tmp_path / "source.db", transactions=3)
    export(ledger, tmp_path / "journalExport", "ION_TEXT")
    ledger.close()
    upload(s3, tmp_path / "journalExport", "journalExport")
    monkeypatch.setenv(export_handler.LEDGER_ARN_ENV, LEDGER_ARN)

    def down(*args: Any, **kw: Any) -> Any:
        raise TransientError("buffer down")

    monkeypatch.setattr(buffer, "put", down)
    event: dict[str, Any] = {"export": f"s3://{BUCKET}/journalExport"}
    for stalled in range(1, export_handler.MAX_STALLED):
        event = handler(event, Context(900_000))
        assert event["stalled"] == stalled and not event["done"]
    with pytest.raises(TransientError, match="no progress"):
        handler(event, Context(900_000))


def test_without_an_export_or_a_ledger_it_refuses(
    s3: Any, buffer: SqliteBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(export_handler.LEDGER_ARN_ENV, LEDGER_ARN)
    with pytest.raises(InputError, match="no export to ingest"):
        handler({}, Context(900_000))
    with pytest.raises(InputError, match="no journal export here"):
        handler({"export": f"s3://{BUCKET}/nothing"}, Context(900_000))
    monkeypatch.delenv(export_handler.LEDGER_ARN_ENV)
    with pytest.raises(InputError, match="ledger ARN"):
        handler({"export": f"s3://{BUCKET}/nothing"}, Context(900_000))


def test_the_resuming_store_serves_the_rest_of_a_manifest(tmp_path: Path) -> None:
    ledger = source_ledger(tmp_path / "source.db", transactions=12)
    export(ledger, tmp_path / "journalExport", "ION_TEXT", blocks_per_object=3)
    ledger.close()
    inner = FolderStore(tmp_path / "journalExport")
    (strand,) = ResumingStore(inner, {}).order
    full = ResumingStore(inner, {}).keys[strand]
    store = ResumingStore(inner, {strand: 2})
    listed = list(store.list_keys())
    assert full[0] not in listed and full[1] not in listed and full[2] in listed
    report = ingest_export(SqliteBuffer(tmp_path / "b.db"), store, LedgerRef.from_arn(LEDGER_ARN))
    assert report.objects == len(full) - 2 and report.problems == []
    # its first block is linked to a block the buffer does not hold: noted, not broken
    assert report.gaps
