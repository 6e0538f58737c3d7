"""Three ordering strategies side by side on the same simulated workloads.

Each run simulates a busy source ledger with overlapping transactions and its hostile stream
(``qldb_settle.simulate``: 4 shards, KPL aggregates, duplicates, redelivered batches), then
replays that same stream three ways into a new embedded ledger each, and compares every replica
with the source ledger by content (``settler.compare.compare``):

- **(a) the original replay Lambda** (DESIGN.md, "Where it comes from"): every event as it
  arrives, every block summary copy in it (no deduplication), each statement in index order in
  its own transaction as soon as it arrives, SELECTs skipped, errors logged and dropped. It is
  given this project's decoder (KPL aggregates split), which the original did not need with
  aggregation off. Lag: the block's first arrival − its commit.
- **(b) the blog's proposed settling buffer**: every statement stored with its ``startTime``
  (deduplicated by statement id, as an index with deterministic ids would); every schedule
  period, the statements whose ``startTime`` is older than the settle window are replayed in
  ``startTime`` order, each in its own transaction, SELECTs skipped. Lag: the cycle that
  replays a block's last statement − its commit.
- **(c) this service**: the demo loop (``bench.lag.run_service``): ingest, settle every schedule
  period with the default window, replay in commit order; verified against the source ledger and
  the stream's own revisions. Lag: the cycle that replays the block − its commit.

The rule for statements (a) and (b) cannot run: QLDB does not stream parameter values, so a
statement with ``?`` parameters cannot be replayed from its text at all; it counts as failed and
is dropped without running, as the original Lambda logged and dropped errors. Any other statement
is run; an error (a missing table, a document id that does not exist in the replica, ...) is
counted and dropped too. ``out_of_commit_order`` counts the statements (SELECTs aside) each ran
after a statement of a block committed later.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Json, percentiles
from bench.lag import SCHEDULE_SECONDS, WINDOW_SECONDS, run_service, summary


@dataclass(slots=True)
class _Replayer:
    """Runs statements one per transaction into a replica, keeping the counts."""

    ledger: Any
    executed: int = 0
    selects_skipped: int = 0
    failed_parameters: int = 0
    failed_errors: int = 0
    out_of_commit_order: int = 0
    highest_sequence: int = -1
    errors: Counter[str] = field(default_factory=Counter)

    def run(self, text: str, kind: str, sequence_no: int) -> None:
        from ledger import LedgerError

        if kind == "select":
            self.selects_skipped += 1
            return
        if sequence_no < self.highest_sequence:
            self.out_of_commit_order += 1
        self.highest_sequence = max(self.highest_sequence, sequence_no)
        if kind == "parameterized":
            self.failed_parameters += 1
            return
        try:
            self.ledger.execute(text)
        except LedgerError as exc:
            self.failed_errors += 1
            self.errors[type(exc).__name__] += 1
        else:
            self.executed += 1

    def counts(self) -> Json:
        return {
            "statements_executed": self.executed,
            "selects_skipped": self.selects_skipped,
            "failed_parameters": self.failed_parameters,
            "failed_errors": self.failed_errors,
            "errors": dict(self.errors),
            "out_of_commit_order": self.out_of_commit_order,
        }


def _replica(path: Path) -> Any:
    from ledger import EmbeddedLedger

    return EmbeddedLedger(path, ledger_name="replica", id_seed=path.stem)


def _compare(source: Path, replica: Any) -> Json:
    from settler.compare import compare, documents_of_ledger

    result = compare(
        "source ledger",
        documents_of_ledger(source),
        [(t, d) for t, _id, d in replica.documents()],
    )
    return {
        "equal": result.equal,
        "documents": result.documents,
        "missing": len(result.missing),
        "unexpected": len(result.unexpected),
    }


def _summaries(event: Any) -> list[Any]:
    from buffer.port import Incoming
    from ingest.decode import decode_event
    from journal.records import BlockSummary

    return [
        item
        for item in decode_event(event.to_json())
        if isinstance(item, Incoming) and isinstance(item.record, BlockSummary)
    ]


def _ms(value: datetime) -> float:
    return value.timestamp() * 1000.0


def original_lambda(simulation: Any, workdir: Path) -> Json:
    """(a): see the module docstring."""
    replica = _replica(workdir / "replica-a.db")
    replayer = _Replayer(replica)
    lag: dict[str, float] = {}
    copies = 0
    try:
        for event in simulation.events:
            for item in _summaries(event):
                s = item.record
                copies += 1
                lag.setdefault(s.block_id, event.delivered_ms - _ms(s.commit_time))
                for st in s.statements:
                    replayer.run(st.text, item.statement_kinds[st.index], s.address.sequence_no)
        outcome = _compare(simulation.source_path, replica)
    finally:
        replica.close()
    return {
        **outcome,
        **replayer.counts(),
        "block_copies_replayed": copies,
        "blocks": len(lag),
        "lag_ms": percentiles(list(lag.values())),
        "lags": list(lag.values()),
    }


def start_time_buffer(
    simulation: Any,
    workdir: Path,
    *,
    window: float = WINDOW_SECONDS,
    schedule: float = SCHEDULE_SECONDS,
) -> Json:
    """(b): see the module docstring."""
    replica = _replica(workdir / "replica-b.db")
    replayer = _Replayer(replica)
    # statement id -> (startTime, statement id, text, kind, block id, sequence number)
    pending: dict[str, tuple[datetime, str, str, str, str, int]] = {}
    seen: set[str] = set()
    commit: dict[str, datetime] = {}
    statements_left: Counter[str] = Counter()
    lag: dict[str, float] = {}
    step = timedelta(seconds=schedule)
    wait = timedelta(seconds=window)
    events = simulation.events

    def cycle(now: datetime) -> None:
        due = sorted(p for p in pending.values() if p[0] <= now - wait)
        for _start, sid, text, kind, block, seq in due:
            del pending[sid]
            replayer.run(text, kind, seq)
            statements_left[block] -= 1
            if statements_left[block] == 0:
                lag[block] = _ms(now) - _ms(commit[block])

    try:
        now = datetime.fromtimestamp(events[0].delivered_ms / 1000, UTC) + step
        for event in events:
            arrived = datetime.fromtimestamp(event.delivered_ms / 1000, UTC)
            while now <= arrived:
                cycle(now)
                now += step
            for item in _summaries(event):
                s = item.record
                commit.setdefault(s.block_id, s.commit_time)
                for st in s.statements:
                    sid = s.statement_id(st.index)
                    if sid in seen:
                        continue
                    seen.add(sid)
                    statements_left[s.block_id] += 1
                    pending[sid] = (
                        st.start_time,
                        sid,
                        st.text,
                        item.statement_kinds[st.index],
                        s.block_id,
                        s.address.sequence_no,
                    )
        while pending:
            cycle(now)
            now += step
        outcome = _compare(simulation.source_path, replica)
    finally:
        replica.close()
    return {
        **outcome,
        **replayer.counts(),
        "blocks": len(lag),
        "lag_ms": percentiles(list(lag.values())),
        "lags": list(lag.values()),
    }


def run_seed(workdir: Path, simulation_config: Any) -> Json:
    """One workload: (c) through the demo loop, then (a) and (b) on the same stream."""
    report = run_service(workdir / "service", simulation_config)
    service = summary(report, window=WINDOW_SECONDS, schedule=SCHEDULE_SECONDS, early=False)
    service["equal"] = report.verified
    service["comparisons"] = [c.summary() for c in report.comparisons]
    service["lags"] = list(report.settled.lag_ms)
    simulation = report.simulation
    return {
        "seed": simulation_config.seed,
        "stats": simulation.stats,
        "a_original_lambda": original_lambda(simulation, workdir),
        "b_start_time_buffer": start_time_buffer(simulation, workdir),
        "c_this_service": service,
    }


STRATEGIES = ("a_original_lambda", "b_start_time_buffer", "c_this_service")


def measure(workdir: Path, *, seeds: list[int], transactions: int) -> Json:
    """Every strategy on every seed, for two workload families: the default mix (35% of writes
    with parameters) and literal statements only (``param_rate`` 0: only the by-id updates still
    carry parameters), so that ordering alone shows."""
    from qldb_settle.simulate import SimulationConfig

    families = {"default": 0.35, "literal": 0.0}
    out: dict[str, Json] = {}
    for family, param_rate in families.items():
        runs = []
        for seed in seeds:
            config = SimulationConfig(transactions=transactions, seed=seed, param_rate=param_rate)
            runs.append(run_seed(workdir / f"{family}-{seed}", config))
        strategies: dict[str, Json] = {}
        for name in STRATEGIES:
            results = [r[name] for r in runs]
            lags = [v for r in results for v in r.pop("lags")]
            strategies[name] = {
                "runs": len(results),
                "equal_runs": sum(1 for r in results if r["equal"]),
                "share_equal": sum(1 for r in results if r["equal"]) / len(results),
                "lag_ms": percentiles(lags),
            }
            if name != "c_this_service":
                for key in (
                    "missing",
                    "unexpected",
                    "failed_parameters",
                    "failed_errors",
                    "out_of_commit_order",
                    "statements_executed",
                ):
                    strategies[name][key] = sum(int(r[key]) for r in results)
            else:
                strategies[name]["missing"] = sum(r["comparisons"][0]["missing"] for r in results)
                strategies[name]["unexpected"] = sum(
                    r["comparisons"][0]["unexpected"] for r in results
                )
        out[family] = {
            "param_rate": param_rate,
            "transactions": transactions,
            "seeds": seeds,
            "strategies": strategies,
            "runs": runs,
        }
    service_always = all(
        out[f]["strategies"]["c_this_service"]["equal_runs"]
        == out[f]["strategies"]["c_this_service"]["runs"]
        for f in out
    )
    return {"families": out, "c_equal_on_every_run": service_always}
