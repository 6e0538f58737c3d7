"""``qldb-settle ingest`` and ``qldb-settle rejected`` end to end (in process, real SqliteBuffer
files), and the handler's EMF metrics. Not in the small ingest environment: the CLI loads every
subcommand, and the metrics need aws-lambda-powertools."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import (
    DYNAMODB_EVENT,
    ES_EVENT,
    bad_records,
    fixture,
    fixtures_dir,
    kinesis_data,
    kinesis_entry,
    kinesis_event,
    load_json,
    seq_no,
)

import handlers.ingest as ingest_handler
from buffer.sqlite import SqliteBuffer
from qldb_settle.cli import main

INGEST_KEYS = [
    "records", "stored", "duplicates", "conflicts", "rejected", "late", "ingest_delay_ms",
    "out_of_orderness", "unreadable", "rates",
]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv)
    lines = out.splitlines()
    assert len(lines) == 1, out  # exactly one JSON object on stdout
    result: dict[str, Any] = json.loads(lines[0])
    return code, result


def test_ingest_real_event_then_again_then_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buffer = f"sqlite:{tmp_path / 'b.db'}"
    event = str(fixture(DYNAMODB_EVENT))
    code, first = run_json(capsys, "ingest", "--buffer", buffer, "--json", event)
    assert code == 0
    assert list(first) == INGEST_KEYS
    assert first["records"] == 2
    assert first["stored"] == {"blocks": 1, "statements": 3, "revisions": 1, "control": 0}
    assert (first["duplicates"], first["conflicts"], first["rejected"], first["late"]) == (
        0, 0, 0, 0,
    )  # fmt: skip
    assert first["ingest_delay_ms"] == {"p50": 161.0, "p99": 179.0, "max": 179.0}
    rates = first["rates"]
    assert set(rates) == {"seconds", "records_per_s"} and rates["seconds"] > 0
    assert rates["records_per_s"] > 0
    code, second = run_json(capsys, "ingest", "--buffer", buffer, "--json", event)
    assert code == 0
    assert second["stored"] == {"blocks": 0, "statements": 0, "revisions": 0, "control": 0}
    assert second["duplicates"] == 2
    code, status = run_json(capsys, "status", "--buffer", buffer, "--json")
    assert status["blocks"]["total"] == 1 and status["blocks"]["pending"] == 1
    assert (status["statements"], status["revisions"], status["rejected"]) == (3, 1, 0)
    # Without --json: a short summary.
    code, out, _ = run(capsys, "ingest", "--buffer", buffer, event)
    assert code == 0
    assert "ingested 2 records from 1 file" in out
    assert " records/s" in out
    assert "duplicates: 2" in out


def test_rejections_exit_1_and_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = bad_records()
    entries = [kinesis_entry(kinesis_data(ES_EVENT), seq=seq_no(0))]
    entries += [kinesis_entry(d, seq=seq_no(i)) for i, (d, _, _) in enumerate(bad.values(), 1)]
    event = tmp_path / "event.json"
    event.write_text(json.dumps(kinesis_event(entries)))
    buffer = f"sqlite:{tmp_path / 'b.db'}"
    code, report = run_json(capsys, "ingest", "--buffer", buffer, "--json", str(event))
    assert code == 1
    assert report["stored"]["blocks"] == 1 and report["rejected"] == len(bad)
    code, listing = run_json(capsys, "rejected", "--buffer", buffer, "--json")
    assert code == 1
    assert listing["count"] == listing["unresolved"] == len(bad)
    reasons = {(r["kind"], r["reason"]) for r in listing["rejected"]}
    for name, (_, kind, fragment) in bad.items():
        assert any(k == kind and fragment in r for k, r in reasons), name
    assert all(r["origin"].startswith(f"{event}#Records[") for r in listing["rejected"])
    code, out, _ = run(capsys, "rejected", "--buffer", buffer)
    assert code == 1 and f"{len(bad)} rejected, {len(bad)} unresolved" in out
    # An operator acknowledges them (a reason is required), and the listing says who and why.
    ids = [str(r["id"]) for r in listing["rejected"]]
    code, _, _ = run(capsys, "rejected", "--buffer", buffer, "--acknowledge", *ids)
    assert code == 2
    code, after = run_json(
        capsys, "rejected", "--buffer", buffer, "--json", "--acknowledge", *ids,
        "--reason", "looked at: not QLDB records", "--actor", "ops",
    )  # fmt: skip
    assert code == 0 and after["unresolved"] == 0 and after["count"] == len(bad)
    assert {(r["resolved_by"], r["resolution"]) for r in after["rejected"]} == {
        ("ops", "looked at: not QLDB records")
    }


def test_fixture_folder_stores_what_it_can_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buffer = f"sqlite:{tmp_path / 'b.db'}"
    code, out, err = run(capsys, "ingest", "--buffer", buffer, "--json", str(fixtures_dir()))
    assert code == 2
    report = json.loads(out)
    assert sorted(Path(u["file"]).name for u in report["unreadable"]) == [
        "INDEX.md",
        "amazon-qldb-driver-nodejs-issue-405__aggregated_record_prefix.PARTIAL.txt",
        "qldb-bicycle-licence-sam__streams-dynamodb__msg.json",
    ]
    assert report["stored"]["blocks"] == 3 and report["rejected"] == 8
    assert err.count("qldb-settle ingest: ") == 3


def test_missing_path_exits_2_before_storing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "b.db"
    code, out, err = run(
        capsys, "ingest", "--buffer", f"sqlite:{db}", str(fixture(ES_EVENT)), str(tmp_path / "no")
    )
    assert code == 2 and out == ""
    assert "no such file or directory" in err
    assert not db.exists()


def test_buffer_url_is_read_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("QLDB_SETTLE_BUFFER", f"sqlite:{db}")
    code, report = run_json(capsys, "ingest", "--json", str(fixture(ES_EVENT)))
    assert code == 0 and report["stored"]["blocks"] == 1
    assert db.exists()


@pytest.mark.slow
def test_locked_buffer_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "b.db"
    SqliteBuffer(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's write lock, held past the timeout
    try:
        code, _, err = run(capsys, "ingest", "--buffer", f"sqlite:{db}", str(fixture(ES_EVENT)))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 3
    assert "run it again" in err


# --- metrics ------------------------------------------------------------------------------------


def test_handler_publishes_the_ingest_metrics_as_emf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("aws_lambda_powertools")
    buffer = SqliteBuffer(tmp_path / "b.db")
    ingest_handler.use_buffer(buffer)
    try:
        event = load_json(DYNAMODB_EVENT)
        event["Records"].append(kinesis_entry("@@@", seq=seq_no(1)))
        capsys.readouterr()
        assert ingest_handler.handler(event, None) == {"batchItemFailures": []}
    finally:
        ingest_handler.use_buffer(None)
        buffer.close()
    out = capsys.readouterr().out
    values: dict[tuple[str, str | None], list[float]] = {}
    for line in out.splitlines():
        emf = json.loads(line)
        (directive,) = emf["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "QldbSettle"
        for metric in directive["Metrics"]:
            name = metric["Name"]
            raw = emf[name]
            key = (name, emf.get("RecordType"))
            values.setdefault(key, []).extend(raw if isinstance(raw, list) else [raw])
    assert values[("RecordsReceived", "BLOCK_SUMMARY")] == [1.0]
    assert values[("RecordsReceived", "REVISION_DETAILS")] == [1.0]
    assert values[("RecordsReceived", "CONTROL")] == [0.0]
    assert values[("StatementsBuffered", None)] == [3.0]
    assert values[("RevisionsBuffered", None)] == [1.0]
    assert values[("Duplicates", None)] == [0.0]
    assert values[("Conflicts", None)] == [0.0]
    assert values[("LateRecords", None)] == [0.0]
    assert values[("RejectedRecords", None)] == [1.0]
    assert values[("IngestDelay", None)] == pytest.approx([161.0, 179.0], abs=0.01)
    assert values[("OutOfOrderness", None)] == [0.0, 0.0]


def test_late_records_need_attention(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], synth: Any
) -> None:
    from datetime import UTC, datetime

    from buffer.port import Mark

    db = tmp_path / "b.db"
    blocks = synth.chain(2)
    buf = SqliteBuffer(db)
    buf.put([synth.incoming(v) for v in blocks[1].values])
    buf.mark([Mark(block_id=synth.incoming(blocks[1].summary).record.record_id,
                   state="replayed", at=datetime(2024, 3, 2, tzinfo=UTC))])  # fmt: skip
    buf.close()
    event = tmp_path / "late.ion"
    event.write_bytes(b"".join(synth.incoming(v).raw for v in blocks[0].values))
    code, report = run_json(capsys, "ingest", "--buffer", f"sqlite:{db}", "--json", str(event))
    assert code == 1
    assert report["late"] == 2 and report["rejected"] == 0 and report["conflicts"] == 0


def test_progress_display_follows_the_ingest() -> None:
    from qldb_settle.commands.ingest import _progress

    with _progress(False, 10) as update:
        assert update is None
    with _progress(True, 10) as update:
        assert update is not None
        update(5, 10, 3)
        update(10, 10, 7)
