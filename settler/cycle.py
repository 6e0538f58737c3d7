"""One settle cycle (DESIGN.md rules 1-5): release settled blocks in commit order, verify, replay
each exactly once, mark.

Per strand, the destination's checkpoint is the truth: the buffer's marks are repaired from it
first, and the lowest quarantined block after it stops the line (``settler.repair``). Then the
pending blocks after the checkpoint are taken in ``sequenceNo`` order and each is

- **held** while its commit time is younger than the window, unless early release is on and the
  chain proves it is the very next block (``sequenceNo`` = checkpoint + 1 and
  ``previousBlockHash`` = the checkpoint's ``blockHash``);
- **held** while a revision it needs is not buffered (reported once older than the window);
- preceded by a **gap** (missing sequence numbers) passed only by the window rule, never while the
  buffer holds unresolved rejected records (unless allowed), and recorded before it is passed;
- **verified** and **planned**; a conflicted block, or one failing verification, planning or
  replay, is quarantined with its reason and the line halts there (nothing after it replayed);
- **grouped** with the blocks after it (up to ``group_size`` and the destination's limits) into
  one ``Destination.apply`` with the compare-and-set checkpoint. A ``CheckpointMismatch`` means
  the checkpoint moved under the cycle: it is re-read and the marks repaired, nothing is applied
  twice. A replay error in a group applies the blocks before the failing one and quarantines it;
  a block whose statements meet a copy down-converted by a JSON Lines export
  (``DownConvertedCopy``) is replayed from its revisions instead.
- **marked** replayed once the destination committed.

What the cycle may do is one value, ``SettlePolicy`` (the window, early release, group and page
sizes, the lease, retention, content checks, gaps with rejections), built once by each entry point
from its settings and carried whole; what varies per call is context passed beside it. Time is
injected: ``now`` is the cycle's instant, ``deadline`` a callable the cycle asks before each
destination transaction. ``faults`` is called with the name of each step (``STEPS``) so a test can
crash the cycle there.

The release decisions and the application of groups stay in one module, ``_Cycle``: they share
one strand's state (the checkpoint expected, the position accepted, the open group) and the one
path by which any step holds, halts or quarantines the line (``_Stop``); split apart, each would
have to hand that state back and forth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from buffer.port import BufferedBlock, Gap, Mark, SettlingBuffer
from destination.port import BlockReplay, Checkpoint, Destination
from journal.errors import DownConvertedCopy, ReplayError, SettleError
from runtime.errors import CheckpointMismatch, LeaseHeld, TransientError
from settler.block_checks import verify_block
from settler.collector import collector_tuned
from settler.cycle_report import SettleReport, human_duration, late_blocks_hint
from settler.lease import Lease
from settler.plan import Plan, fits, plan_block
from settler.repair import applied_through, late_before, repair_marks, stop_of

log = logging.getLogger(__name__)

DEFAULT_GROUP_SIZE = 100
DEFAULT_PAGE_SIZE = 500
# A lease outlives a crashed settler by at most this (a live one renews it: ``Lease``).
DEFAULT_LEASE_SECONDS = 300.0
MAX_CHECKPOINT_RETRIES = 5

STEPS = (
    "leased",  # the lease is held
    "checkpoint",  # a strand's destination checkpoint was read
    "repaired",  # the buffer's marks were repaired from it
    "read",  # a page of pending blocks was read
    "gap_recorded",  # a gap about to be passed was recorded
    "applying",  # just before a destination transaction
    "applied",  # the destination committed; the buffer's marks are not written yet
    "marked",  # the blocks of that transaction are marked replayed
    "quarantined",  # a block was marked quarantined
    "done",  # every strand handled, before the lease is released
)

Faults = Callable[[str], None]
# Why the ingest may still deliver the blocks of a gap, or None when it is healthy.
IngestHealth = Callable[[], str | None]
Deadline = Callable[[], bool]
# Called with the report after each destination transaction is marked (its ``seconds`` current).
Progress = Callable[[SettleReport], None]


@dataclass(frozen=True, slots=True)
class SettlePolicy:
    """What a settle cycle may do, as configured (the per-call context, ``now``, ``deadline``,
    ``owner``, ``faults``, ``ingest_health`` and ``clock``, is passed to ``settle`` beside it).

    - ``window_seconds``: a block is settled once its commit time is this old; a gap is passed
      only by it.
    - ``early_release``: release the very next block before the window when the hash chain
      proves it adjacent to the checkpoint.
    - ``group_size``: at most this many blocks in one destination transaction (and within the
      destination's limits); ``page_size``: pending blocks read from the buffer per request (each
      taken as 1 when below it).
    - ``lease_seconds``: how long the lease outlives a settler that crashed (renewed while the
      cycle runs).
    - ``retention``: with it, the statements and revisions of replayed blocks committed longer
      ago than that are deleted from the buffer at the end of the cycle (block headers stay).
    - ``check_content``: also check that each revision's data and metadata hash to its revision
      hash (``settler.block_checks``; the costliest check, about a millisecond per small revision).
    - ``allow_gaps_with_rejections``: pass a gap even while the buffer holds unresolved
      rejected records (which could be the missing block).
    """

    window_seconds: float
    early_release: bool = False
    group_size: int = DEFAULT_GROUP_SIZE
    page_size: int = DEFAULT_PAGE_SIZE
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    retention: timedelta | None = None
    check_content: bool = True
    allow_gaps_with_rejections: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_size", max(1, self.group_size))
        object.__setattr__(self, "page_size", max(1, self.page_size))

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


class _Stop(Exception):
    """The line of this strand stops here (held, halted or out of time)."""


@dataclass(slots=True)
class _Item:
    block: BufferedBlock
    plan: Plan
    gap: Gap | None
    early: bool
    digests: tuple[int, int, tuple[str, ...]]
    hashed: Mapping[str, tuple[bytes, Any]] | None = None  # what verification hashed


@dataclass(slots=True)
class _Strand:
    ledger: str
    strand_id: str
    expected: Checkpoint | None  # the destination's checkpoint, as last read or written
    position: Checkpoint | None  # the last block accepted (in the group, or applied)
    group: list[_Item] = field(default_factory=list)
    stop_at: int | None = None  # lowest quarantined sequence number: the line cannot pass it
    stop_reason: str | None = None


def _virtual_checkpoint(block: BufferedBlock) -> Checkpoint:
    s = block.summary
    return Checkpoint(
        ledger=s.ledger,
        strand_id=s.address.strand_id,
        sequence_no=s.address.sequence_no,
        block_hash=s.block_hash,
    )


def _ms(delta: timedelta) -> float:
    return delta.total_seconds() * 1000.0


class _Cycle:
    def __init__(
        self,
        buffer: SettlingBuffer,
        destination: Destination,
        *,
        now: datetime,
        policy: SettlePolicy,
        deadline: Deadline | None,
        owner: str,
        faults: Faults | None,
        lease: Lease | None = None,
        ingest_health: IngestHealth | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.policy = policy
        self.progress = progress
        self.started = time.perf_counter()
        self.lease = lease
        self.ingest_health = ingest_health
        self._impaired: tuple[str | None] | None = None  # asked once per cycle, at the first gap
        self.buffer = buffer
        self.destination = destination
        self.now = now
        self.deadline = deadline
        self.owner = owner
        self.fault = faults or (lambda step: None)
        self.report = SettleReport()
        self._unresolved: int | None = None  # asked once per cycle, at the first gap

    # --- per strand -------------------------------------------------------------------------------

    def strand(self, ledger: str, strand_id: str) -> None:
        for _ in range(MAX_CHECKPOINT_RETRIES):
            cp = self.destination.checkpoint(ledger, strand_id)
            self.fault("checkpoint")
            self.report.repaired += repair_marks(
                self.buffer,
                ledger,
                strand_id,
                cp,
                now=self.now,
                owner=self.owner,
                page_size=self.policy.page_size,
            )
            self.fault("repaired")
            st = _Strand(ledger=ledger, strand_id=strand_id, expected=cp, position=cp)
            stop = stop_of(self.buffer, ledger, strand_id, applied_through(cp))
            if stop is not None:
                st.stop_at, st.stop_reason = stop
            try:
                self._release(st)
                self._flush(st)
            except _Stop:
                pass
            except CheckpointMismatch as exc:
                log.warning("%s/%s: %s; re-reading the checkpoint", ledger, strand_id, exc)
                continue
            if st.expected is not None:
                self.report.checkpoints.append(st.expected)
            return
        raise TransientError(
            f"the checkpoint of {ledger}/{strand_id} kept moving under the settler "
            f"({MAX_CHECKPOINT_RETRIES} times): is another settler writing to the destination?"
        )

    # --- release ----------------------------------------------------------------------------------

    def _release(self, st: _Strand) -> None:
        after = applied_through(st.position)
        while True:
            self._check_deadline(st)
            page = self.buffer.pending(st.ledger, st.strand_id, after, self.policy.page_size)
            self.fault("read")
            if not page:
                break
            for i, block in enumerate(page):
                self._consider(st, block, page[i:])
            after = page[-1].summary.address.sequence_no
        if st.stop_at is not None:
            self._flush(st)
            self.report.halt(st.stop_reason or "")

    def _hold(self, st: _Strand, rest: Sequence[BufferedBlock]) -> None:
        self.report.held_by_window += len(rest)
        self._flush(st)
        raise _Stop

    def _halt(self, st: _Strand, reason: str) -> None:
        self._flush(st)
        self.report.halt(reason)
        raise _Stop

    def _quarantine(self, st: _Strand, block: BufferedBlock, reason: str) -> None:
        self._flush(st)
        reason = reason.removeprefix(f"block {block.block_id}: ")  # the mark names the block
        self.buffer.mark(
            [
                Mark(
                    block_id=block.block_id,
                    state="quarantined",
                    at=self.now,
                    reason=reason,
                    actor=self.owner,
                )
            ]
        )
        self.fault("quarantined")
        log.error("quarantined %s: %s", block.block_id, reason)
        self.report.quarantined_now.append((block.block_id, reason))
        seq = block.summary.address.sequence_no
        late = late_before(self.buffer, st.ledger, st.strand_id, seq, reason)
        hint = f"; {late_blocks_hint(st.strand_id, seq, late)}" if late else ""
        self.report.halt(f"block {block.block_id} quarantined: {reason}{hint}")
        raise _Stop

    def _consider(self, st: _Strand, block: BufferedBlock, rest: Sequence[BufferedBlock]) -> None:
        s = block.summary
        seq = s.address.sequence_no
        pos = st.position
        if st.stop_at is not None and seq >= st.stop_at:
            self._halt(st, st.stop_reason or "")
        if pos is not None and pos.part is not None:
            if seq != pos.sequence_no:
                self._halt(
                    st,
                    f"the checkpoint names part {pos.part} of block {pos.sequence_no}, which is "
                    "not pending",
                )
            self._resume_parts(st, block)
            return

        settled = s.commit_time + self.policy.window <= self.now
        gap: Gap | None = None
        if pos is not None and seq > pos.sequence_no + 1:
            first, last = pos.sequence_no + 1, seq - 1
            if not settled:
                self._hold(st, rest)
            if not self.policy.allow_gaps_with_rejections and self._unresolved_rejections() > 0:
                self._halt(
                    st,
                    f"gap {first}..{last} before block {block.block_id} not passed: the buffer "
                    "holds unresolved rejected records or failed stream ranges that could be "
                    "the missing block (qldb-settle rejected; redrive or acknowledge them, or "
                    "allow gaps)",
                )
            impaired = self._ingest_impaired()
            if impaired is not None:
                self.report.gap_held = impaired
                self._halt(
                    st,
                    f"gap {first}..{last} before block {block.block_id} not passed while the "
                    f"ingest is impaired: {impaired}",
                )
            gap = Gap(
                ledger=st.ledger, strand_id=st.strand_id, first=first, last=last, passed_at=self.now
            )

        if block.conflicted:
            self._quarantine(
                st,
                block,
                "a record of this block arrived again with different content (conflict; the "
                "other copy is kept with the rejected records)",
            )
        missing = block.missing_revisions
        if missing:
            if settled:
                self.report.waiting.append((block.block_id, missing))
                self.report.held_by_window += len(rest)
                self._halt(
                    st,
                    f"block {block.block_id} is still missing revisions of {', '.join(missing)} "
                    f"{human_duration(_ms(self.now - s.commit_time))} after its commit",
                )
            self._hold(st, rest)

        early = False
        if not settled:
            early = (
                self.policy.early_release
                and pos is not None
                and pos.part is None
                and seq == pos.sequence_no + 1
                and bool(pos.block_hash)
                and s.previous_block_hash == pos.block_hash
            )
            if not early:
                self._hold(st, rest)

        result = verify_block(block, pos, check_content=self.policy.check_content)
        if not result.ok:
            self._quarantine(st, block, result.failure or "verification failed")
        plan = plan_block(block, self.destination.limits, hashed=result.hashed)
        if plan.quarantine is not None:
            self._quarantine(st, block, plan.quarantine)

        item = _Item(
            block=block,
            plan=plan,
            gap=gap,
            early=early,
            digests=(
                result.digests_verified,
                result.digests_unverified,
                tuple(u.reason for u in result.unverified),
            ),
            hashed=result.hashed,
        )
        if plan.split:
            self._flush(st)
            self._apply_parts(st, item, plan.replays)
            return
        # Gaps do not cut a group: the group's gaps are recorded in one write just before its
        # transaction, and withdrawn again for the blocks a failure leaves unapplied.
        if st.group and (
            len(st.group) >= self.policy.group_size
            or not fits([i.plan for i in st.group] + [plan], self.destination.limits)
        ):
            self._flush(st)
        st.group.append(item)
        st.position = _virtual_checkpoint(block)

    # --- apply ------------------------------------------------------------------------------------

    def _check_deadline(self, st: _Strand) -> None:
        if self.deadline is not None and self.deadline():
            self.report.deadline_reached = True
            st.group.clear()
            st.position = st.expected
            raise _Stop

    def _unresolved_rejections(self) -> int:
        """The cycle's one look at the rejected records (a gap is passed only without any)."""
        if self._unresolved is None:
            self._unresolved = self.buffer.unresolved_rejections()
        return self._unresolved

    def _ingest_impaired(self) -> str | None:
        """Why the ingest may still be holding the missing blocks (None: it is healthy)."""
        if self.ingest_health is None:
            return None
        if self._impaired is None:
            self._impaired = (self.ingest_health(),)
        return self._impaired[0]

    def _record_gaps(self, items: Sequence[_Item]) -> None:
        """Record the gaps before the blocks that pass them, in one write (idempotent: a gap an
        earlier, interrupted cycle recorded keeps its first ``passed_at``)."""
        gaps = [i.gap for i in items if i.gap is not None]
        if not gaps:
            return
        self.buffer.record_gaps(gaps)
        self.fault("gap_recorded")

    def _withdraw_gaps(self, items: Sequence[_Item]) -> None:
        """The gaps before blocks that were not applied were never passed: forget them, so that a
        block still arriving inside one is replayed in order, not called late."""
        gaps = [i.gap for i in items if i.gap is not None]
        if gaps:
            self.buffer.withdraw_gaps(gaps)

    def _apply(self, st: _Strand, replays: Sequence[BlockReplay]) -> None:
        if self.lease is not None:
            self.lease.renew()  # never write to the destination on a lease that may be gone
        self.fault("applying")
        self.destination.apply(replays, st.expected)
        st.expected = replays[-1].checkpoint()
        self.fault("applied")

    def _done(self, items: Sequence[_Item]) -> None:
        self.buffer.mark(
            [
                Mark(block_id=i.block.block_id, state="replayed", at=self.now, actor=self.owner)
                for i in items
            ]
        )
        self.fault("marked")
        r = self.report
        for i in items:
            r.blocks += 1
            r.statements += i.plan.statements
            r.revisions += i.plan.revisions
            r.early_released += int(i.early)
            if i.gap is not None:
                r.gaps_passed += 1
                r.gaps.append(i.gap)
            verified, unverified, reasons = i.digests
            r.digests_verified += verified
            r.digests_unverified += unverified
            for reason in reasons:
                r.unverified_reasons[reason] = r.unverified_reasons.get(reason, 0) + 1
            r.lag_ms.append(_ms(self.now - i.block.summary.commit_time))
            r.split_blocks += int(i.plan.split)
        r.seconds = time.perf_counter() - self.started
        if self.progress is not None:
            self.progress(r)

    def _flush(self, st: _Strand) -> None:
        """Apply the group in one destination transaction (or, when one of its blocks fails,
        the blocks before it one by one and quarantine that block)."""
        if not st.group:
            return
        items, st.group = st.group, []
        self._check_deadline_before_apply(st, items)
        self._record_gaps(items)
        try:
            self._apply_group(st, items)
        except (CheckpointMismatch, TransientError, LeaseHeld):
            raise
        except SettleError as exc:
            if len(items) == 1:
                self._withdraw_gaps(items)
                self._quarantine(st, items[0].block, _replay_reason(exc))
            log.warning("a group of %d blocks failed (%s); applying one by one", len(items), exc)
            for k, item in enumerate(items):
                try:
                    self._apply_group(st, [item])
                except (CheckpointMismatch, TransientError, LeaseHeld):
                    raise
                except SettleError as one:
                    self._withdraw_gaps(items[k:])
                    self._quarantine(st, item.block, _replay_reason(one))
                self._done([item])
            st.position = st.expected
            return
        self._done(items)
        st.position = st.expected

    def _apply_group(self, st: _Strand, items: Sequence[_Item]) -> None:
        """The items' blocks in one destination transaction. A block whose statements meet a
        copy a JSON Lines export down-converted (``DownConvertedCopy``) is re-planned from its
        revisions, which carry the source's Ion data, and the transaction is tried again: at
        most once per block, since a block planned from revisions has no statements left."""
        limits = self.destination.limits
        while True:
            try:
                self._apply(st, [i.plan.replays[0] for i in items])
                return
            except DownConvertedCopy as exc:
                item = next(
                    (
                        i
                        for i in items
                        if i.block.block_id == exc.block and i.plan.mode == "statements"
                    ),
                    None,
                )
                if item is None:
                    raise
                plan = plan_block(item.block, limits, force_revisions=True, hashed=item.hashed)
                if plan.quarantine is not None or plan.split:
                    raise ReplayError(
                        item.block.block_id,
                        f"{exc.reason}; and its revisions cannot replace its statements here: "
                        f"{plan.quarantine or 'they would need more than one transaction'}",
                    ) from exc
                if not fits([i.plan for i in items if i is not item] + [plan], limits):
                    raise  # the group no longer fits: one by one
                log.info("%s: replaying the block from its revisions", exc)
                item.plan = plan

    def _check_deadline_before_apply(self, st: _Strand, items: Sequence[_Item]) -> None:
        if self.deadline is not None and self.deadline():
            self.report.deadline_reached = True
            st.position = st.expected
            raise _Stop

    def _apply_parts(self, st: _Strand, item: _Item, parts: Sequence[BlockReplay]) -> None:
        self._record_gaps([item])
        for part in parts:
            self._check_deadline_before_apply(st, [item])
            try:
                self._apply(st, [part])
            except (CheckpointMismatch, TransientError, LeaseHeld):
                raise
            except SettleError as exc:
                if part.part:
                    self._halt_partial(st, item.block, part, exc)
                self._withdraw_gaps([item])
                self._quarantine(st, item.block, _replay_reason(exc))
        log.warning(
            "block %s was applied in %d parts (over the destination's transaction limit): the "
            "replica passed through states the source never had",
            item.block.block_id, len(parts),
        )  # fmt: skip
        self._done([item])
        st.position = st.expected

    def _halt_partial(
        self, st: _Strand, block: BufferedBlock, part: BlockReplay, exc: SettleError
    ) -> None:
        self._quarantine(
            st,
            block,
            f"part {part.part} of {part.parts} failed after earlier parts were applied "
            f"(the replica holds a partly applied block): {_replay_reason(exc)}",
        )

    def _resume_parts(self, st: _Strand, block: BufferedBlock) -> None:
        pos = st.position
        assert pos is not None and pos.part is not None
        if block.summary.block_hash != pos.block_hash:
            self._halt(
                st,
                f"the checkpoint names part {pos.part} of block {block.block_id} with hash "
                f"{pos.block_hash.hex()}, but the buffered block's hash is "
                f"{block.summary.block_hash.hex()}",
            )
        result = verify_block(block, None, check_content=self.policy.check_content)
        if not result.ok:
            self._quarantine(st, block, result.failure or "verification failed")
        plan = plan_block(block, self.destination.limits, hashed=result.hashed)
        if (
            plan.quarantine is not None
            or not plan.split
            or (plan.replays[0].parts or 0) <= (pos.part + 1)
        ):
            self._halt(
                st,
                f"block {block.block_id} was partly applied (through part {pos.part}) but its "
                "plan no longer splits the same way: the destination's limits changed?",
            )
        item = _Item(
            block=block,
            plan=plan,
            gap=None,
            early=False,
            digests=(
                result.digests_verified,
                result.digests_unverified,
                tuple(u.reason for u in result.unverified),
            ),
        )
        self._apply_parts(st, item, plan.replays[pos.part + 1 :])


def _replay_reason(exc: SettleError) -> str:
    if isinstance(exc, ReplayError):
        return f"replay failed: {exc.reason}"
    return f"replay failed: {exc}"


def settle(
    buffer: SettlingBuffer,
    destination: Destination,
    *,
    now: datetime,
    policy: SettlePolicy,
    deadline: Deadline | None = None,
    owner: str = "qldb-settle-settler",
    faults: Faults | None = None,
    clock: Callable[[], float] = time.monotonic,
    ingest_health: IngestHealth | None = None,
    progress: Progress | None = None,
) -> SettleReport:
    """Run one settle cycle as of ``now`` under ``policy`` (``SettlePolicy``; see the module
    docstring) and report what it did.

    ``owner`` must name this process or invocation (two settlers with one owner would share the
    lease); the lease, held for ``policy.lease_seconds``, is renewed while the cycle runs
    (``clock``: seconds, monotonic). ``ingest_health`` is asked at the first gap
    of the cycle: a reason (records still in the ingest's failure queue, an iterator age above
    the window) holds every gap, since the missing blocks may still be on their way.

    ``progress`` is called with the report after each destination transaction is marked
    (``report.rates()`` says how fast the cycle goes); the report's ``seconds`` is the whole
    cycle's wall-clock time.

    Raises ``LeaseHeld`` when another settler holds the lease (who and until when), and
    ``TransientError`` when the buffer or destination cannot be reached or the lease was lost
    mid-cycle (nothing is lost: run it again).

    The cyclic garbage collector is tuned while the cycle runs (``settler.collector``: the heap
    from before the cycle frozen, fewer young collections; restored afterwards)."""
    with collector_tuned():  # the cyclic GC tuned for the cycle (``settler.collector``)
        lease = Lease(buffer, owner, policy.lease_seconds, now, clock)
        lease.acquire()
        fault = faults or (lambda step: None)
        try:
            fault("leased")
            cycle = _Cycle(
                buffer,
                destination,
                now=now,
                policy=policy,
                deadline=deadline,
                owner=owner,
                faults=fault,
                lease=lease,
                ingest_health=ingest_health,
                progress=progress,
            )
            for ledger, strand_id in buffer.strands():
                cycle.strand(ledger, strand_id)
                if cycle.report.deadline_reached:
                    break
            report = cycle.report
            if policy.retention is not None and not report.deadline_reached:
                report.purged = buffer.purge_replayed(now - policy.retention)
            stats = buffer.stats(now)
            report.late = int(stats.blocks.get("late", 0))
            report.quarantined = int(stats.blocks.get("quarantined", 0))
            report.buffer_depth = int(stats.blocks.get("pending", 0))
            if stats.oldest_pending_commit is not None:
                report.oldest_pending_age_ms = _ms(now - stats.oldest_pending_commit)
            report.seconds = time.perf_counter() - cycle.started
            fault("done")
            return report
        finally:
            buffer.release_lease(owner)


__all__ = ["STEPS", "SettlePolicy", "SettleReport", "settle"]
