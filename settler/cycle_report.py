"""What one settle cycle did: ``SettleReport``, and its ``settle --json`` form (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from buffer.port import BlockRow, Gap
from destination.port import Checkpoint
from runtime.distribution import distribution

JSON_KEYS = (
    "replayed", "held_by_window", "early_released", "gaps_passed", "late", "quarantined",
    "digests", "halted", "halt_reason", "checkpoint", "lag_ms", "rates",
)  # fmt: skip


_DAY_S = 86_400
_YEAR_S = 365.25 * _DAY_S


def human_duration(ms: float | None) -> str:
    """A duration in milliseconds as a person reads it, rounded to its two largest units:
    ``850 ms``, ``7.9 s``, ``42 s``, ``2 min 5 s``, ``3 h 12 min``, ``2 days 4 h``, ``45 days``,
    ``5.0 years``; ``-`` for None. The one formatter of every duration the command line prints
    (JSON keeps milliseconds)."""
    if ms is None:
        return "-"
    if ms < 0:
        return "-" + human_duration(-ms)
    if ms < 999.5:
        return f"{ms:.0f} ms"
    s = ms / 1000.0
    if s < 9.95:
        return f"{s:.1f} s"
    if s < 59.5:
        return f"{s:.0f} s"
    if (whole_s := round(s)) < 3600:
        return f"{whole_s // 60} min {whole_s % 60} s"
    if (whole_min := round(s / 60)) < 24 * 60:
        return f"{whole_min // 60} h {whole_min % 60} min"
    if (whole_h := round(s / 3600)) < 10 * 24:
        days = whole_h // 24
        return f"{days} day{'' if days == 1 else 's'} {whole_h % 24} h"
    if (days := round(s / _DAY_S)) < 365:
        return f"{days} days"
    return f"{s / _YEAR_S:.1f} years"


def block_ref(strand_id: str, sequence_no: int) -> str:
    """A block as ``qldb-settle resolve`` takes it: ``STRAND/SEQUENCE``."""
    return f"{strand_id}/{sequence_no}"


LATE_LISTED = 5


def late_recovery(
    strand_id: str, sequence_no: int, late: Sequence[BlockRow], *, flags: str = ""
) -> tuple[str, list[str]]:
    """What to say, and the commands to run, when block ``sequence_no`` of the strand failed
    replay while ``late`` blocks of that strand (commit order) wait in the buffer: they arrived
    after the settler had passed them (as with a settle window below the stream's delay), so the
    replica lacks them and the failed block may need one of them (a table, an index, a
    document). The commands apply each late block (the first ``LATE_LISTED``), retry the failed
    block and settle (``flags``: buffer and destination flags to repeat, if any)."""
    refs = [block_ref(r.strand_id, r.sequence_no) for r in late]
    listed = ", ".join(refs[:LATE_LISTED])
    if len(refs) > LATE_LISTED:
        listed += f" and {len(refs) - LATE_LISTED} more (qldb-settle blocks --state late)"
    many = len(refs) != 1
    what = (
        f"{len(refs)} late block{'s' if many else ''} of this strand, which the replica lacks "
        f"and this block may need, {'wait' if many else 'waits'} in the buffer: {listed} "
        "(they arrived after the settler had passed them, as with a settle window below the "
        "stream's delay)"
    )
    opt = f" {flags}" if flags else ""
    commands = [
        f"qldb-settle resolve{opt} {ref} --apply-late --reason TEXT" for ref in refs[:LATE_LISTED]
    ]
    commands.append(
        f"qldb-settle resolve{opt} {block_ref(strand_id, sequence_no)} --retry --reason TEXT"
    )
    commands.append(f"qldb-settle settle{opt}")
    return what, commands


def late_blocks_hint(
    strand_id: str, sequence_no: int, late: Sequence[BlockRow], *, flags: str = ""
) -> str:
    """``late_recovery`` in one line (a halt reason): what, then the commands in order."""
    what, commands = late_recovery(strand_id, sequence_no, late, flags=flags)
    *applies, retry, settle = commands
    listed = ", ".join(f"`{c}`" for c in applies)
    more = (
        " (and the other late blocks the same way, in commit order)"
        if len(late) > len(applies)
        else ""
    )
    return f"{what}; run {listed}{more}, then `{retry}` and `{settle}`"


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
    seconds: float = 0.0  # wall-clock time of the cycle so far (``rates``)

    def halt(self, reason: str) -> None:
        if not self.halted:
            self.halted = True
            self.halt_reason = reason

    def rates(self) -> dict[str, float]:
        """The cycle's wall-clock seconds and its blocks, statements and revisions per second
        (0 when no time has passed)."""
        per = 1.0 / self.seconds if self.seconds > 0 else 0.0
        return {
            "seconds": round(self.seconds, 3),
            "blocks_per_s": round(self.blocks * per, 1),
            "statements_per_s": round(self.statements * per, 1),
            "revisions_per_s": round(self.revisions * per, 1),
        }

    def absorb(self, later: SettleReport) -> None:
        """Fold the next cycle's report into this one, making it the report of both (the demo's
        totals over its cycles): counts, lags and time add up; what describes the buffer at the
        end of a cycle (``held_by_window``, ``late``, ``quarantined``, the halt, the checkpoints,
        the depth) is the later cycle's."""
        for name in (
            "blocks", "statements", "revisions", "early_released", "gaps_passed",
            "digests_verified", "digests_unverified", "split_blocks", "repaired", "purged",
            "seconds",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(later, name))
        for reason, n in later.unverified_reasons.items():
            self.unverified_reasons[reason] = self.unverified_reasons.get(reason, 0) + n
        self.lag_ms.extend(later.lag_ms)
        self.quarantined_now.extend(later.quarantined_now)
        self.gaps.extend(later.gaps)
        for name in (
            "held_by_window", "late", "quarantined", "halted", "halt_reason", "gap_held",
            "checkpoints", "waiting", "deadline_reached", "buffer_depth", "oldest_pending_age_ms",
        ):  # fmt: skip
            setattr(self, name, getattr(later, name))

    @property
    def needs_operator(self) -> bool:
        return self.halted or self.quarantined > 0 or self.late > 0

    def to_json(self) -> dict[str, Any]:
        """Exactly the keys DESIGN.md lists for ``settle --json``, plus ``rates`` (issue 14:
        ``seconds``, ``blocks_per_s``, ``statements_per_s``, ``revisions_per_s``).
        ``checkpoint`` is the strand's checkpoint object, null before any, or a list when the
        buffer holds several strands."""
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
            "rates": self.rates(),
        }
