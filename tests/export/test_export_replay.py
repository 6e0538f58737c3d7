"""Export blocks that cannot be verified like stream blocks, replayed: a JSON Lines export (its
documents down-converted, so their revision hashes cannot be recomputed) and a redacted revision
(hash kept, data gone). Settled into the embedded ledger (issue 16)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion
from export_helpers import LEDGER, START, buffer, export, source_ledger

from destination.embedded import EmbeddedDestination
from ingest.export.origin import down_converted
from ingest.export.service import ingest_export
from ingest.export.store import FolderStore
from ledger.hashing import ion_hash
from settler.block_checks import REVISION_DOWN_CONVERTED
from settler.cycle import SettlePolicy, settle

FAR = START.replace(year=2100)


def _ledger(path: Path) -> Any:
    led = source_ledger(path, transactions=4)
    # A timestamp: JSON Lines writes it as a string, so this revision's hash cannot be recomputed.
    led.execute("INSERT INTO Person VALUE {'n': 99, 'at': `2020-01-01T`, 'amount': 1.5}")
    return led


def _settle(tmp_path: Path, folder: Path) -> tuple[Any, Any, EmbeddedDestination]:
    buf = buffer(tmp_path / "b.db")
    report = ingest_export(buf, FolderStore(folder), LEDGER)
    assert not report.problems, report.problems
    dest = EmbeddedDestination(tmp_path / "r.db")
    return buf, settle(buf, dest, now=FAR, policy=SettlePolicy(window_seconds=0)), dest


def _docs(led: Any) -> list[str]:
    return sorted(simpleion.dumps(d, binary=False) for _t, _i, d in led.documents())


def test_a_json_lines_export_replays_its_hash_checks_reported_not_possible(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    led = _ledger(tmp_path / "source.db")
    info = export(led, tmp_path / "x", "JSON")
    with caplog.at_level(logging.WARNING, logger="destination.embedded"):
        buf, report, dest = _settle(tmp_path, tmp_path / "x")
    assert not report.halted, report.halt_reason
    assert report.quarantined == 0
    assert report.blocks == info["blocks"]
    # Only the timestamped revision fails its hash: not a failure, "not possible", counted.
    assert report.unverified_reasons == {REVISION_DOWN_CONVERTED: 1}
    assert report.digests_unverified == 1
    assert report.digests_verified > 0  # statement texts survive JSON: their digests still check
    assert any("down-converted" in r.getMessage() for r in caplog.records)
    # Every record of the export carries the mark; the replica holds the JSON types.
    block = buf.get_block(f"{LEDGER.key}/{next(iter(led.blocks(-1))).strand_id}/1")
    assert block is not None and down_converted(block.summary.stream)
    replica = _docs(dest.ledger)
    assert any('at:"2020-01-01T"' in d or 'at:"2020-01-01' in d for d in replica), replica
    assert len(replica) == len(_docs(led))


def test_a_json_lines_export_whose_chain_is_broken_still_quarantines(tmp_path: Path) -> None:
    """The checks JSON keeps still run: a revision hash not in entriesHashList fails."""
    from settler.block_checks import verify_block

    led = _ledger(tmp_path / "source.db")
    export(led, tmp_path / "x", "JSON")
    buf = buffer(tmp_path / "b.db")
    ingest_export(buf, FolderStore(tmp_path / "x"), LEDGER)
    strand = next(iter(led.blocks(-1))).strand_id
    block = buf.get_block(f"{LEDGER.key}/{strand}/2")
    assert block is not None and block.revisions
    doc, rev = next(iter(block.revisions.items()))
    from dataclasses import replace

    forged = replace(block, revisions={doc: replace(rev, hash=bytes(32))})
    assert verify_block(forged).failure is not None


def _redact(folder: Path, n: int) -> str:
    """Redact, in the exported objects, the insert of the document whose ``n`` is ``n``: its
    data replaced by its Ion hash (``dataHash``), as QLDB exports a redacted revision."""
    for path in sorted(folder.rglob("*.ion")):
        values = simpleion.loads(path.read_bytes(), single_value=False)
        for block in values:
            for r in block.get("revisions") or []:
                data = r.get("data")
                if data is not None and data.get("n") == n and r["metadata"]["version"] == 0:
                    r["dataHash"] = ion_hash(data)
                    del r["data"]
                    path.write_text("\n".join(simpleion.dumps(v, binary=False) for v in values))
                    return str(r["metadata"]["id"])
    raise AssertionError(f"no insert of n={n} in the export")


def test_a_redacted_revision_verifies_by_its_hash_and_replays_as_redacted(
    tmp_path: Path,
) -> None:
    led = _ledger(tmp_path / "source.db")
    export(led, tmp_path / "x", "ION_TEXT")
    doc_id = _redact(tmp_path / "x", 1)  # n=1 is deleted later by the source
    buf, report, dest = _settle(tmp_path, tmp_path / "x")
    assert not report.halted, report.halt_reason
    assert report.quarantined == 0
    assert report.unverified_reasons == {}
    held = [b for b in buf.blocks() if b.sequence_no >= 0]
    assert held
    assert _docs(dest.ledger) == _docs(led)
    assert doc_id not in dest.source_ids().values()


def test_a_redacted_revision_with_a_forged_data_hash_quarantines(tmp_path: Path) -> None:
    from dataclasses import replace

    from settler.block_checks import verify_block

    led = _ledger(tmp_path / "source.db")
    export(led, tmp_path / "x", "ION_TEXT")
    doc_id = _redact(tmp_path / "x", 1)
    buf = buffer(tmp_path / "b.db")
    ingest_export(buf, FolderStore(tmp_path / "x"), LEDGER)
    block = next(
        b
        for b in (
            buf.get_block(f"{LEDGER.key}/{r.strand_id}/{r.sequence_no}") for r in buf.blocks()
        )
        if b is not None and doc_id in b.revisions
    )
    assert block.revisions[doc_id].is_redacted
    assert verify_block(block).ok
    rev = block.revisions[doc_id]
    forged = replace(
        block, revisions={**block.revisions, doc_id: replace(rev, data_hash=bytes(32))}
    )
    failure = verify_block(forged).failure
    assert failure is not None and "redacted" in failure


@pytest.mark.parametrize("fmt", ["ION_TEXT", "JSON"])
def test_verify_source_counts_the_export_part_of_a_simulation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """``verify --source`` on a ``simulate --export`` folder, export then stream: documents last
    revised in the export are in the stream-revisions reference, not unexpected in the replica;
    with a JSON Lines export, the source-ledger comparison counts the down-converted copies
    apart and is still equal (the stream's blocks replayed over them made the rest exact)."""
    import json

    from qldb_settle.cli import main
    from qldb_settle.simulate import SimulationConfig, simulate

    sim = tmp_path / "sim"
    simulate(sim, SimulationConfig(transactions=80, seed=5, export_format=fmt))
    arn = json.loads((sim / "simulation.json").read_text())["stats"]["export"]["ledger_arn"]
    buf, rep = f"sqlite:{tmp_path / 'b.db'}", f"embedded:{tmp_path / 'r.db'}"
    manifests = str(sim / "export" / "journalExport")
    assert (
        main(["ingest", "--buffer", buf, "--ledger-arn", arn, manifests, str(sim / "events")]) == 0
    )
    main(["settle", "--buffer", buf, "--destination", rep, "--now", "2100-01-01T00:00:00Z"])
    capsys.readouterr()
    code = main(["verify", "--destination", rep, "--source", str(sim), "--json"])
    out = json.loads(capsys.readouterr().out)
    stream = next(r for r in out["references"] if r["reference"] == "stream revisions")
    assert stream["unexpected"] == 0 and stream["missing"] == 0, out
    assert code == 0 and out["equal"], out
    source = next(r for r in out["references"] if r["reference"] == "source ledger")
    assert (source["down_converted"] > 0) == (fmt == "JSON"), out
    assert out["down_converted"] == source["down_converted"]


def test_a_stream_statement_on_a_down_converted_copy_replays_from_its_revision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Export (JSON Lines) then stream: the stream's literal UPDATE of a document whose replica
    copy holds the export's JSON types cannot reproduce the stream's revision (a timestamp the
    copy has as a string), so the settler replays that block from its revision, which carries
    the source's Ion data: the copy is exact again, nothing is quarantined."""
    from export_helpers import stream_items

    led = _ledger(tmp_path / "source.db")
    info = export(led, tmp_path / "x", "JSON")
    led.execute("UPDATE Person AS p SET p.n = 100 WHERE p.n = 99")  # a literal statement
    stream = stream_items(led, after=info["last"])
    buf = buffer(tmp_path / "b.db")
    assert not ingest_export(buf, FolderStore(tmp_path / "x"), LEDGER).problems
    assert buf.put(stream).stored["blocks"] == 1
    dest = EmbeddedDestination(tmp_path / "r.db")
    try:
        with caplog.at_level(logging.INFO, logger="settler.cycle"):
            report = settle(buf, dest, now=FAR, policy=SettlePolicy(window_seconds=0))
        assert not report.halted, report.halt_reason
        assert report.quarantined == 0 and report.blocks == info["blocks"] + 1
        notes = [r.getMessage() for r in caplog.records]
        assert any("replaying the block from its revisions" in n for n in notes), notes
        updated = [d for d in _docs(dest.ledger) if "n:100" in d]
        assert updated == [d for d in _docs(led) if "n:100" in d]  # Ion types back: exact
        assert "2020-01-01T" in updated[0] and 'at:"' not in updated[0]
    finally:
        dest.close()
        buf.close()
        led.close()


def test_verify_matches_the_copies_a_json_lines_export_down_converted_and_only_those(
    tmp_path: Path,
) -> None:
    """The replica of a JSON Lines export holds the timestamped document with a string: compared
    with the source it is equal only after down-conversion, counted apart; the same lossy
    document in a replica that does not mark it stays a difference."""
    from settler.compare import compare, documents_of_ledger

    led = _ledger(tmp_path / "source.db")
    export(led, tmp_path / "x", "JSON")
    led.close()
    buf, report, dest = _settle(tmp_path, tmp_path / "x")
    try:
        assert not report.halted, report.halt_reason
        source = documents_of_ledger(tmp_path / "source.db")
        replica = [(t, d) for t, _i, d in dest.documents()]
        marked = dest.down_converted_documents()
        assert len(marked) == 1 and "2020-01-01" in simpleion.dumps(marked[0][1], binary=False)
        plain = compare("source ledger", source, replica)
        assert (len(plain.missing), len(plain.unexpected)) == (1, 1)  # Ion types lost
        matched = compare("source ledger", source, replica, down_converted_copies=marked)
        assert matched.equal and matched.down_converted == 1
        assert matched.summary()["down_converted"] == 1
        # A copy equal after down-conversion but not marked by the destination: still different.
        other = [(t, d) for t, d in replica if (t, d) not in marked]
        unmarked = compare("source", source, other + marked, down_converted_copies=other[:1])
        assert not unmarked.equal and unmarked.down_converted == 0
    finally:
        dest.close()
        buf.close()
