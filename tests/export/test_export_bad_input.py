"""Bad exports: each problem is kept as a rejection naming the object key and block address,
counted, the good blocks before it stored, and nothing after a broken link read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion
from export_helpers import LEDGER, buffer, export, source_ledger

from ingest.export.manifest import CompletedManifest
from ingest.export.service import ExportReport, LedgerRef, ingest_export
from ingest.export.store import FolderStore
from journal.hashes import block_hash

pytestmark = pytest.mark.ingest_env


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    led = source_ledger(tmp_path / "source.db")
    info = export(led, tmp_path / "journalExport", "ION_TEXT", blocks_per_object=4)
    led.close()
    folder = tmp_path / "journalExport"
    manifest = CompletedManifest.read(
        FolderStore(folder), f"{info['export_id']}.{info['strand_id']}.completed.manifest"
    )
    keys = [k.removeprefix("journalExport/") for k in manifest.keys]
    return folder, keys, info


def _blocks(folder: Path, key: str) -> list[Any]:
    return list(simpleion.loads((folder / key).read_bytes().decode(), single_value=False))


def _write(folder: Path, key: str, blocks: list[Any]) -> None:
    text = "\n".join(simpleion.dumps(b, binary=False, omit_version_marker=True) for b in blocks)
    (folder / key).write_text(text)


def _run(tmp_path: Path, folder: Path, ledger: LedgerRef = LEDGER) -> tuple[ExportReport, Any]:
    buf = buffer(tmp_path / "buffer.db")
    report = ingest_export(buf, FolderStore(folder), ledger)
    return report, buf


def _stored_through(buf: Any) -> list[int]:
    return [row.sequence_no for row in buf.blocks()]


def _assert_stops_at(report: ExportReport, buf: Any, last_good: int, key: str, addr: str) -> None:
    assert len(report.problems) == 1, report.problems
    origin, reason = report.problems[0]
    assert key in reason and key in origin
    assert addr in reason
    assert report.put.rejected == 1
    assert _stored_through(buf) == list(range(last_good + 1))
    assert [r.kind for r in buf.rejected()] == ["export"]
    assert report.needs_attention


def test_truncated_object(tmp_path: Path, setup) -> None:  # type: ignore[no-untyped-def]
    folder, keys, _ = setup
    data = (folder / keys[1]).read_bytes()
    (folder / keys[1]).write_bytes(data[: len(data) * 2 // 3])
    report, buf = _run(tmp_path, folder)
    good = [b["blockAddress"]["sequenceNo"] for b in _blocks(folder, keys[0])]
    assert report.objects_not_read == len(keys) - 2
    # the whole blocks before the cut in the damaged object still went in
    stored = _stored_through(buf)
    assert stored[: len(good)] == good and len(stored) > len(good)
    assert len(report.problems) == 1 and keys[1] in report.problems[0][1]
    assert f"after block {report.spans[0].strand_id}/{stored[-1]}" in report.problems[0][1]
    buf.close()


def test_block_hash_that_does_not_match_its_entries(tmp_path: Path, setup) -> None:  # type: ignore[no-untyped-def]
    folder, keys, info = setup
    blocks = _blocks(folder, keys[1])
    bad = blocks[2]
    bad["entriesHashList"][0] = bytes(32)
    _write(folder, keys[1], blocks)
    seq = bad["blockAddress"]["sequenceNo"]
    report, buf = _run(tmp_path, folder)
    _assert_stops_at(report, buf, seq - 1, keys[1], f"{info['strand_id']}/{seq}")
    assert "entriesHash" in report.problems[0][1]
    buf.close()


def test_link_that_does_not_match_its_predecessor(tmp_path: Path, setup) -> None:  # type: ignore[no-untyped-def]
    folder, keys, info = setup
    # the first block of the second object, consistent in itself but linked to another block
    blocks = _blocks(folder, keys[1])
    b = blocks[0]
    b["previousBlockHash"] = bytes(range(32))
    b["blockHash"] = block_hash(bytes(b["entriesHash"]), bytes(range(32)))
    _write(folder, keys[1], blocks)
    seq = b["blockAddress"]["sequenceNo"]
    report, buf = _run(tmp_path, folder)
    _assert_stops_at(report, buf, seq - 1, keys[1], f"{info['strand_id']}/{seq}")
    assert "chain is broken" in report.problems[0][1]
    assert report.objects_not_read == len(keys) - 2
    buf.close()


def test_object_listed_but_missing(tmp_path: Path, setup) -> None:  # type: ignore[no-untyped-def]
    folder, keys, info = setup
    last_good = _blocks(folder, keys[0])[-1]["blockAddress"]["sequenceNo"]
    (folder / keys[1]).unlink()
    report, buf = _run(tmp_path, folder)
    _assert_stops_at(report, buf, last_good, keys[1], f"{info['strand_id']}/{last_good}")
    assert "listed" in report.problems[0][1] and "missing" in report.problems[0][1]
    buf.close()


def test_object_not_in_the_manifest(tmp_path: Path, setup) -> None:  # type: ignore[no-untyped-def]
    folder, keys, info = setup
    stray = keys[0].rsplit("/", 1)[0] + f"/{info['strand_id']}.900-901.ion"
    (folder / stray).write_bytes((folder / keys[0]).read_bytes())
    report, buf = _run(tmp_path, folder)
    assert len(report.problems) == 1 and stray in report.problems[0][1]
    assert "no completed manifest" in report.problems[0][1]
    assert report.put.rejected == 1
    assert report.blocks == info["blocks"]  # everything listed still went in
    buf.close()


def test_manifest_from_another_ledger(tmp_path: Path, setup) -> None:  # type: ignore[no-untyped-def]
    folder, _, info = setup
    other = LedgerRef.from_arn("arn:aws:qldb:us-east-1:000000000000:ledger/another")
    report, buf = _run(tmp_path, folder, other)
    assert len(report.problems) == 1
    assert info["export_id"] in report.problems[0][1]
    assert "'exported'" in report.problems[0][1] and "'another'" in report.problems[0][1]
    assert buf.blocks() == [] and report.put.rejected == 1
    buf.close()


def test_a_damaged_binary_object_keeps_the_blocks_before_the_damage(tmp_path: Path) -> None:
    led = source_ledger(tmp_path / "source.db")
    info = export(led, tmp_path / "journalExport", "ION_BINARY", blocks_per_object=6)
    led.close()
    folder = tmp_path / "journalExport"
    manifest = CompletedManifest.read(
        FolderStore(folder), f"{info['export_id']}.{info['strand_id']}.completed.manifest"
    )
    key = manifest.keys[0].removeprefix("journalExport/")
    data = (folder / key).read_bytes()
    (folder / key).write_bytes(data[: len(data) - 40])
    report, buf = _run(tmp_path, folder)
    stored = _stored_through(buf)
    assert 0 < len(stored) < 6 and stored == list(range(len(stored)))
    assert len(report.problems) == 1 and "invalid Ion binary" in report.problems[0][1]
    buf.close()
