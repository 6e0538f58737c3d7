"""The campaign's scenarios. Each simulates its own workload, drives it through real processes
while injecting its faults, then drains, counts every record and proves the replica.

- ``main``: SQLite buffer, embedded replica. ``kill -9`` of ingest and settle at random instants,
  two settlers at once, the buffer locked or read-only mid-batch and mid-cycle, records of
  replayed blocks delivered again, and the settler Lambda stopped by its deadline mid-cycle.
- ``opensearch``: OpenSearch buffer (osmem-server behind a fault proxy): 429, 503, lost answers,
  the server stopped (SIGSTOP) and unreachable, mid-batch and mid-cycle; a settler killed
  between the marks of one settle group (the next cycle repairs them from the checkpoint).
- ``qldb``: QLDB destination (``serve-qldb`` behind a fault proxy, through pyqldb): OCC conflicts
  at commit, 503 in the middle of a group's transaction, lost commit answers, the endpoint killed
  and restarted mid-group.
- ``late``: some blocks delivered hours late (after the window): counted, listed as late, never
  applied on their own; everything else replayed.
- ``impaired`` (``tests/reliability/impaired.py``): the ingest failing past its retries while the
  settler Lambda runs; the gap held until ``redrive`` stores the failed ranges.
"""

from __future__ import annotations

import json
import math
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

from .accounting import StreamInventory
from .faults import QldbFaultProxy, ReadOnly, WriteLock, paused, readonly_supported
from .harness import REPO_ROOT, Cli, Finished, Running, base_env
from .pipeline import LEASE_SECONDS, CampaignError, Pipeline, Tallies, Tally, Verification
from .streams import delivered_at, iso, redelivery, split_late

# SqliteBuffer's busy timeout (its default): a write waits this long for another writer's lock.
SQLITE_BUSY_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Size:
    """How big each scenario is. ``FULL`` is ``make chaos``; ``QUICK`` keeps the code from rotting
    (the smoke test)."""

    main_transactions: int
    main_chunk: int
    kills_ingest: int
    kills_settle: int
    lock_faults: int  # per side (ingest, settle)
    readonly_faults: int
    pairs_other_owner: int
    pairs_same_owner: int
    redeliveries: int
    opensearch_transactions: int
    opensearch_chunk: int
    qldb_transactions: int
    qldb_chunk: int
    postgres_transactions: int
    postgres_chunk: int
    late_transactions: int
    late_blocks: int
    impaired_transactions: int
    impaired_blocks: int  # whose every copy is in a batch the ingest fails past its retries
    ingest_retries: int  # attempts of each failing batch before its range goes to the queue


FULL = Size(
    main_transactions=480,
    main_chunk=8,
    kills_ingest=60,
    kills_settle=60,
    lock_faults=3,
    readonly_faults=3,
    pairs_other_owner=3,
    pairs_same_owner=2,
    redeliveries=3,
    opensearch_transactions=48,
    opensearch_chunk=4,
    qldb_transactions=40,
    qldb_chunk=6,
    postgres_transactions=80,
    postgres_chunk=6,
    late_transactions=90,
    late_blocks=3,
    impaired_transactions=30,
    impaired_blocks=2,
    ingest_retries=3,
)
QUICK = Size(
    main_transactions=40,
    main_chunk=8,
    kills_ingest=2,
    kills_settle=2,
    lock_faults=1,
    readonly_faults=1,
    pairs_other_owner=1,
    pairs_same_owner=1,
    redeliveries=1,
    opensearch_transactions=12,
    opensearch_chunk=6,
    qldb_transactions=12,
    qldb_chunk=10,
    postgres_transactions=12,
    postgres_chunk=10,
    late_transactions=40,
    late_blocks=1,
    impaired_transactions=16,
    impaired_blocks=1,
    ingest_retries=2,
)


@dataclass(slots=True)
class ScenarioResult:
    name: str
    buffer: str
    destination: str
    simulation: dict[str, Any]
    window_seconds: float
    accounting: dict[str, Any] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)
    records_lost: int = 0
    documents_wrong: int = 0
    blocks_skipped: int = 0
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.records_lost == 0 and self.documents_wrong == 0 and all(self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "buffer": self.buffer,
            "destination": self.destination,
            "window_seconds": self.window_seconds,
            "simulation": self.simulation,
            "accounting": self.accounting,
            "verify": self.verify,
            "records_lost": self.records_lost,
            "documents_wrong": self.documents_wrong,
            "blocks_skipped": self.blocks_skipped,
            "checks": self.checks,
            "ok": self.ok,
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
        }


@dataclass(slots=True)
class Context:
    workdir: Path
    seed: int
    size: Size
    tallies: Tallies
    say: Callable[[str], None]


# --- shared steps ---------------------------------------------------------------------------------


def simulate(cli: Cli, out: Path, *, transactions: int, seed: int) -> dict[str, Any]:
    """A small, fast stream: delays up to 3 s, so a settle window of a few seconds of simulated
    time releases blocks while the stream is still arriving."""
    done = cli.run(
        [
            "simulate",
            "--out",
            str(out),
            "--transactions",
            str(transactions),
            "--seed",
            str(seed),
            "--max-delay-ms",
            "3000",
            "--json",
        ]
    )
    if done.code != 0:
        raise CampaignError(done.describe())
    result: dict[str, Any] = done.json()
    return result


def simulated(
    cli: Cli, sim: Path, *, transactions: int, seed: int
) -> tuple[dict[str, Any], list[Path], StreamInventory]:
    """``simulate`` into ``sim``, then its event files in order and the inventory of their
    records: the simulation's summary, the events, the stream."""
    stats = simulate(cli, sim, transactions=transactions, seed=seed)
    events = sorted((sim / "events").glob("*.json"))
    stream = StreamInventory()
    stream.add_files(events)
    return stats, events, stream


def window_for(stream: StreamInventory) -> float:
    """The largest (delivery − commit) of a block summary's first delivery, plus 25% and two
    seconds: no block is late for this window (what ``status`` recommends, measured here)."""
    return float(math.ceil(max(stream.first_delay_s.values(), default=0.0) * 1.25) + 2)


def spread(total: int, slots: int, rng: Random) -> list[int]:
    """``total`` injections over ``slots`` steps, each step 1-4 when there are enough."""
    counts = [0] * max(1, slots)
    for _ in range(total):
        counts[rng.randrange(len(counts))] += 1
    return counts


def finish(
    p: Pipeline,
    result: ScenarioResult,
    stream: StreamInventory,
    *,
    verify_env: dict[str, str] | None = None,
    expect_equal: bool = True,
) -> Verification:
    accounting = p.account(stream)
    result.accounting = accounting.as_json()
    result.records_lost = accounting.records_lost + len(accounting.unexpected)
    blocks = p.account_blocks(stream)
    result.accounting["blocks"] = blocks.as_json()
    result.blocks_skipped = blocks.blocks_skipped
    verification = p.verify(verify_env)
    result.verify = verification.raw
    if expect_equal:
        result.documents_wrong = verification.wrong
    for tally in p.tallies.of(result.name):
        tally.records_lost = result.records_lost
        tally.documents_wrong = result.documents_wrong
        tally.blocks_skipped = result.blocks_skipped
    return verification


# --- main: SQLite buffer, embedded replica ------------------------------------------------------


def files_changed(db: Path) -> Callable[[], Any]:
    """A cheap signal of a SQLite file's writes: size and modification time of the database and
    of its write-ahead log once it holds anything. (Opening a WAL database creates an empty
    ``-wal`` and closing it removes it: that is not a write.)"""
    paths = (db, db.with_name(db.name + "-wal"))

    def signal() -> Any:
        out: list[tuple[int, int] | None] = []
        for path in paths:
            try:
                st = path.stat()
            except FileNotFoundError:
                out.append(None)
            else:
                out.append((st.st_size, st.st_mtime_ns) if st.st_size else None)
        return tuple(out)

    return signal


def pending_blocks(buffer_db: Path) -> Callable[[], int]:
    """How many blocks the SQLite buffer holds pending (read in this process)."""
    from buffer.sqlite import SqliteBuffer

    def pending() -> int:
        buf = SqliteBuffer(buffer_db)
        try:
            return int(buf.stats(datetime.now().astimezone()).blocks.get("pending", 0))
        finally:
            buf.close()

    return pending


def main_scenario(ctx: Context) -> ScenarioResult:
    name = "main"
    started = time.monotonic()
    work = ctx.workdir / name
    rng = Random(ctx.seed)
    size = ctx.size
    cli = Cli(env=base_env(), workdir=work)
    sim = work / "sim"
    ctx.say(f"[{name}] simulating {size.main_transactions} transactions")
    stats, events, stream = simulated(cli, sim, transactions=size.main_transactions, seed=ctx.seed)
    window = window_for(stream)
    buffer_db, replica_db = work / "buffer.db", work / "replica.db"
    result = ScenarioResult(
        name=name,
        buffer="sqlite",
        destination="embedded",
        simulation=stats,
        window_seconds=window,
    )
    buffer_written, replica_written = files_changed(buffer_db), files_changed(replica_db)
    p = Pipeline(
        scenario=name,
        cli=cli,
        sim=sim,
        buffer_url=f"sqlite:{buffer_db}",
        destination_url=f"embedded:{replica_db}",
        window=window,
        group_size=1,
        rng=rng,
        tallies=ctx.tallies,
        watch={"ingest": buffer_written, "settle": replica_written},
    )
    t = ctx.tallies
    k_ingest = t.get("kill -9 ingest", name, "SIGKILL at a random instant of an ingest process")
    k_settle = t.get("kill -9 settle", name, "SIGKILL at a random instant of a settle process")
    lock_i = t.get(
        "buffer locked mid-batch",
        name,
        f"another process holds the SQLite write lock {SQLITE_BUSY_TIMEOUT_S + 1.5:g} s "
        "(over the busy timeout), from within 50 ms after an ingest's first write",
    )
    lock_s = t.get(
        "buffer locked mid-cycle",
        name,
        "the same, from within 50 ms after a settle cycle's first destination commit",
    )
    ro_i = t.get(
        "buffer read-only mid-batch",
        name,
        "chattr +i on the buffer's database and -wal within 50 ms after an ingest's first write",
    )
    ro_s = t.get(
        "buffer read-only mid-cycle",
        name,
        "the same, within 50 ms after a settle cycle's first destination commit",
    )
    pair_other = t.get(
        "two settlers at once",
        name,
        "two settle processes started together (different owners: two operators, or an "
        "operator and the Lambda)",
    )
    pair_same = t.get(
        "two settlers at once, same owner",
        name,
        "two settle processes started together by the same user on the same host",
    )
    redelivered = t.get(
        "records re-delivered for replayed blocks",
        name,
        "every record of some already replayed blocks delivered again in new events",
    )
    deadline = t.get(
        "deadline expires mid-cycle",
        name,
        "the settler Lambda handler (real deadline_from) invoked with a budget that runs out "
        "during its cycle",
    )

    chunks = p.chunks(size.main_chunk)
    n = len(chunks)
    settled = max(3, n // 2)  # then the settler is down while the stream goes on arriving.
    down = list(range(settled, n))
    # It comes back as two settlers at once, of different owners or of the same one (each pair
    # catching up two chunks of backlog), then crashing (kill -9) as it catches up further; the
    # settler Lambda drains the rest with its deadlines.
    owners = ["other"] * max(0, size.pairs_other_owner - 1) + ["same"] * size.pairs_same_owner
    rng.shuffle(owners)
    catch_up = [(down[2 * k + 1], o) for k, o in enumerate(owners) if 2 * k + 1 < len(down)]
    after = down[len(catch_up) * 2 :]
    restart = after[: max(1, len(after) // 3)]

    def take(k: int, among: list[int]) -> list[int]:
        return rng.sample(among, min(k, len(among)))

    up = list(range(1, settled))
    pairs_other_at = set(take(1, up[1:]))
    faulted = [i for i in up if i not in pairs_other_at] or up
    lock_settle_at = set(take(size.lock_faults, faulted))
    ro_settle_at = set(take(size.readonly_faults, faulted))
    redeliver_at = set(take(size.redeliveries, up[1:]))
    ingest_kills = spread(size.kills_ingest, n, rng)
    # Settle kills while the settler is up (each at an instant stepping through its chunk, so
    # each killed cycle has fresh blocks to replay) and while it catches up after its downtime.
    killed = faulted + restart
    settle_kills = dict(zip(killed, spread(size.kills_settle, len(killed), rng), strict=True))
    lock_ingest_at = set(take(size.lock_faults, list(range(1, n))))
    ro_ingest_at = set(take(size.readonly_faults, list(range(1, n))))
    result.notes.append(
        f"schedule: {n} chunks; settle after each of 1..{settled - 1} (two settlers at "
        f"{sorted(pairs_other_at)}); the settler down from chunk {settled}; two settlers catch "
        f"up to {catch_up}; killed as it catches up to chunk {restart[-1]}; the settler Lambda "
        "drains the rest with deadlines"
    )
    can_readonly = readonly_supported(work)
    if not can_readonly:
        result.notes.append("chattr +i is not available here: the read-only faults were not run")

    ctx.say(f"[{name}] {n} chunks of {size.main_chunk} events, window {window:g} s")
    previous = delivered_at(chunks[0][-1])
    for i, files in enumerate(chunks):
        args = p.ingest_args(files)
        if i in lock_ingest_at:  # before the kills: while the chunk is still to be stored
            _locked(p, key="ingest", args=args, db=buffer_db, tally=lock_i)
        if i in ro_ingest_at and can_readonly:
            _readonly(p, key="ingest", args=args, db=buffer_db, tally=ro_i)
        _kills(p, "ingest", [args], ingest_kills[i], k_ingest)
        p.ingest(files)
        at = delivered_at(files[-1])
        if i == 0 or i >= settled:
            continue
        now = iso(at)
        if i in redeliver_at:
            _redeliver(p, stream=stream, work=work, tally=redelivered, at=at, rng=rng)
        if i in pairs_other_at:  # first, while the cycle has work
            _pair(p, p.settle_args(now), pair_other, False)
        mid = previous + (at - previous) / 2
        # After kills, a fault's settle waits out the dead settle's lease (on the --now clock),
        # as an operator's next settle would; otherwise it stands aside and nothing is injected.
        lease_out = mid
        if i in settle_kills:  # through the first half of the chunk
            times = _steps(previous, mid, settle_kills[i])
            _kills(p, "settle", [p.settle_args(t) for t in times], settle_kills[i], k_settle)
            lease_out = mid + timedelta(seconds=LEASE_SECONDS + 3)
        if i in lock_settle_at:  # half-way through the chunk, so that the read-only fault
            mid_text = iso(max(mid, lease_out))  # below still finds work
            sargs = p.settle_args(mid_text)
            _locked(p, key="settle", args=sargs, db=buffer_db, tally=lock_s, probe=replica_written)
        if i in ro_settle_at and can_readonly:
            sargs = p.settle_args(iso(max(at, lease_out)))
            _readonly(p, key="settle", args=sargs, db=buffer_db, tally=ro_s, probe=replica_written)
        p.settle(now)
        previous = at
        if (i + 1) % 5 == 0:
            ctx.say(f"[{name}] chunk {i + 1}/{n}: {k_ingest.injected} ingest kills")

    ctx.say(f"[{name}] the settler restarts and is killed while it catches up")
    for i, owner in catch_up:
        at = delivered_at(chunks[i][-1])
        _pair(
            p, p.settle_args(iso(at)), pair_same if owner == "same" else pair_other, owner == "same"
        )
        p.settle(iso(at))
        previous = at
    for i in restart:
        at = delivered_at(chunks[i][-1])
        times = _steps(previous, at, settle_kills[i])
        _kills(p, "settle", [p.settle_args(t) for t in times], settle_kills[i], k_settle)
        p.settle(iso(at))
        previous = at
    ctx.say(f"[{name}] the settler Lambda drains with deadlines")
    _deadline_drain(p, work, deadline, pending_blocks(buffer_db))
    final = p.drain()  # as of the far future: nothing may be left, nothing replayed twice
    result.checks["drain left nothing pending"] = final["replayed"]["blocks"] == 0
    at = delivered_at(events[-1]) + timedelta(hours=1)
    _redeliver(p, stream=stream, work=work, tally=redelivered, at=at, rng=rng)
    again = p.drain()
    result.checks["re-delivered records replayed nothing again"] = again["replayed"]["blocks"] == 0
    ctx.say(f"[{name}] counting records and verifying the replica")
    finish(p, result, stream)
    result.checks["every block replayed"] = set(result.accounting["blocks_by_state"]) == {
        "replayed"
    }
    result.seconds = time.monotonic() - started
    return result


def _steps(start: datetime, end: datetime, count: int) -> list[str]:
    """``count`` instants evenly through (start, end], as ``--now`` values."""
    return [iso(start + (end - start) * (k + 1) / max(1, count)) for k in range(max(1, count))]


def _kills(p: Pipeline, key: str, runs: list[list[str]], count: int, tally: Tally) -> None:
    """Land ``count`` kills, the n-th try running ``runs[n]`` (the last one once they run out)."""
    landed = tries = 0
    while landed < count and tries < 5 * count:
        landed += int(p.kill9(key, runs[min(tries, len(runs) - 1)], tally))
        tries += 1


def _locked(
    p: Pipeline,
    *,
    key: str,
    args: list[str],
    db: Path,
    tally: Tally,
    probe: Callable[[], Any] | None = None,
) -> None:
    before = probe() if probe else None
    locks: list[WriteLock] = []

    def act(_run: Running) -> Callable[[], None]:
        lock = WriteLock(db, SQLITE_BUSY_TIMEOUT_S + 1.5).start()
        locks.append(lock)
        return lock.join

    started = time.monotonic()
    done = p.during(key, args, tally, act)
    if done is None:
        return
    lock = locks[0]
    if lock.acquired_at is None or lock.acquired_at > started + done.seconds:
        tally.injected -= 1  # the process ended before the lock was taken
        tally.missed += 1
        if lock.error:
            tally.details.setdefault("lock_errors", []).append(lock.error)
        return
    _outcome(p, key=key, done=done, tally=tally, probe=probe, before=before)


def _readonly(
    p: Pipeline,
    *,
    key: str,
    args: list[str],
    db: Path,
    tally: Tally,
    probe: Callable[[], Any] | None = None,
) -> None:
    before = probe() if probe else None

    def act(_run: Running) -> Callable[[], None]:
        ro = ReadOnly(db)
        if not ro.set():
            raise CampaignError(f"chattr +i failed on {db}")
        return ro.clear

    done = p.during(key, args, tally, act)
    if done is not None:
        _outcome(p, key=key, done=done, tally=tally, probe=probe, before=before)


def _outcome(
    p: Pipeline,
    *,
    key: str,
    done: Finished,
    tally: Tally,
    probe: Callable[[], Any] | None,
    before: Any,
) -> None:
    if _unexpected(done, tally):
        return
    if key == "ingest":
        tally.outcomes[p.ingest_outcome(done)] += 1
    else:
        progressed = probe is not None and probe() != before
        tally.outcomes[p.settle_outcome(done, progressed)] += 1
    if done.code == 3:
        tally.details.setdefault("messages", []).append(done.stderr.strip().splitlines()[-1][:240])


def _unexpected(done: Finished, tally: Tally) -> bool:
    """A faulted process should end 0 (it rode the fault out) or 3 (transient: run it again).
    Anything else is a finding: recorded with the process's last words, and the campaign goes on
    (the un-faulted rerun that follows must still succeed)."""
    if done.code in (0, 3):
        return False
    last = (done.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
    tally.outcomes[f"UNEXPECTED exit {done.code} instead of 0 or 3: {last}"] += 1
    tally.details.setdefault("unexpected", []).append(done.stderr[-3000:])
    return True


def _pair(p: Pipeline, args: list[str], tally: Tally, same_owner: bool) -> None:
    if same_owner:
        envs: tuple[dict[str, str], dict[str, str]] = ({}, {})
    else:
        envs = (
            {"LOGNAME": "chaos-a", "USER": "chaos-a"},
            {"LOGNAME": "chaos-b", "USER": "chaos-b"},
        )
    a = p.start("settle", args, envs[0])
    time.sleep(p.rng.uniform(0.0, 0.1))
    b = p.start("settle", args, envs[1])
    fa, fb = a.wait(), b.wait()
    tally.injected += 1
    codes = sorted((fa.code, fb.code))
    if any(c not in (0, 3) for c in codes):
        raise CampaignError(f"[{p.scenario}] two settlers: {fa.describe()} / {fb.describe()}")
    kept_out = [f for f in (fa, fb) if f.code == 0 and "standing aside" in f.stderr]
    moved = [f for f in (fa, fb) if f.code == 3 and "kept moving" in f.stderr]
    raced = [f for f in (fa, fb) if "re-reading the checkpoint" in f.stderr]
    replayed = [f.json()["replayed"]["blocks"] for f in (fa, fb) if f.code == 0]
    if kept_out:
        outcome = "the lease kept one out (exit 0, standing aside), the other settled"
    elif moved:
        outcome = (
            "both held the lease and settled at once; the checkpoint's compare-and-set refused "
            "the second writer 5 times (exit 3, nothing applied twice)"
        )
    elif raced:
        outcome = (
            "both held the lease and settled at once; the checkpoint's compare-and-set refused "
            "the second writer, which re-read it and found the work done (nothing applied twice)"
        )
    elif len(replayed) == 2 and min(replayed) > 0:
        outcome = (
            "both held the lease and replayed blocks at once; compare-and-set kept every block "
            "applied once"
        )
    else:
        outcome = "both exit 0, one found nothing to do (no overlap, or the other had settled)"
    tally.outcomes[outcome] += 1
    tally.details.setdefault("exit_codes", []).append([fa.code, fb.code])
    tally.details.setdefault("blocks_replayed", []).append(
        [f.json()["replayed"]["blocks"] if f.code == 0 else None for f in (fa, fb)]
    )


def _redeliver(
    p: Pipeline,
    *,
    stream: StreamInventory,
    work: Path,
    tally: Tally,
    at: datetime,
    rng: Random,
) -> None:
    done = p.cli.run(["blocks", "--buffer", p.buffer_url, "--state", "replayed", "--json"])
    replayed = [b["id"] for b in done.json()["blocks"]]
    if not replayed:
        tally.missed += 1
        return
    chosen = rng.sample(replayed, min(len(replayed), rng.randint(3, 12)))
    ids = stream.records_of(chosen)
    raws = [stream.raw[r] for r in ids]
    n = len(list((work / "redelivered").glob("*.json"))) if (work / "redelivered").exists() else 0
    path = redelivery(work / "redelivered", f"{n:03d}", raws, rng, at=at)
    stream.add_files([path])
    report = p.ingest([path])
    tally.injected += len(raws)
    tally.details["blocks"] = tally.details.get("blocks", 0) + len(chosen)
    stored = sum(report["stored"].values())
    if report["duplicates"] == len(raws) and stored == 0 and report["late"] == 0:
        tally.outcomes["counted duplicate, nothing stored or replayed again"] += len(raws)
    else:
        tally.outcomes[
            f"NOT all duplicates: {report['duplicates']} duplicates, {stored} stored, "
            f"{report['late']} late of {len(raws)}"
        ] += len(raws)


def _deadline_drain(p: Pipeline, work: Path, tally: Tally, pending: Callable[[], int]) -> None:
    env = {
        "QLDB_SETTLE_BUFFER": p.buffer_url,
        "QLDB_SETTLE_DESTINATION": p.destination_url,
        "QLDB_SETTLE_WINDOW_SECONDS": f"{p.window:g}",
        "POWERTOOLS_METRICS_NAMESPACE": "QldbSettle",
        "POWERTOOLS_SERVICE_NAME": "qldb-settle-chaos",
    }
    program = [sys.executable, "-m", "tests.reliability.lambda_settle"]
    # The time left after the handler's margin: it starts short (the first invocations stop
    # before their first destination transaction, applying nothing) and grows until the deadline
    # falls between two of the cycle's transactions; shorter again after a cycle that finished.
    extra = 150.0
    for k in range(40):
        if pending() == 0:
            return
        budget = 2000 + round(extra * p.rng.uniform(0.7, 1.3))
        out = work / f"lambda-{k:02d}.json"
        done = p.cli.run([str(budget), str(out)], program=program, env=env)
        if done.code != 0:
            raise CampaignError(f"[{p.scenario}] settler Lambda: {done.describe()}")
        result = json.loads(out.read_text(encoding="utf-8"))
        blocks = int(result["answer"].get("replayed", {}).get("blocks", 0))
        if not result["deadline_fired"]:
            tally.details.setdefault("finished_in_time", 0)
            tally.details["finished_in_time"] += 1
            extra *= 0.6
            continue
        tally.injected += 1
        left = pending()
        if not blocks:
            extra *= 1.35
        if blocks and left:
            tally.outcomes[
                "stopped mid-cycle after a destination commit; the next invocation went on"
            ] += 1
        elif blocks:
            tally.outcomes["stopped after its last commit"] += 1
        else:
            tally.outcomes["stopped before its first destination transaction"] += 1
        tally.details.setdefault("budgets_ms", []).append(budget)


# --- opensearch: the OpenSearch buffer behind a fault proxy ---------------------------------------


def opensearch_scenario(ctx: Context) -> ScenarioResult:
    from buffer.opensearch_local import LocalOpenSearch
    from buffer.opensearch_proxy import FaultProxy

    name = "opensearch"
    started = time.monotonic()
    work = ctx.workdir / name
    rng = Random(ctx.seed + 1)
    prefix = f"chaos-{uuid.uuid4().hex[:10]}"
    cli = Cli(env=base_env(QLDB_SETTLE_INDEX_PREFIX=prefix), workdir=work)
    sim = work / "sim"
    ctx.say(f"[{name}] simulating {ctx.size.opensearch_transactions} transactions")
    stats, _, stream = simulated(
        cli, sim, transactions=ctx.size.opensearch_transactions, seed=ctx.seed + 1
    )
    window = window_for(stream)
    server = LocalOpenSearch.start()
    proxy = FaultProxy(upstream=server.url).start()
    result = ScenarioResult(
        name=name,
        buffer="opensearch (osmem-server behind a fault proxy)",
        destination="embedded",
        simulation=stats,
        window_seconds=window,
    )
    try:
        p = Pipeline(
            scenario=name,
            cli=cli,
            sim=sim,
            buffer_url=f"opensearch:{proxy.url}",
            destination_url=f"embedded:{work / 'replica.db'}",
            window=window,
            group_size=3,
            rng=rng,
            tallies=ctx.tallies,
        )
        _opensearch_faults(ctx, p, proxy, server.process.pid, direct=server.url)
        marks = ctx.tallies.get(MARK_REPAIR, name, "")
        result.checks["every half-marked group repaired from the checkpoint"] = (
            marks.injected > 0 and marks.details.get("repaired_as_expected") == marks.injected
        )
        p.drain()
        ctx.say(f"[{name}] counting records and verifying the replica")
        finish(p, result, stream)
        result.checks["every block replayed"] = set(result.accounting["blocks_by_state"]) == {
            "replayed"
        }
    finally:
        proxy.close()
        server.close()
    result.seconds = time.monotonic() - started
    return result


def _opensearch_faults(ctx: Context, p: Pipeline, proxy: Any, pid: int, *, direct: str) -> None:
    name = p.scenario
    t = ctx.tallies
    marks = t.get(
        MARK_REPAIR,
        name,
        "the proxy forwards the first 1 or 2 block marks of a settle group's mark request (its "
        "destination transaction committed), then the settler is killed -9 before the rest",
    )
    kinds = {
        "ingest": [
            ("OpenSearch 429 mid-batch", "the proxy answers 429 to the n-th bulk write", "429"),
            ("OpenSearch 503 mid-batch", "the proxy answers 503 to the n-th bulk write", "503"),
            (
                "OpenSearch answer lost mid-batch",
                "the proxy forwards the n-th bulk write, then hangs up",
                "lose-answer",
            ),
            ("osmem-server stopped mid-batch", "SIGSTOP 0.5-2.5 s at a random instant", "stop"),
            (
                "OpenSearch unreachable mid-batch",
                "the proxy drops every request for 1-8 s from a random instant",
                "down",
            ),
        ],
        "settle": [
            ("OpenSearch 429 mid-cycle", "the proxy answers 429 to the n-th request", "429"),
            ("OpenSearch 503 mid-cycle", "the proxy answers 503 to the n-th request", "503"),
            ("osmem-server stopped mid-cycle", "SIGSTOP 0.5-2.5 s at a random instant", "stop"),
            (
                "OpenSearch unreachable mid-cycle",
                "the proxy drops every request for 1-8 s from a random instant",
                "down",
            ),
        ],
    }
    chunks = p.chunks(ctx.size.opensearch_chunk)
    for i, files in enumerate(chunks):
        fault, how, action = kinds["ingest"][i % len(kinds["ingest"])]
        _opensearch_fault(
            p,
            proxy=proxy,
            pid=pid,
            key="ingest",
            args=p.ingest_args(files),
            tally=t.get(fault, name, how),
            action=action,
            files=len(files),
        )
        p.ingest(files)
        now = p.now_of(files)
        if i % 2 == 1:
            now = _mark_repair(p, proxy, args=p.settle_args(now), tally=marks, direct=direct)
        fault, how, action = kinds["settle"][i % len(kinds["settle"])]
        _opensearch_fault(
            p,
            proxy=proxy,
            pid=pid,
            key="settle",
            args=p.settle_args(now),
            tally=t.get(fault, name, how),
            action=action,
            files=0,
        )
        p.settle(now)
    # every kind at least once, whatever the number of chunks
    for _ in range(3):
        if marks.injected:
            break
        _mark_repair(p, proxy, args=p.settle_args(FAR), tally=marks, direct=direct)
    for key in ("ingest", "settle"):
        for fault, how, action in kinds[key]:
            tally = t.get(fault, name, how)
            for _ in range(4):
                if tally.injected:
                    break
                files = p.events[-6:]
                args = p.ingest_args(files) if key == "ingest" else p.settle_args(p.now_of(files))
                _opensearch_fault(
                    p,
                    proxy=proxy,
                    pid=pid,
                    key=key,
                    args=args,
                    tally=tally,
                    action=action,
                    files=len(files),
                )
                if key == "ingest":
                    p.ingest(files)


MARK_REPAIR = "OpenSearch marks of a group half written"


def _group_marks(body: bytes) -> list[str]:
    """The block ids a settle group's mark request marks replayed (empty for any other bulk
    request: ingest writes, statement states, the repair's marks, quarantines)."""
    from buffer.opensearch_proxy import bulk_actions

    try:
        actions = bulk_actions(body)
    except ValueError:
        return []
    ids: list[str] = []
    for meta, lines in actions:
        ((op, target),) = meta.items()
        assert isinstance(target, dict)
        if op != "update" or not str(target.get("_index", "")).endswith("-blocks"):
            break
        doc = json.loads(lines.splitlines()[1]).get("doc", {})
        if doc.get("state") != "replayed" or doc.get("reason") is not None:
            return []
        ids.append(str(target["_id"]))
    return ids


def _mark_repair(p: Pipeline, proxy: Any, *, args: list[str], tally: Tally, direct: str) -> str:
    """A settle cycle killed between the marks of one group: its destination transaction has
    committed, the proxy forwards the first ``keep`` block marks of the group's mark request to
    the server and the settler is killed -9 before the rest (as a crash between two of the
    non-atomic writes leaves it). Checks that the buffer holds exactly that half-marked state,
    then runs the next cycle (once the dead settler's lease has run out on the ``--now`` clock)
    and checks that it repaired the rest from the destination's checkpoint: every block of the
    group replayed, the repaired ones marked by the repair (so not replayed again), the strand's
    replayed mark at the checkpoint. Returns the ``--now`` the chunk goes on from (its own)."""
    from buffer.opensearch import OpenSearchBuffer
    from destination.embedded import EmbeddedDestination

    rng = p.rng
    keep = rng.randint(1, 2)
    now = args[args.index("--now") + 1]
    seen: dict[str, Any] = {}
    run: list[Running] = []

    def when(body: bytes) -> bool:
        ids = _group_marks(body)
        if len(ids) > keep:
            seen["ids"] = ids
            return True
        return False

    def kill() -> None:
        while not run:
            time.sleep(0.001)
        seen["killed"] = run[0].kill9()

    fault = proxy.arm("forward-first", path="/_bulk", keep=keep, when=when, then=kill, times=1)
    run.append(p.start("settle", args))
    done = run[0].wait()
    proxy.disarm()
    if fault.fired == 0:
        tally.missed += 1  # the cycle had no group of more than `keep` blocks to mark
        return now
    if not seen.get("killed"):
        raise CampaignError(
            f"[{p.scenario}] the settler was not killed mid-marks: {done.describe()}"
        )
    ids: list[str] = seen["ids"]
    buf = OpenSearchBuffer.from_url(direct, index_prefix=p.cli.env["QLDB_SETTLE_INDEX_PREFIX"])
    replica = EmbeddedDestination(p.destination_url.removeprefix("embedded:"))
    try:
        rows = {r.block_id: r for r in buf.blocks()}
        group = [rows[b] for b in ids]
        ledger, strand = group[0].ledger, group[0].strand_id
        checkpoint = replica.checkpoint(ledger, strand)
        mark_before = buf.replayed_through(ledger, strand)
        half = (
            [r.state for r in group] == ["replayed"] * keep + ["pending"] * (len(ids) - keep)
            and checkpoint is not None
            and checkpoint.sequence_no >= group[-1].sequence_no
            and (mark_before is None or mark_before < checkpoint.sequence_no)
        )
        # The dead settler's lease runs out on the --now clock (LEASE_SECONDS after its --now
        # plus the time it ran): the next cycle comes after it, as the next schedule would,
        # with the window stretched by as much, so that it releases exactly what a cycle at the
        # chunk's instant would (never a block, or a gap, the stream has yet to deliver).
        delta = LEASE_SECONDS + done.seconds + 3
        after = iso(_parse(now) + timedelta(seconds=delta))
        again = p.settle_args(after)
        again[again.index("--window") + 1] = f"{p.window + delta:g}"
        nxt = p.run_clean(again, "settle").json()
        rows = {r.block_id: r for r in buf.blocks()}
        mark_after = buf.replayed_through(ledger, strand)
        repaired = [
            b
            for b in ids[keep:]
            if rows[b].state == "replayed"
            and (rows[b].reason or "").startswith("repaired from the destination checkpoint")
        ]
        cp_after = replica.checkpoint(ledger, strand)
    finally:
        buf.close()
        replica.close()
    tally.injected += 1
    tally.details.setdefault("group_blocks_marked_before_the_kill", []).append([keep, len(ids)])
    ok = (
        half
        and len(repaired) == len(ids) - keep
        and all(rows[b].state == "replayed" and rows[b].reason is None for b in ids[:keep])
        and cp_after is not None
        and mark_after is not None
        and mark_after >= checkpoint.sequence_no  # type: ignore[union-attr]
    )
    if ok:
        tally.details["repaired_as_expected"] = tally.details.get("repaired_as_expected", 0) + 1
        tally.outcomes[
            "half marked at the kill (checkpoint past the group, strand mark below it); the next "
            "cycle repaired the rest from the checkpoint, replaying none of them again"
        ] += 1
    else:
        tally.outcomes[
            f"NOT repaired as expected: half-marked {half}, repaired {len(repaired)} of "
            f"{len(ids) - keep}, strand mark {mark_before} -> {mark_after}, checkpoint "
            f"{checkpoint.sequence_no if checkpoint else None}"
        ] += 1
    tally.details.setdefault("next_cycle_replayed", []).append(nxt["replayed"]["blocks"])
    return now


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _opensearch_fault(
    p: Pipeline,
    *,
    proxy: Any,
    pid: int,
    key: str,
    args: list[str],
    tally: Tally,
    action: str,
    files: int,
) -> None:
    rng = p.rng
    if action in ("429", "503", "lose-answer"):
        times = rng.choice([1, 2, 30]) if action != "lose-answer" else 1
        if key == "ingest":
            fault = proxy.arm(action, path="/_bulk", skip=rng.randrange(max(1, files)), times=times)
        else:
            fault = proxy.arm(action, skip=rng.randint(2, 30), times=times)
        done = p.cli.run(args)
        proxy.disarm()
        if fault.fired == 0:
            tally.missed += 1
            return
        tally.injected += 1
        tally.details.setdefault("times", []).append(times)
    else:

        def act(_run: Running) -> None:
            if action == "stop":
                with paused(pid):
                    time.sleep(rng.uniform(0.5, 2.5))
            else:
                proxy.arm("drop", times=10**9)
                try:
                    time.sleep(rng.uniform(1.0, 8.0))
                finally:
                    proxy.disarm()

        found = p.during(key, args, tally, act, lo=0.2, hi=0.8)
        if found is None:
            return
        done = found
    if _unexpected(done, tally):
        return
    if key == "ingest":
        tally.outcomes[p.ingest_outcome(done)] += 1
    else:
        tally.outcomes[p.settle_outcome(done, False).replace(" before a commit", "")] += 1
    if done.code == 3:
        tally.details.setdefault("messages", []).append(done.stderr.strip().splitlines()[-1][:240])


# --- qldb: the QLDB destination through pyqldb, serve-qldb behind a fault proxy -------------------


def qldb_scenario(ctx: Context) -> ScenarioResult:
    from tests.qldb.qldb_server import start_serve_qldb, stop

    name = "qldb"
    started = time.monotonic()
    work = ctx.workdir / name
    rng = Random(ctx.seed + 2)
    ledgers = work / "ledgers"
    ledgers.mkdir(parents=True, exist_ok=True)
    served = [start_serve_qldb(f"embedded:{ledgers}/")]
    proxy = QldbFaultProxy(upstream=served[0][1]).start()
    cli = Cli(env=base_env(QLDB_SETTLE_QLDB_ENDPOINT=proxy.url), workdir=work)
    sim = work / "sim"
    ctx.say(f"[{name}] simulating {ctx.size.qldb_transactions} transactions")
    result = ScenarioResult(
        name=name,
        buffer="sqlite",
        destination="qldb (pyqldb to serve-qldb behind a fault proxy)",
        simulation={},
        window_seconds=0,
    )
    try:
        result.simulation, _, stream = simulated(
            cli, sim, transactions=ctx.size.qldb_transactions, seed=ctx.seed + 2
        )
        result.window_seconds = window_for(stream)
        p = Pipeline(
            scenario=name,
            cli=cli,
            sim=sim,
            buffer_url=f"sqlite:{work / 'buffer.db'}",
            destination_url="qldb:chaos-replica",
            window=result.window_seconds,
            group_size=3,
            rng=rng,
            tallies=ctx.tallies,
        )
        t = ctx.tallies
        kinds = [
            (
                "destination OCC conflict mid-group",
                "OccConflictException for the n-th commit of a group's transaction (aborted "
                "upstream, as QLDB does)",
                "occ",
                "CommitTransaction",
            ),
            (
                "destination 503 mid-group",
                "503 for the n-th statement of a group's transaction",
                "503",
                "ExecuteStatement",
            ),
            (
                "destination commit answer lost",
                "the n-th commit forwarded, its answer lost",
                "lose-answer",
                "CommitTransaction",
            ),
            (
                "destination down mid-group",
                "serve-qldb killed -9 at a random instant of a settle, restarted 0.5-2 s later",
                "down",
                "",
            ),
        ]
        chunks = p.chunks(ctx.size.qldb_chunk)
        j = 0
        for files in chunks:
            p.ingest(files)
            now = p.now_of(files)
            for _ in range(2):
                fault, how, action, command = kinds[j % len(kinds)]
                j += 1
                _qldb_fault(
                    p,
                    proxy=proxy,
                    served=served,
                    ledgers=ledgers,
                    args=p.settle_args(now),
                    tally=t.get(fault, name, how),
                    action=action,
                    command=command,
                )
            p.settle(now)
        for fault, how, action, command in kinds:
            tally = t.get(fault, name, how)
            tries = 0
            while tally.injected == 0 and tries < 4:
                tries += 1
                _qldb_fault(
                    p,
                    proxy=proxy,
                    served=served,
                    ledgers=ledgers,
                    args=p.settle_args(FAR),
                    tally=tally,
                    action=action,
                    command=command,
                )
        p.drain()
        ctx.say(f"[{name}] counting records and verifying the replica")
        finish(p, result, stream, verify_env={"QLDB_SETTLE_QLDB_ENDPOINT": proxy.url})
        result.checks["every block replayed"] = set(result.accounting["blocks_by_state"]) == {
            "replayed"
        }
    finally:
        proxy.close()
        stop(served[-1][0])
    result.seconds = time.monotonic() - started
    return result


FAR = "2100-01-01T00:00:00.000Z"


def _qldb_fault(
    p: Pipeline,
    *,
    proxy: QldbFaultProxy,
    served: list[Any],
    ledgers: Path,
    args: list[str],
    tally: Tally,
    action: str,
    command: str,
) -> None:
    from tests.qldb.qldb_server import start_serve_qldb

    rng = p.rng
    if action == "down":

        def act(_run: Running) -> None:
            old = served[-1][0]
            old.kill()
            old.wait()
            time.sleep(rng.uniform(0.5, 2.0))
            served.append(start_serve_qldb(f"embedded:{ledgers}/"))
            proxy.upstream = served[-1][1]

        found = p.during("settle", args, tally, act, lo=0.3, hi=0.8)
        if found is None:
            return
        done = found
    else:
        skip = rng.randint(0, 2) if command == "CommitTransaction" else rng.randint(1, 4)
        times = 1 if action == "lose-answer" else rng.choice([1, 2, 3])
        rule = proxy.arm(action, command, skip=skip, times=times)
        done = p.cli.run(args)
        proxy.disarm()
        if rule.fired == 0:
            tally.missed += 1
            return
        tally.injected += 1
        tally.details.setdefault("times", []).append(times)
    if _unexpected(done, tally):
        return
    tally.outcomes[p.settle_outcome(done, False).replace(" before a commit", "")] += 1
    if done.code == 3:
        tally.details.setdefault("messages", []).append(done.stderr.strip().splitlines()[-1][:240])


# --- postgres: the PostgreSQL replica, its server killed mid-group --------------------------------


def postgres_scenario(ctx: Context) -> ScenarioResult:
    """Settle into PostgreSQL (a real throwaway server) while the server is killed with ``kill
    -9`` at a random instant of a settle and restarted 0.5-2 s later (crash recovery runs): the
    settle in flight ends transient (exit 3) or done, and the next one goes on from the
    destination's checkpoint. At the end the replica is verified against the source and its
    stored chain (``verify --chain``) from PostgreSQL alone."""
    from destination.postgres_local import LocalPostgres

    name = "postgres"
    started = time.monotonic()
    work = ctx.workdir / name
    rng = Random(ctx.seed + 4)
    server = LocalPostgres.start()
    url = server.url("chaos")
    cli = Cli(env=base_env(), workdir=work)
    sim = work / "sim"
    ctx.say(f"[{name}] simulating {ctx.size.postgres_transactions} transactions")
    result = ScenarioResult(
        name=name,
        buffer="sqlite",
        destination="postgresql (a local server killed -9 and restarted)",
        simulation={},
        window_seconds=0,
    )
    try:
        result.simulation, _, stream = simulated(
            cli, sim, transactions=ctx.size.postgres_transactions, seed=ctx.seed + 4
        )
        result.window_seconds = window_for(stream)
        p = Pipeline(
            scenario=name,
            cli=cli,
            sim=sim,
            buffer_url=f"sqlite:{work / 'buffer.db'}",
            destination_url=url,
            window=result.window_seconds,
            group_size=3,
            rng=rng,
            tallies=ctx.tallies,
        )
        fault = "PostgreSQL server killed mid-group"
        how = "the PostgreSQL server killed -9 at a random instant of a settle, restarted later"
        tally = ctx.tallies.get(fault, name, how)

        def kill_and_restart(_run: Running) -> None:
            server.kill()
            time.sleep(rng.uniform(0.5, 2.0))
            server.restart()

        def one_fault(now: str) -> None:
            done = p.during("settle", p.settle_args(now), tally, kill_and_restart, lo=0.2, hi=0.8)
            if done is None or _unexpected(done, tally):
                return
            tally.injected += 1
            tally.outcomes[p.settle_outcome(done, False)] += 1

        for files in p.chunks(ctx.size.postgres_chunk):
            p.ingest(files)
            now = p.now_of(files)
            one_fault(now)
            p.settle(now)
        tries = 0
        while tally.injected == 0 and tries < 4:
            tries += 1
            one_fault(FAR)
        p.drain()
        ctx.say(f"[{name}] counting records and verifying the replica and its chain")
        finish(p, result, stream)
        chain = cli.run(["verify", "--chain", "--destination", url, "--json"])
        result.checks["the stored chain verifies"] = chain.code == 0
        result.checks["every block replayed"] = set(result.accounting["blocks_by_state"]) == {
            "replayed"
        }
    finally:
        server.stop()
    result.seconds = time.monotonic() - started
    return result


# --- late: blocks delivered hours after the window ------------------------------------------------


def late_scenario(ctx: Context) -> ScenarioResult:
    from journal.records import BlockSummary, RevisionDetails
    from settler.compare import compare, documents_of_export

    name = "late"
    started = time.monotonic()
    work = ctx.workdir / name
    rng = Random(ctx.seed + 3)
    cli = Cli(env=base_env(), workdir=work)
    sim = work / "sim"
    ctx.say(f"[{name}] simulating {ctx.size.late_transactions} transactions")
    stats = simulate(cli, sim, transactions=ctx.size.late_transactions, seed=ctx.seed + 3)
    events = sorted((sim / "events").glob("*.json"))
    full = StreamInventory()
    full.add_files(events)
    window = window_for(full)
    late_blocks = _pick_late(full, ctx.size.late_blocks, rng)
    late_at = delivered_at(events[-1]) + timedelta(hours=3)
    on_time, late_files, held = split_late(
        events, set(late_blocks), work / "split", rng, late_at=late_at
    )
    replica = work / "replica.db"
    result = ScenarioResult(
        name=name,
        buffer="sqlite",
        destination="embedded",
        simulation=stats,
        window_seconds=window,
    )
    p = Pipeline(
        scenario=name,
        cli=cli,
        sim=sim,
        buffer_url=f"sqlite:{work / 'buffer.db'}",
        destination_url=f"embedded:{replica}",
        window=window,
        group_size=5,
        rng=rng,
        tallies=ctx.tallies,
    )
    p.events = on_time
    gaps = 0
    for files in p.chunks(8):
        p.ingest(files)
        gaps += p.settle(p.now_of(files))["gaps_passed"]
    end_of_stream = delivered_at(on_time[-1]) + timedelta(seconds=window + 60)
    gaps += p.settle(iso(end_of_stream))["gaps_passed"]
    ingest = p.ingest(late_files, ok=(1,))  # late records need an operator: exit 1
    cycle = p.settle(iso(late_at + timedelta(seconds=window + 60)), ok=(1,))
    listed = cli.run(["blocks", "--buffer", p.buffer_url, "--state", "late", "--json"])
    listed_ids = sorted(b["id"] for b in listed.json()["blocks"])
    status = p.status()
    stream = StreamInventory()
    stream.add_files([*on_time, *late_files])
    late_records = stream.records_of(late_blocks)

    # The replica must hold exactly the latest revision, outside the late blocks, of every
    # document (the late blocks' documents are touched by no later block: see _pick_late).
    expected: dict[str, RevisionDetails] = {}
    for rid in stream.kinds:
        rec = stream.records[rid]
        if isinstance(rec, RevisionDetails) and rec.block_id not in late_blocks:
            key = f"{rec.ledger}/{rec.document_id}"
            if key not in expected or rec.version > expected[key].version:
                expected[key] = rec
    export = work / "replica-export.ion"
    exported = cli.run(["export", "--destination", p.destination_url, "--format", "ion"])
    export.write_text(exported.stdout, encoding="utf-8")
    replica_docs = documents_of_export(export)
    without_late = compare(
        "the stream without the late blocks",
        [(r.table_name, r.data) for r in expected.values() if r.data is not None],
        replica_docs,
    )
    accounting = p.account(stream)
    result.accounting = accounting.as_json()
    result.records_lost = accounting.records_lost + len(accounting.unexpected)
    blocks = p.account_blocks(stream)
    result.accounting["blocks"] = blocks.as_json()
    result.blocks_skipped = blocks.blocks_skipped  # the late blocks, and only they
    result.documents_wrong = len(without_late.missing) + len(without_late.unexpected)
    verification = p.verify()
    result.verify = {
        "against the source (not expected equal)": verification.raw,
        "against the stream without the late blocks": without_late.summary(),
    }
    blocks_of_state = accounting.blocks
    result.checks = {
        "every late block counted by the ingest": ingest["late"] == len(late_records),
        "every late block listed by blocks --state late": listed_ids == sorted(late_blocks),
        "status counts every late block": status["blocks"]["late"] == len(late_blocks),
        "no late block applied on its own": cycle["replayed"]["blocks"] == 0
        and blocks_of_state.get("late", 0) == len(late_blocks),
        "everything else replayed": blocks_of_state.get("replayed", 0)
        == len([r for r, k in stream.kinds.items() if k == "block"]) - len(late_blocks),
        "the replica is the stream without the late blocks": without_late.equal,
        "the blocks skipped are the late blocks": sorted(b for b, _ in blocks.skipped)
        == sorted(b.split("/", 1)[1] for b in late_blocks),
    }
    tally = ctx.tallies.get(
        "blocks delivered hours late",
        name,
        "every record of some blocks held back and delivered 3 h after the rest",
    )
    tally.injected = len(late_blocks)
    tally.records_lost = result.records_lost
    tally.documents_wrong = result.documents_wrong
    tally.blocks_skipped = result.blocks_skipped
    tally.details = {
        "late_blocks": late_blocks,
        "records_held_back": held,
        "late_records_counted_by_ingest": ingest["late"],
        "listed_late": listed_ids,
        "status_late": status["blocks"]["late"],
        "gaps_passed": gaps,
        "differences_with_the_source": verification.wrong,
    }
    if all(result.checks.values()):
        tally.outcomes[
            "counted late by the ingest, listed by blocks --state late, never applied; the "
            f"rest replayed ({gaps} gaps passed by the window)"
        ] = len(late_blocks)
    else:
        failed = [k for k, v in result.checks.items() if not v]
        tally.outcomes[f"FAILED: {', '.join(failed)}"] = len(late_blocks)
    result.notes.append(
        f"verify --source finds {verification.wrong} differences (missing + unexpected), all in "
        "documents the late blocks write (the replica equals the stream without them)"
        if without_late.equal
        else "the replica differs from the stream without the late blocks"
    )
    _ = BlockSummary  # the late blocks are block summaries with revisions (see _pick_late)
    result.seconds = time.monotonic() - started
    return result


DDL = ("CREATE", "DROP", "UNDROP")


def _pick_late(stream: StreamInventory, count: int, rng: Random) -> list[str]:
    """Blocks of the middle of the stream that write documents (revisions), run no DDL, and
    whose documents no later block touches: holding them back changes exactly those documents."""
    from journal.records import BlockSummary

    blocks = sorted(
        (r for r in stream.records.values() if isinstance(r, BlockSummary)),
        key=lambda b: b.address.sequence_no,
    )
    touched_after: dict[str, int] = {}
    for b in blocks:
        for rev in b.user_revisions:
            assert rev.document_id is not None
            touched_after[rev.document_id] = b.address.sequence_no
    lo, hi = len(blocks) // 4, 3 * len(blocks) // 4
    candidates = [
        b.block_id
        for b in blocks[lo:hi]
        if b.user_revisions
        and not any(
            s.text.lstrip().upper().startswith(("CREATE", "DROP", "UNDROP")) for s in b.statements
        )
        and all(
            touched_after[r.document_id or ""] == b.address.sequence_no for r in b.user_revisions
        )
    ]
    if len(candidates) < count:
        raise CampaignError(f"late scenario: only {len(candidates)} blocks fit, {count} wanted")
    return sorted(rng.sample(candidates, count))


__all__ = [
    "FULL",
    "QUICK",
    "REPO_ROOT",
    "Context",
    "ScenarioResult",
    "Size",
    "late_scenario",
    "main_scenario",
    "opensearch_scenario",
    "qldb_scenario",
]
