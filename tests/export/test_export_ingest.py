"""Journal exports into the settling buffer: each format, duplicates with the stream, overlaps.

Exports are written by the simulator's export writer from a real embedded ledger (hash-chained,
Ion-hashed) and read back through ``FolderStore``, as ``qldb-settle ingest PATH/journalExport``
does.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from export_helpers import LEDGER, START, buffer, export, source_ledger, stream_items

from ingest.export.objects import detect_format
from ingest.export.service import ingest_export
from ingest.export.store import FolderStore
from journal.errors import InputError

pytestmark = pytest.mark.ingest_env

FORMATS = ["ION_TEXT", "ION_BINARY", "JSON"]


@pytest.fixture
def ledger(tmp_path: Path):  # type: ignore[no-untyped-def]
    led = source_ledger(tmp_path / "source.db")
    yield led
    led.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_detected_verified_and_buffered(
    tmp_path: Path,
    ledger,
    fmt: str,  # type: ignore[no-untyped-def]
) -> None:
    info = export(ledger, tmp_path / "journalExport", fmt)
    data_keys = [k for k in FolderStore(tmp_path / "journalExport").list_keys()
                 if not k.endswith(".manifest")]  # fmt: skip
    assert data_keys and all(
        detect_format((tmp_path / "journalExport" / k).read_bytes()) == fmt for k in data_keys
    )
    buf = buffer(tmp_path / "buffer.db")
    report = ingest_export(buf, FolderStore(tmp_path / "journalExport"), LEDGER)
    assert report.problems == [], report.problems
    assert report.blocks == info["blocks"] == len(list(ledger.blocks()))
    assert report.objects == info["objects"] > 1
    assert report.formats == {info["export_id"]: fmt}
    assert report.put.stored["blocks"] == info["blocks"]
    assert report.put.rejected == report.put.conflicts == 0
    span = report.spans[0]
    assert (span.first, span.last) == (info["first"], info["last"])
    # The same blocks from the stream are duplicates: in JSON Lines too, since these documents
    # hold only types JSON keeps (ints, decimals written exactly, strings, bools).
    again = buf.put(stream_items(ledger))
    assert again.stored == {"blocks": 0, "statements": 0, "revisions": 0, "control": 0}
    assert again.conflicts == 0 and again.duplicates == again.records
    assert report.down_converted == ([info["export_id"]] if fmt == "JSON" else [])
    buf.close()


def test_a_duplicated_export_is_all_duplicates(tmp_path: Path, ledger) -> None:  # type: ignore[no-untyped-def]
    export(ledger, tmp_path / "journalExport")
    buf = buffer(tmp_path / "buffer.db")
    first = ingest_export(buf, FolderStore(tmp_path / "journalExport"), LEDGER)
    second = ingest_export(buf, FolderStore(tmp_path / "journalExport"), LEDGER)
    assert second.problems == [] and second.gaps == []
    assert second.put.duplicates == first.put.records
    assert sum(second.put.stored.values()) == 0
    buf.close()


def test_overlapping_exports_link_and_deduplicate(tmp_path: Path, ledger) -> None:  # type: ignore[no-untyped-def]
    blocks = list(ledger.blocks())
    middle = blocks[len(blocks) // 2].timestamp_ms
    later = blocks[len(blocks) // 3].timestamp_ms
    from datetime import UTC, datetime

    def at(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)

    folder = tmp_path / "journalExport"
    one = export(ledger, folder, seed="one", end=at(middle))
    two = export(ledger, folder, seed="two", start=at(later), end=START + timedelta(days=1))
    assert two["first"] < one["last"] < two["last"]
    buf = buffer(tmp_path / "buffer.db")
    report = ingest_export(buf, FolderStore(folder), LEDGER)
    assert report.problems == [] and report.gaps == []
    assert report.exports == [one["export_id"], two["export_id"]]
    assert report.put.stored["blocks"] == len(blocks)
    assert report.put.duplicates > 0 and report.put.conflicts == 0
    buf.close()


def test_an_unfinished_export_stops_before_storing_anything(tmp_path: Path, ledger) -> None:  # type: ignore[no-untyped-def]
    info = export(ledger, tmp_path / "journalExport")
    manifest = (
        tmp_path / "journalExport" / f"{info['export_id']}.{info['strand_id']}.completed.manifest"
    )
    manifest.unlink()
    buf = buffer(tmp_path / "buffer.db")
    with pytest.raises(InputError, match=r"unfinished.*completed\.manifest is missing"):
        ingest_export(buf, FolderStore(tmp_path / "journalExport"), LEDGER)
    assert buf.blocks() == []
    buf.close()


def test_progress_is_reported_after_every_object(tmp_path: Path, ledger) -> None:  # type: ignore[no-untyped-def]
    """``progress`` is called once each object's blocks are stored, with the counts so far (the
    CLI shows objects, blocks and blocks/s from it): a long strand is not silent until its end."""
    info = export(ledger, tmp_path / "journalExport", blocks_per_object=2)
    seen: list[tuple[int, int, int]] = []
    buf = buffer(tmp_path / "buffer.db")
    report = ingest_export(
        buf,
        FolderStore(tmp_path / "journalExport"),
        LEDGER,
        progress=lambda r: seen.append((r.objects, r.objects_total, r.blocks)),
    )
    buf.close()
    assert info["objects"] > 2 and report.objects == info["objects"]
    assert [objects for objects, _total, _blocks in seen] == list(range(1, info["objects"] + 1))
    assert {total for _o, total, _b in seen} == {info["objects"]}
    blocks = [b for _o, _t, b in seen]
    assert blocks == sorted(blocks) and blocks[-1] == info["blocks"]
