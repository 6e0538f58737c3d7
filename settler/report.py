"""What one settle cycle did: ``SettleReport``, and its ``settle --json`` form (DESIGN.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from buffer.port import Gap
from destination.port import Checkpoint

JSON_KEYS = (
    "replayed", "held_by_window", "early_released", "gaps_passed", "late", "quarantined",
    "digests", "halted", "halt_reason", "checkpoint", "lag_ms",
)  # fmt: skip


def distribution(values: Sequence[float]) -> dict[str, float | None]:
    """``{"p50", "p99", "max"}`` by nearest rank; None for no values."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return {"p50": rank(0.50), "p99": rank(0.99), "max": ordered[-1]}


def checkpoint_json(cp: Checkpoint) -> dict[str, Any]:
    """A checkpoint for JSON output: ledger, strand, sequence, part (null: whole), block hash."""
    return {
        "ledger": cp.ledger,
        "strand": cp.strand_id,
        "sequence": cp.sequence_no,
        "part": cp.part,
        "block_hash": cp.block_hash.hex(),
    }


def iso_ms(value: datetime) -> str:
    v = value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


@dataclass(slots=True)
class SettleReport:
    """One cycle. ``late`` and ``quarantined`` are the blocks in those states in the buffer at
    the end of the cycle (they wait for an operator); every other count is this cycle's.
    ``held_by_window`` counts the pending blocks read this cycle that the window (or a missing
    revision in front of them) kept back; ``halted`` means the line stops at a block that needs
    an operator (``halt_reason`` says which and why)."""

    blocks: int = 0
    statements: int = 0
    revisions: int = 0
    held_by_window: int = 0
    early_released: int = 0
    gaps_passed: int = 0
    late: int = 0
    quarantined: int = 0
    digests_verified: int = 0
    digests_unverified: int = 0
    unverified_reasons: dict[str, int] = field(default_factory=dict)
    halted: bool = False
    halt_reason: str | None = None
    gap_held: str | None = None  # why a gap was not passed: the ingest was impaired
    checkpoints: list[Checkpoint] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    # Not part of ``settle --json``; for the human output, logs and metrics.
    quarantined_now: list[tuple[str, str]] = field(default_factory=list)
    waiting: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    split_blocks: int = 0
    repaired: int = 0
    deadline_reached: bool = False
    buffer_depth: int = 0
    purged: int = 0
    oldest_pending_age_ms: float | None = None

    def halt(self, reason: str) -> None:
        if not self.halted:
            self.halted = True
            self.halt_reason = reason

    @property
    def needs_operator(self) -> bool:
        return self.halted or self.quarantined > 0 or self.late > 0

    def to_json(self) -> dict[str, Any]:
        """Exactly the keys DESIGN.md lists for ``settle --json``. ``checkpoint`` is the strand's
        checkpoint object, null before any, or a list when the buffer holds several strands."""
        checkpoint: Any = None
        if len(self.checkpoints) == 1:
            checkpoint = checkpoint_json(self.checkpoints[0])
        elif self.checkpoints:
            checkpoint = [checkpoint_json(cp) for cp in self.checkpoints]
        return {
            "replayed": {
                "blocks": self.blocks,
                "statements": self.statements,
                "revisions": self.revisions,
            },
            "held_by_window": self.held_by_window,
            "early_released": self.early_released,
            "gaps_passed": self.gaps_passed,
            "late": self.late,
            "quarantined": self.quarantined,
            "digests": {"verified": self.digests_verified, "unverified": self.digests_unverified},
            "halted": self.halted,
            "halt_reason": self.halt_reason,
            "checkpoint": checkpoint,
            "lag_ms": distribution(self.lag_ms),
        }
