"""The simulator, the demo and verify (issue 5): the stream is hostile but valid, the demo proves
the replica equal on many seeds, and verify does find a difference when there is one."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from buffer.port import BufferedBlock, Incoming, Rejection
from ingest.decode import decode_file
from journal.records import BlockSummary, RevisionDetails
from qldb_settle.cli import main
from qldb_settle.simulate import SimulationConfig, simulate
from settler.block_checks import verify_block

DEMO_KEYS = ("verified", "transactions", "blocks_replayed", "duplicates", "lag_ms")
SETTLE_KEYS = (
    "replayed", "held_by_window", "early_released", "gaps_passed", "late", "quarantined",
    "digests", "halted", "halt_reason", "checkpoint", "lag_ms",
)  # fmt: skip


@pytest.fixture(scope="module")
def simulation(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return simulate(tmp_path_factory.mktemp("sim") / "out", SimulationConfig(transactions=400))


def test_the_simulated_stream_passes_the_ingest_path_and_verification(simulation: Any) -> None:
    summaries: dict[str, BlockSummary] = {}
    revisions: dict[str, dict[str, RevisionDetails]] = {}
    kinds: dict[str, tuple[str, ...]] = {}
    for path in simulation.event_paths:
        for item in decode_file(path):
            assert not isinstance(item, Rejection), item.reason
            assert isinstance(item, Incoming)
            rec = item.record
            if isinstance(rec, BlockSummary):
                summaries[rec.block_id] = rec
                kinds[rec.block_id] = item.statement_kinds
            elif isinstance(rec, RevisionDetails):
                revisions.setdefault(rec.block_id, {})[rec.document_id] = rec
    assert summaries
    for block_id, summary in summaries.items():
        block = BufferedBlock(
            summary=summary,
            revisions=revisions.get(block_id, {}),
            statement_kinds=kinds[block_id],
            state="pending",
            arrived_at=None,
        )
        assert block.complete, block_id
        result = verify_block(block, None)
        assert result.ok, result.failure


def test_default_settings_give_the_mix_the_issue_asks_for(simulation: Any) -> None:
    s = simulation.stats
    assert s["occ_conflicts"] > 0, "transactions should overlap enough to conflict"
    assert s["revision_replay_blocks"] >= 0.20 * s["blocks"]
    assert s["read_only_blocks"] >= 0.05 * s["blocks"], "read-only gaps"
    assert s["read_only_blocks_streamed"] == 0
    assert s["duplicate_records"] >= 0.10 * s["delivered_records"]
    assert s["aggregates"] > 0 and s["redelivered_events"] >= 0


def test_records_spread_over_every_shard_and_transactions_scatter(simulation: Any) -> None:
    shards = Counter(e.shard for e in simulation.events)
    assert set(shards) == {0, 1, 2, 3}
    # The records of one block land on more than one shard somewhere in the run.
    where: dict[str, set[int]] = {}
    for event, path in zip(simulation.events, simulation.event_paths, strict=True):
        for item in decode_file(path):
            if isinstance(item, Incoming) and isinstance(
                item.record, BlockSummary | RevisionDetails
            ):
                where.setdefault(item.record.block_id, set()).add(event.shard)
    assert any(len(s) > 1 for s in where.values())


def test_the_same_seed_gives_the_same_stream(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", SimulationConfig(transactions=40, seed=5))
    b = simulate(tmp_path / "b", SimulationConfig(transactions=40, seed=5))
    assert [p.read_bytes() for p in a.event_paths] == [p.read_bytes() for p in b.event_paths]


def test_streaming_read_only_blocks_leaves_no_read_only_gap(tmp_path: Path) -> None:
    sim = simulate(tmp_path / "ro", SimulationConfig(transactions=60, stream_read_only=True))
    assert sim.stats["read_only_blocks"] > 0
    assert sim.stats["read_only_blocks_streamed"] == sim.stats["read_only_blocks"]


def _demo(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["demo", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.mark.parametrize("seed", range(10))
def test_the_demo_is_verified_on_ten_seeds(
    seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _demo(
        capsys, "--transactions", "50", "--seed", str(seed), "--workdir", str(tmp_path / "d")
    )
    assert report["verified"] is True, report["comparisons"]
    assert code == 0
    assert tuple(report)[: len(DEMO_KEYS)] == DEMO_KEYS
    assert set(SETTLE_KEYS) <= set(report)
    assert report["blocks_replayed"] > 0 and report["halted"] is False
    assert all(c["equal"] for c in report["comparisons"])


def test_the_demo_with_early_release_and_streamed_read_only_blocks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _demo(
        capsys, "--transactions", "60", "--seed", "3", "--early-release",
        "--stream-read-only", "--workdir", str(tmp_path / "d"),
    )  # fmt: skip
    assert code == 0 and report["verified"] is True
    assert report["early_released"] > 0
    assert report["gaps_passed"] == 0


def test_verify_finds_a_document_changed_in_the_replica(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "d"
    code, report = _demo(capsys, "--transactions", "30", "--seed", "2", "--workdir", str(workdir))
    assert code == 0 and report["verified"] is True
    from ledger import EmbeddedLedger

    replica = EmbeddedLedger(workdir / "replica.db", enforce_limits=False)
    try:
        replica.execute("UPDATE Person AS p SET p.Balance = 123456.78 WHERE p.GovId = 'GOV000001'")
    finally:
        replica.close()
    code = main(
        ["verify", "--json", "--destination", f"embedded:{workdir / 'replica.db'}",
         "--source", str(workdir / "simulation")]
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    assert result["equal"] is False
    assert result["missing"] == 2 and result["unexpected"] == 2  # one document, two references


def test_demo_refuses_a_workdir_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--workdir", str(tmp_path), "--transactions", "5"]) == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"
