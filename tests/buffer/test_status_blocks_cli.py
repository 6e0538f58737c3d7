"""``qldb-settle status`` and ``qldb-settle blocks`` on real SQLite buffers (and, for the
checkpoint, a real embedded replica settled by ``qldb-settle settle``)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
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


# --- issue 19: the CLI as a person reads it -------------------------------------------------------

RAW_MS = re.compile(r"\d{4,} ms")  # a duration printed as a raw count of milliseconds


def test_an_old_journal_shows_the_sources_last_commit_not_a_lag(
    fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buffer = f"sqlite:{tmp_path / 'b.db'}"
    main(["ingest", "--buffer", buffer, "--json", str(fixtures_dir / DEMO)])
    capsys.readouterr()
    assert main(["status", "--buffer", buffer]) == 0
    out = capsys.readouterr().out
    assert not RAW_MS.search(out), out
    lag = next(line for line in out.splitlines() if line.strip().startswith("lag "))
    assert "old journal" in lag and "years" not in lag  # not called a lag
    last = next(line for line in out.splitlines() if "source's last commit" in line)
    assert re.search(r"\d+\.\d years ago \(2020-07-03T20:36:44\.181Z\)", last), last
    assert re.search(r"ingest delay\s+p50 161 ms, p99 161 ms, max 161 ms", out)
    # JSON keeps its numbers, and says why the table did not call it a lag.
    code, status = run_json(capsys, "status", "--buffer", buffer)
    assert code == 0 and isinstance(status["lag_ms"], int) and status["lag_ms"] > 10**11
    assert status["old_journal"] is True
    assert status["source_last_commit"] == "2020-07-03T20:36:44.181Z"
    assert status["source_last_commit_age_ms"] >= status["lag_ms"]
    assert status["ingest_delay_ms"] == {"p50": 161, "p99": 161, "max": 161}


def test_a_live_stream_shows_its_lag_in_human_units(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = Synth(t0=datetime.now(UTC) - timedelta(seconds=126))  # block 1 committed 125 s ago
    path = tmp_path / "b.db"
    with SqliteBuffer(path) as buf:
        buf.put(live.incomings(live.chain(2), delay=timedelta(milliseconds=2500)))
    assert main(["status", "--buffer", f"sqlite:{path}"]) == 0
    out = capsys.readouterr().out
    assert not RAW_MS.search(out), out
    assert re.search(r"lag\s+2 min \d+ s \(age of the oldest pending block\)", out), out
    assert re.search(r"source's last commit\s+2 min \d+ s ago", out), out
    assert re.search(r"ingest delay\s+p50 2\.5 s, p99 2\.5 s, max 2\.5 s", out), out
    _, status = run_json(capsys, "status", "--buffer", f"sqlite:{path}")
    assert status["old_journal"] is False and 125_000 <= status["lag_ms"] < 185_000


def test_a_long_buffer_url_is_printed_whole_on_a_line_of_its_own(
    tmp_path: Path, synth: Synth, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / ("a-rather-long-folder-name-for-the-settling-buffer-" * 2)
    folder.mkdir()
    path = folder / "qldb-settle-buffer-of-the-production-ledger.db"
    with SqliteBuffer(path) as buf:
        buf.put(synth.incomings(synth.chain(1)))
    url = f"sqlite:{path}"
    assert len(url) > 80  # wider than the console: a table title used to fold it mid-word
    assert main(["status", "--buffer", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["buffer", url]
    assert lines[1].split()[0] == "replica"


def test_status_warns_when_the_window_is_below_the_p99_ingest_delay(
    tmp_path: Path, synth: Synth, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.db"
    with SqliteBuffer(path) as buf:
        buf.put(synth.incomings(synth.chain(3), delay=timedelta(seconds=8)))
    buffer = f"sqlite:{path}"
    code, status = run_json(capsys, "status", "--buffer", buffer, "--window", "2")
    assert code == 0  # a warning, not something an operator must resolve
    assert status["window_seconds"] == 2 and status["recommended_window_seconds"] == 10
    (warning,) = status["warnings"]
    assert "settle window (2 s) is below the p99 ingest delay (8.0 s)" in warning
    assert "recommended 10 s" in warning
    assert main(["status", "--buffer", buffer, "--window", "2"]) == 0
    assert "warning: the settle window (2 s)" in capsys.readouterr().out
    _, wide = run_json(capsys, "status", "--buffer", buffer, "--window", "10")
    assert wide["warnings"] == []
    _, default = run_json(capsys, "status", "--buffer", buffer)  # 120 s
    assert default["warnings"] == [] and default["window_seconds"] == 120


def test_status_names_the_late_blocks_a_failed_replay_may_need_and_the_commands(
    tmp_path: Path, synth: Synth, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.db"
    failed = "replay failed: statement 'INSERT INTO Person ?': no active table named 'Person'"
    with SqliteBuffer(path) as buf:
        buf.put(synth.incomings(synth.chain(5)))
        buf.mark([
            Mark(block_id=bid(2), state="replayed", at=synth.t0),
            Mark(block_id=bid(1), state="late", at=synth.t0, reason="arrived after 2"),
            Mark(block_id=bid(3), state="quarantined", at=synth.t0, reason=failed),
            Mark(block_id=bid(5), state="quarantined", at=synth.t0, reason=failed),
        ])  # fmt: skip
    buffer = f"sqlite:{path}"
    s = SYNTH_STRAND
    code, status = run_json(capsys, "status", "--buffer", buffer)
    assert code == 1
    (recovery,) = status["recovery"]  # the first quarantined block of the strand
    assert recovery["block"] == f"{s}/3" and recovery["late"] == [f"{s}/1"]
    assert recovery["commands"] == [
        f"qldb-settle resolve --buffer {buffer} {s}/1 --apply-late --reason TEXT",
        f"qldb-settle resolve --buffer {buffer} {s}/3 --retry --reason TEXT",
        f"qldb-settle settle --buffer {buffer}",
    ]
    named = [a for a in status["attention"] if a.startswith(f"block {s}/3 is quarantined")]
    assert len(named) == 1 and "no active table named 'Person'" in named[0]
    assert f"`qldb-settle resolve --buffer {buffer} {s}/1 --apply-late" in named[0]
    assert main(["status", "--buffer", buffer]) == 1
    out = capsys.readouterr().out
    assert "To recover, run in this order:" in " ".join(out.split())  # rich wraps the line
    commands = [line.strip() for line in out.splitlines() if line.startswith("    qldb-settle")]
    assert commands == recovery["commands"]


def test_status_names_no_late_block_for_a_quarantine_that_is_not_a_replay_failure(
    tmp_path: Path, synth: Synth, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "b.db"
    with SqliteBuffer(path) as buf:
        buf.put(synth.incomings(synth.chain(3)))
        buf.mark([
            Mark(block_id=bid(2), state="replayed", at=synth.t0),
            Mark(block_id=bid(1), state="late", at=synth.t0),
            Mark(block_id=bid(3), state="quarantined", at=synth.t0, reason="bad hash"),
        ])  # fmt: skip
    code, status = run_json(capsys, "status", "--buffer", f"sqlite:{path}")
    assert code == 1 and status["recovery"] == []
    assert not any("--apply-late" in a for a in status["attention"])
