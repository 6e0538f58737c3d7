"""The ``impaired`` scenario: ingest failing past its retries while the settler runs (issue 19).

OpenSearch buffer (osmem-server behind the fault proxy), embedded replica, the settler Lambda
handler (``lambda_settle``, on the simulated stream's clock) settling after every chunk. Some
event batches (each one shard's batch, holding every copy of at least one block summary) find
the buffer unreachable: the proxy drops every request of their ingest, through all the attempts
of the event source mapping, which then sends each batch's range to the on-failure queue
(``aws_fakes``: a file-backed queue and stream every process shares). The stream goes on; the
blocks of those batches are now gaps, and once their window has passed the window rule alone
would pass them (they would then arrive late, after a redrive: skipped in order).

1. While the ranges wait in the queue, every settler Lambda cycle must hold the gap: the
   ingest health check (``settler.ingest_health``, the real one, reading the queue) names the
   failure queue; nothing after the gap is replayed; no gap is passed. A last cycle runs well
   past the window of every block.
2. ``qldb-settle redrive`` finds Kinesis refusing the stream: each range is kept in the buffer as
   a ``failed-range`` rejection and its message stays in the queue. A CLI settle past every
   window (the CLI knows no queue: its rule is the failed ranges ``redrive`` recorded) must hold
   the gap too (exit 1, halted, no gap passed), and so must the Lambda.
3. Kinesis answers again and the messages' visibility timeout has run out: ``redrive`` re-reads
   every range and stores its records, deleting the messages and resolving the
   failed ranges. The next Lambda cycle replays everything in order; a drain replays nothing
   more. Then the records are counted (0 lost), the replica verified (0 wrong) and the blocks
   accounted (0 skipped: none passed as a gap, none late).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from random import Random
from typing import Any

from .aws_fakes import QUEUE_URL, EventSourceMapping
from .harness import Cli, base_env
from .pipeline import FAR_FUTURE, CampaignError, Pipeline, Tally
from .streams import delivered_at, iso

FAULT = "ingest failing past its retries"
CHUNK = 4


def impaired_scenario(ctx: Any) -> Any:
    from buffer.opensearch_local import LocalOpenSearch
    from buffer.opensearch_proxy import FaultProxy

    from .scenarios import ScenarioResult, finish, simulated, window_for

    name = "impaired"
    started = time.monotonic()
    work: Path = ctx.workdir / name
    rng = Random(ctx.seed + 5)
    size = ctx.size
    prefix = f"chaos-{uuid.uuid4().hex[:10]}"
    cli = Cli(env=base_env(QLDB_SETTLE_INDEX_PREFIX=prefix), workdir=work)
    sim = work / "sim"
    ctx.say(f"[{name}] simulating {size.impaired_transactions} transactions")
    stats, events, stream = simulated(
        cli, sim, transactions=size.impaired_transactions, seed=ctx.seed + 5
    )
    window = window_for(stream)
    failed = _failing_batches(events, size.impaired_blocks, rng)
    server = LocalOpenSearch.start()
    proxy = FaultProxy(upstream=server.url).start()
    result = ScenarioResult(
        name=name,
        buffer="opensearch (osmem-server behind a fault proxy)",
        destination="embedded (settled by the settler Lambda handler)",
        simulation=stats,
        window_seconds=window,
    )
    tally = ctx.tallies.get(
        FAULT,
        name,
        f"every request of some batches' ingest dropped (the buffer unreachable for them) "
        f"through {size.ingest_retries} attempts; their ranges sent to the on-failure queue",
    )
    aws = work / "aws"
    esm = EventSourceMapping(aws)
    replica = work / "replica.db"
    try:
        p = Pipeline(
            scenario=name,
            cli=cli,
            sim=sim,
            buffer_url=f"opensearch:{proxy.url}",
            destination_url=f"embedded:{replica}",
            window=window,
            group_size=3,
            rng=rng,
            tallies=ctx.tallies,
        )
        lam = _Lambda(p, work, aws)
        held: list[dict[str, Any]] = []  # the Lambda's cycles while a range waited in the queue
        for files in p.chunks(CHUNK):
            for f in files:
                esm.deliver(f)  # the stream holds every record, delivered or not
            good = [f for f in files if f not in failed]
            bad = [f for f in files if f in failed]
            if good:
                p.ingest(good)
            if bad:
                _fail_past_retries(
                    p, proxy, esm, files=bad, attempts=size.ingest_retries, tally=tally
                )
            answer = lam.cycle(p.now_of(files))
            if esm.queue.count():
                held.append(answer)
        if not tally.injected:
            raise CampaignError(f"[{name}] no batch failed: {sorted(map(str, failed))}")
        end = delivered_at(events[-1]) + timedelta(seconds=window + 60)
        held.append(lam.cycle(iso(end)))  # every block's window has passed
        ctx.say(f"[{name}] {esm.queue.count()} failed ranges in the queue; redrive")

        # 2. redrive while Kinesis refuses the stream: the ranges become failed-range rejections
        esm.stream.refuse(True)
        first = lam.redrive()
        ranges = [r for r in p_rejected(p) if r["kind"] == "failed-range"]
        settled = cli.run(p.settle_args(iso(end)))
        if settled.code not in (0, 1):
            raise CampaignError(f"[{name}] {settled.describe()}")
        cli_held: dict[str, Any] = {**settled.json(), "code": settled.code}
        held_both = lam.cycle(iso(end))
        # 3. Kinesis back, the messages visible again: the redrive stores every range
        esm.stream.refuse(False)
        esm.queue.expire_visibility()
        second = lam.redrive()
        left_in_queue = esm.queue.count()
        # The redrive that stored a range resolves its failed-range rejection itself.
        unresolved = [
            r for r in p_rejected(p) if r["kind"] == "failed-range" and not r.get("resolved_at")
        ]
        after = lam.cycle(iso(end))
        final = p.settle(FAR_FUTURE, ok=(0, 1))  # 1: late blocks, should any gap be passed
        ctx.say(f"[{name}] counting records and verifying the replica")
        finish(p, result, stream)
    finally:
        proxy.close()
        server.close()

    failure_queue = [a for a in held if "failure queue" in (a.get("halt_reason") or "")]
    blocks_of = {r for r, k in stream.kinds.items() if k == "block"}
    result.checks = {
        "the Lambda passed no gap while a range was in the failure queue": all(
            a.get("gaps_passed", 0) == 0 for a in held
        ),
        "the Lambda held the gap, naming the failure queue": bool(failure_queue),
        "redrive kept each unreadable range as a failed-range rejection": first["code"] == 1
        and len(ranges) == len(tally.details["distinct_ranges"]),
        "the CLI settler held the gap on the failed ranges (exit 1, halted, no gap passed)": (
            cli_held["code"] == 1 and cli_held["halted"] and cli_held["gaps_passed"] == 0
        ),
        "the Lambda still held it": held_both.get("halted") is True
        and held_both.get("gaps_passed", 0) == 0,
        "redrive re-read and stored every range, emptying the queue": second["code"] == 0
        and left_in_queue == 0
        and sum(second["json"]["stored"].values()) > 0,
        "the redrive resolved the failed ranges it stored": not unresolved
        and second["json"].get("resolved_ranges") == len(ranges),
        "after the redrive the Lambda replayed the rest": not after.get("halted")
        and after["replayed"]["blocks"] > 0,
        "no block skipped: none passed as a gap, none late": result.blocks_skipped == 0
        and result.accounting.get("late") == 0,
        "the drain found nothing left": final["replayed"]["blocks"] == 0 and not final["halted"],
        "every block replayed": result.accounting.get("blocks_by_state")
        == {"replayed": len(blocks_of)},
    }
    ok = all(result.checks.values())
    tally.records_lost = result.records_lost
    tally.documents_wrong = result.documents_wrong
    tally.details.update(
        {
            "failed_batches": [f.name for f in sorted(failed)],
            "lambda_cycles_while_in_queue": len(held),
            "held_naming_the_failure_queue": len(failure_queue),
            "halt_reasons": sorted({str(a.get("halt_reason")) for a in held if a.get("halted")}),
            "cli_halt_reason": cli_held["halt_reason"],
            "redrive_refused": first["json"],
            "redrive": second["json"],
            "replayed_after_redrive": after["replayed"]["blocks"],
            "gaps_passed_after_redrive (read-only blocks)": after.get("gaps_passed"),
        }
    )
    if ok:
        tally.outcomes[
            "the settler Lambda held the gap while the ranges were in the failure queue, the CLI "
            "settler while redrive could only record them as failed ranges; after the redrive "
            "everything replayed in order (no streamed block passed as a gap, none late)"
        ] += tally.injected
    else:
        failed_checks = [k for k, v in result.checks.items() if not v]
        tally.outcomes[f"FAILED: {', '.join(failed_checks)}"] += tally.injected
    result.seconds = time.monotonic() - started
    return result


def p_rejected(p: Pipeline) -> list[dict[str, Any]]:
    done = p.cli.run(["rejected", "--buffer", p.buffer_url, "--json"])
    if done.code not in (0, 1):
        raise CampaignError(f"[{p.scenario}] {done.describe()}")
    rows: list[dict[str, Any]] = done.json()["rejected"]
    return rows


def _failing_batches(events: list[Path], blocks: int, rng: Random) -> set[Path]:
    """Event files that carry every copy of ``blocks`` block summaries from the middle of the
    stream (so that their blocks are gaps until a redrive), as few files as possible, and
    nothing else the stream does not also deliver elsewhere: a revision of a block whose summary
    arrives would hold the settler at that block ("still missing revisions") before it ever
    reached the gap, and the gap rule would go untested."""
    from ingest.decode import decode_file
    from journal.records import BlockSummary

    carriers: dict[str, set[Path]] = {}  # block id -> the files carrying its summary
    copies: dict[str, set[Path]] = {}  # record id -> the files carrying it
    block_of: dict[str, str] = {}
    seqs: dict[str, int] = {}
    for path in events:
        for item in decode_file(path):
            rec = getattr(item, "record", None)
            if rec is None:
                continue
            copies.setdefault(rec.record_id, set()).add(path)
            block_of[rec.record_id] = getattr(rec, "block_id", "")
            if isinstance(rec, BlockSummary):
                carriers.setdefault(rec.block_id, set()).add(path)
                seqs[rec.block_id] = rec.address.sequence_no

    def clean(files: set[Path]) -> bool:
        gone = {b for b, where in carriers.items() if where <= files}
        return all(
            where - files or block_of[rid] in gone for rid, where in copies.items() if where & files
        )

    ordered = sorted(seqs, key=lambda b: seqs[b])
    middle = ordered[len(ordered) // 4 : 3 * len(ordered) // 4]
    middle.sort(key=lambda b: (len(carriers[b]), rng.random()))
    out: set[Path] = set()
    chosen = 0
    for block in middle:
        if chosen == blocks:
            break
        if clean(out | carriers[block]):
            out |= carriers[block]
            chosen += 1
    if not chosen:
        raise CampaignError("impaired scenario: no batch carries a block and nothing else")
    return out


def _fail_past_retries(
    p: Pipeline,
    proxy: Any,
    esm: EventSourceMapping,
    *,
    files: list[Path],
    attempts: int,
    tally: Tally,
) -> None:
    """Every attempt of the batches' ingest finds the buffer unreachable (the proxy drops every
    request); then the event source mapping gives up and sends each batch's range to the queue."""
    codes = []
    for _ in range(attempts):
        proxy.arm("drop", times=10**9)
        try:
            done = p.cli.run(p.ingest_args(files))
        finally:
            proxy.disarm()
        codes.append(done.code)
        if done.code != 3:
            raise CampaignError(
                f"[{p.scenario}] an ingest with the buffer unreachable: {done.describe()}"
            )
    for f in files:
        info = esm.give_up(f, attempts=attempts + 1)["KinesisBatchInfo"]
        tally.injected += 1
        # A batch delivered twice (the simulator re-delivers some) is the same range twice.
        ranges = tally.details.setdefault("distinct_ranges", [])
        key = [info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"]]
        if key not in ranges:
            ranges.append(key)
    tally.details.setdefault("ingest_exit_codes", []).append(codes)


class _Lambda:
    """The settler Lambda handler and ``redrive`` of the scenario, on its queue and stream."""

    def __init__(self, p: Pipeline, work: Path, aws: Path) -> None:
        self.p = p
        self.work = work
        self.aws = aws
        self.n = 0
        self.env: Mapping[str, str] = {
            "QLDB_SETTLE_BUFFER": p.buffer_url,
            "QLDB_SETTLE_DESTINATION": p.destination_url,
            "QLDB_SETTLE_WINDOW_SECONDS": f"{p.window:g}",
            "QLDB_SETTLE_FAILURE_QUEUE_URL": QUEUE_URL,
            "CHAOS_AWS_DIR": str(aws),
            "POWERTOOLS_METRICS_NAMESPACE": "QldbSettle",
            "POWERTOOLS_SERVICE_NAME": "qldb-settle-chaos",
        }

    def cycle(self, now: str) -> dict[str, Any]:
        """One invocation at ``now`` (a minute of budget: the deadline never cuts it)."""
        self.n += 1
        out = self.work / f"lambda-{self.n:02d}.json"
        program = [sys.executable, "-m", "tests.reliability.lambda_settle"]
        done = self.p.cli.run(
            ["60000", str(out)], program=program, env={**self.env, "CHAOS_NOW": now}
        )
        if done.code != 0:
            raise CampaignError(f"[{self.p.scenario}] settler Lambda: {done.describe()}")
        answer: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))["answer"]
        if "skipped" in answer:
            raise CampaignError(f"[{self.p.scenario}] settler Lambda stood aside: {answer}")
        return answer

    def redrive(self) -> dict[str, Any]:
        program = [sys.executable, "-m", "tests.reliability.redrive_local", str(self.aws)]
        done = self.p.cli.run(
            ["--queue", QUEUE_URL, "--wait", "0", "--buffer", self.p.buffer_url, "--json"],
            program=program,
        )
        if done.code not in (0, 1):
            raise CampaignError(f"[{self.p.scenario}] redrive: {done.describe()}")
        return {"code": done.code, "json": done.json()}
