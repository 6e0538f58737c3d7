"""An export followed by the stream: replayed through the settler, neither skipping nor repeating
a block, and ``ingest`` on the command line (folder layout, ``--ledger-arn``, exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from export_helpers import LEDGER, LEDGER_ARN, START, buffer, export, source_ledger, stream_items

from ingest.export.service import ingest_export
from ingest.export.store import FolderStore


def _at(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


@pytest.mark.parametrize("fmt", ["ION_TEXT", "ION_BINARY"])
def test_export_then_stream_replays_every_block_once(tmp_path: Path, fmt: str) -> None:
    from destination.embedded import EmbeddedDestination
    from qldb_settle.commands.verify import replica_documents
    from settler.compare import compare, documents_of_ledger
    from settler.cycle import SettlePolicy, settle

    led = source_ledger(tmp_path / "source.db")
    blocks = list(led.blocks())
    split = blocks[len(blocks) // 2]
    info = export(led, tmp_path / "journalExport", fmt, end=_at(split.timestamp_ms))
    assert info["last"] == split.sequence_no - 1
    stream = stream_items(led, after=info["last"])
    led.close()
    buf = buffer(tmp_path / "buffer.db")
    report = ingest_export(buf, FolderStore(tmp_path / "journalExport"), LEDGER)
    assert report.problems == []
    put = buf.put(stream)
    assert put.stored["blocks"] == len(blocks) - info["blocks"] and put.duplicates == 0
    dest = EmbeddedDestination(tmp_path / "replica.db")
    try:
        r = settle(
            buf, dest, now=START + timedelta(days=400), policy=SettlePolicy(window_seconds=120)
        )
        assert not r.halted, r.halt_reason
        assert r.gaps_passed == 0 and r.quarantined == 0 and r.late == 0
        assert r.blocks == len(blocks)  # each block once: export's, then the stream's
        rows = buf.blocks()
        assert [row.sequence_no for row in rows] == list(range(len(blocks)))
        assert {row.state for row in rows} == {"replayed"}
        again = settle(
            buf, dest, now=START + timedelta(days=401), policy=SettlePolicy(window_seconds=120)
        )
        assert again.blocks == 0
        comparison = compare(
            "source", documents_of_ledger(tmp_path / "source.db"), replica_documents(dest)
        )
        assert comparison.equal, comparison.summary()
    finally:
        dest.close()
        buf.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qldb_settle.cli", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_cli_ingests_an_export_folder_then_stream_files(tmp_path: Path) -> None:
    led = source_ledger(tmp_path / "source.db")
    info = export(led, tmp_path / "journalExport", "ION_TEXT")
    led.close()
    url = f"sqlite:{tmp_path / 'buffer.db'}"
    missing = _cli("ingest", "--buffer", url, str(tmp_path / "journalExport"))
    assert missing.returncode == 2 and "--ledger-arn" in missing.stderr
    done = _cli("ingest", "--buffer", url, "--ledger-arn", LEDGER_ARN, "--json",
                str(tmp_path / "journalExport"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["stored"]["blocks"] == info["blocks"] and out["rejected"] == 0
    assert out["export"]["blocks"] == info["blocks"]
    assert out["export"]["blocks_per_second"] > 0
    strand = out["export"]["sources"][0]["strands"][0]
    assert strand["last_block"] == f"{info['strand_id']}/{info['last']}"
    # unfinished: no completed manifest -> exit 2, nothing stored
    (tmp_path / "journalExport" / f"{info['export_id']}.{info['strand_id']}.completed.manifest"
     ).unlink()  # fmt: skip
    other = f"sqlite:{tmp_path / 'other.db'}"
    unfinished = _cli("ingest", "--buffer", other, "--ledger-arn", LEDGER_ARN,
                      str(tmp_path / "journalExport"))  # fmt: skip
    assert unfinished.returncode == 2 and "unfinished" in unfinished.stderr
