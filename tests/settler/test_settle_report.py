"""``SettleReport.absorb``: the report of several cycles (the demo's totals) from each cycle's."""

from __future__ import annotations

from destination.port import Checkpoint
from settler.cycle_report import JSON_KEYS, SettleReport


def _checkpoint(seq: int) -> Checkpoint:
    return Checkpoint(ledger="L", strand_id="S", sequence_no=seq, block_hash=bytes([seq]) * 32)


def test_counts_add_up_and_the_end_state_is_the_later_cycles() -> None:
    first = SettleReport(
        blocks=3, statements=7, revisions=4, held_by_window=5, early_released=1, gaps_passed=2,
        late=1, quarantined=0, digests_verified=6, digests_unverified=1,
        unverified_reasons={"parameters": 1}, halted=True, halt_reason="first",
        checkpoints=[_checkpoint(3)], lag_ms=[10.0, 20.0], seconds=1.5, buffer_depth=9,
    )  # fmt: skip
    later = SettleReport(
        blocks=2, statements=2, revisions=1, held_by_window=0, early_released=0, gaps_passed=1,
        late=0, quarantined=1, digests_verified=2, digests_unverified=2,
        unverified_reasons={"parameters": 1, "redacted": 1}, halted=False,
        checkpoints=[_checkpoint(5)], lag_ms=[30.0], seconds=0.5, buffer_depth=0,
    )  # fmt: skip
    first.absorb(later)
    out = first.to_json()
    assert set(out) == set(JSON_KEYS)
    assert out["replayed"] == {"blocks": 5, "statements": 9, "revisions": 5}
    assert (out["early_released"], out["gaps_passed"]) == (1, 3)
    assert out["digests"] == {"verified": 8, "unverified": 3}
    assert first.unverified_reasons == {"parameters": 2, "redacted": 1}
    assert out["lag_ms"] == {"p50": 20.0, "p99": 30.0, "max": 30.0}
    assert out["rates"]["seconds"] == 2.0 and out["rates"]["blocks_per_s"] == 2.5
    # What describes the buffer at the end is the later cycle's, not a sum.
    assert (out["held_by_window"], out["late"], out["quarantined"]) == (0, 0, 1)
    assert (out["halted"], out["halt_reason"]) == (False, None)
    assert out["checkpoint"]["sequence"] == 5 and first.buffer_depth == 0
