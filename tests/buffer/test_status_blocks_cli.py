"""``qldb-settle status`` and ``qldb-settle blocks`` on real SQLite buffers (and, for the
checkpoint, a real embedded replica settled by ``qldb-settle settle``)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from buffer.port import Mark
from buffer.sqlite import SqliteBuffer
from qldb_settle.cli import main
from qldb_settle.commands.status import recommended_window_seconds

from synth import SYNTH_LEDGER, SYNTH_STRAND, Synth  # isort: skip

DESIGN_STATUS_KEYS = {
    "blocks", "statements", "revisions", "rejected", "conflicts", "checkpoint", "lag_ms",
    "ingest_delay_ms", "recommended_window_seconds",
}  # fmt: skip
DEMO = "qldb-simple-demo__streams-dynamodb__data.json"


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("QLDB_SETTLE_BUFFER", "QLDB_SETTLE_DESTINATION", "QLDB_SETTLE_WINDOW_SECONDS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # the default replica path must not exist


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out  # exactly one JSON object
    return code, json.loads(out)


def bid(seq: int) -> str:
    return f"{SYNTH_LEDGER}/{SYNTH_STRAND}/{seq}"


def test_status_after_ingesting_the_real_event(
    fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buffer = f"sqlite:{tmp_path / 'b.db'}"
    assert main(["ingest", "--buffer", buffer, "--json", str(fixtures_dir / DEMO)]) == 0
    capsys.readouterr()
    code, status = run_json(capsys, "status", "--buffer", buffer)
    assert code == 0
    assert set(status) >= DESIGN_STATUS_KEYS
    assert status["blocks"] == {
        "total": 1, "pending": 1, "replayed": 0, "quarantined": 0, "late": 0, "skipped": 0,
    }  # fmt: skip
    assert (status["statements"], status["revisions"]) == (3, 1)
    assert (status["rejected"], status["conflicts"]) == (0, 0)
    assert status["checkpoint"] is None and status["notes"]  # no replica yet, and it says so
    # The event's approximateArrivalTimestamp is 161 ms after the block's commit.
    assert status["ingest_delay_ms"] == {"p50": 161, "p99": 161, "max": 161}
    assert status["recommended_window_seconds"] == 1
    assert status["lag_ms"] > 0
    assert status["oldest_pending_commit"] == "2020-07-03T20:36:44.181Z"


def test_status_shows_the_replicas_checkpoint_after_a_settle(
    fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buffer, replica = f"sqlite:{tmp_path / 'b.db'}", f"embedded:{tmp_path / 'r.db'}"
    main(["ingest", "--buffer", buffer, "--json", str(fixtures_dir / DEMO)])
    main(["settle", "--buffer", buffer, "--destination", replica, "--now", "2100-01-01T00:00:00Z",
          "--json"])  # fmt: skip
    capsys.readouterr()
    code, status = run_json(capsys, "status", "--buffer", buffer, "--destination", replica)
    assert code == 0
    assert status["checkpoint"]["sequence"] == 545
    assert status["checkpoint"]["strand"] == "JUJgrQeIeI64ZgvXIuqlZ1"
    assert status["blocks"]["replayed"] == 1 and status["lag_ms"] is None
    assert status["notes"] == []


def test_status_exits_1_and_says_why_when_an_operator_is_needed(
    tmp_path: Path, synth: Synth, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.db"
    with SqliteBuffer(path) as buf:
        blocks = synth.chain(3)
        buf.put(synth.incomings(blocks, delay=timedelta(milliseconds=1500)))
        buf.put([synth.incoming(blocks[2].summary, arrived_at=synth.commit_time(3) + timedelta(9))])
        buf.mark([Mark(block_id=bid(2), state="quarantined", at=synth.t0, reason="bad hash")])
    code, status = run_json(capsys, "status", "--buffer", f"sqlite:{path}")
    assert code == 1
    assert any("quarantined" in a for a in status["attention"])
    assert status["blocks"]["quarantined"] == 1 and status["blocks"]["pending"] == 2
    assert status["ingest_delay_ms"]["max"] == 1500  # the later copy of block 3 is a duplicate
    assert status["recommended_window_seconds"] == 2  # 1.5 s + 25 %, rounded up


def test_the_recommended_window_covers_the_largest_delay_with_a_margin() -> None:
    assert recommended_window_seconds([]) is None
    assert recommended_window_seconds([161.0]) == 1
    assert recommended_window_seconds([1500.0, 9000.0, 200.0]) == 12  # 11.25 s, rounded up
    assert recommended_window_seconds([-50.0]) == 1  # clock skew: never below a second
    assert recommended_window_seconds([96_000.0]) == 120


def test_status_of_a_missing_buffer_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--buffer", f"sqlite:{tmp_path / 'none.db'}", "--json"]) == 2
    assert "no settling buffer" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    assert main(["blocks", "--buffer", f"sqlite:{tmp_path / 'none.db'}"]) == 2


def test_status_prints_a_table_without_json(
    tmp_path: Path, synth: Synth, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.db"
    with SqliteBuffer(path) as buf:
        buf.put(synth.incomings(synth.chain(2)))
    assert main(["status", "--buffer", f"sqlite:{path}"]) == 0
    out = capsys.readouterr().out
    assert "pending" in out and "settle window" in out and "120 s configured" in out


def test_blocks_lists_rows_in_commit_order_and_filters_by_state(
    tmp_path: Path, synth: Synth, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.db"
    with SqliteBuffer(path) as buf:
        buf.put(synth.incomings(synth.chain(4)[::-1]))
        buf.mark([Mark(block_id=bid(1), state="replayed", at=synth.t0, reason="r", actor="op")])
    code, listing = run_json(capsys, "blocks", "--buffer", f"sqlite:{path}")
    assert code == 0
    assert [b["sequence_no"] for b in listing["blocks"]] == [1, 2, 3, 4]
    first = listing["blocks"][0]
    assert first == {
        "id": bid(1),
        "ledger": SYNTH_LEDGER,
        "strand_id": SYNTH_STRAND,
        "sequence_no": 1,
        "state": "replayed",
        "commit_time": "2024-03-01T12:00:01.000Z",
        "statements": 1,
        "revisions_expected": 1,
        "revisions_buffered": 1,
        "reason": "r",
        "actor": "op",
        "updated_at": "2024-03-01T12:00:00.000Z",
    }
    code, pending = run_json(capsys, "blocks", "--buffer", f"sqlite:{path}", "--state", "pending")
    assert [b["sequence_no"] for b in pending["blocks"]] == [2, 3, 4]
    assert main(["blocks", "--buffer", f"sqlite:{path}"]) == 0
    assert "replayed" in capsys.readouterr().out


def test_blocks_exits_1_when_quarantined_or_late_blocks_wait(
    tmp_path: Path, synth: Synth, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.db"
    with SqliteBuffer(path) as buf:
        buf.put(synth.incomings(synth.chain(2)))
        buf.mark([Mark(block_id=bid(2), state="quarantined", at=synth.t0, reason="conflict")])
    code, listing = run_json(
        capsys, "blocks", "--buffer", f"sqlite:{path}", "--state", "quarantined"
    )
    assert code == 1
    assert [(b["sequence_no"], b["reason"]) for b in listing["blocks"]] == [(2, "conflict")]
    code, late = run_json(capsys, "blocks", "--buffer", f"sqlite:{path}", "--state", "late")
    assert (code, late) == (0, {"blocks": []})


def test_an_unreachable_destination_leaves_the_checkpoint_null_with_a_note(
    tmp_path: Path, synth: Synth, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.db"
    with SqliteBuffer(path) as buf:
        buf.put(synth.incomings(synth.chain(1)))
    # A QLDB endpoint on a closed loopback port: a real connection refusal, no AWS involved.
    code, status = run_json(
        capsys, "status", "--buffer", f"sqlite:{path}", "--destination", "qldb:replica",
        "--qldb-endpoint", "http://127.0.0.1:9",
    )  # fmt: skip
    assert code == 0
    assert status["checkpoint"] is None
    assert status["blocks"]["pending"] == 1
    (note,) = status["notes"]
    assert note.startswith("checkpoint not read from qldb:replica")
