"""The AWS path's round trips (issue 20): what the OpenSearch buffer costs in requests per ingest
event and per settled block, and what those requests cost in time at an AWS-like round trip,
next to the SQLite buffer on the same input in the same run.

Input: a simulated stream (``qldb-settle simulate``: Lambda Kinesis events with KPL aggregates,
duplicates and redelivered batches), the same files for every store.

The parent starts one ``osmem-server`` (``buffer.opensearch_local``) and one proxy in front of it
(``buffer.opensearch_proxy.FaultProxy``) that logs every request and sleeps a fixed delay before
forwarding each; the work runs in child processes, one per phase, talking to the proxy over
loopback HTTP, so the proxy's log between two children is exactly what that phase sent:

- ``ingest``: every event through ``ingest.decode.decode_event`` and ``ingest.service.
  ingest_items``, one put per event as the ingest Lambda does;
- ``settle``: one ``settler.cycle.settle`` that releases every block into a new embedded ledger
  (the cycle as the settler Lambda runs it: lease, pages, verification with content hashes,
  replay in groups, marks, stats);
- ``idle``: one more cycle with nothing to release: the per-cycle constant (lease, strands,
  marks, rejections, stats), which the steady-state figure per block leaves out.

Each OpenSearch repetition uses indices of its own (a new prefix, created by the parent before
the clock starts), at 0 ms added (osmem-server over loopback: the adapter's CPU and the server's)
and at ``ROUND_TRIP_MS``; the SQLite baseline runs the same phases on a new file. Children run in
``.venv``: opensearch-py is not in the ingest environment, and the request counts do not depend
on the Ion library.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import MAIN_PYTHON, BenchError, Json, median, ratio, run_child, timed

if TYPE_CHECKING:
    from settler.cycle import SettlePolicy

MODULE = "bench.opensearch"
ROUND_TRIP_MS = 5.0
DELAYS_MS = (0.0, ROUND_TRIP_MS)
WINDOW_SECONDS = 120.0
# Far after every simulated commit: the settle phase releases the whole stream.
NOW = datetime(2100, 1, 1, tzinfo=UTC)
# The settler renews its lease before a destination transaction once a third of it has passed
# (``settler.lease``): a ``_mget`` and an ``_update`` per ``lease_seconds / 3`` of wall-clock
# time, so at the default 300 s a settle phase slower than 100 s (a loaded machine: 9 s idle,
# 60 s beside other work) sent two more requests than a faster repetition of the same input. A
# lease of a day keeps renewals out of every phase: the counts are those of the input alone.
LEASE_SECONDS = 86_400.0
TARGET_REQUESTS_PER_EVENT = 2.0
TARGET_REQUESTS_PER_BLOCK = 0.05


def _open(args: Json) -> Any:
    if args["store"] == "sqlite":
        from buffer.sqlite import SqliteBuffer

        return SqliteBuffer(Path(args["path"]))
    from buffer.opensearch import OpenSearchBuffer

    return OpenSearchBuffer.from_url(
        args["url"], index_prefix=args["prefix"], auth="none", create=False
    )


def child_ingest(args: Json) -> Json:
    from ingest.decode import decode_event
    from ingest.service import IngestReport, ingest_items
    from ledger.classify import classify

    files = sorted(Path(args["events"]).glob("*.json"))
    events = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    classify("SELECT * FROM Person")  # warm-up: the grammar is loaded once per process
    buffer = _open(args)
    try:
        total = IngestReport()
        with timed() as t:
            for event in events:
                report = ingest_items(buffer, decode_event(event))
                total.records += report.records
                total.put.add(report.put)
    finally:
        buffer.close()
    if total.put.rejected:
        raise BenchError(f"ingest rejected {total.put.rejected} records of a simulated stream")
    return {
        "events": len(events),
        "records": total.records,
        "blocks": total.put.stored.get("blocks", 0),
        "duplicates": total.put.duplicates,
        "seconds": t.wall,
        "cpu_seconds": t.cpu,
    }


def child_settle(args: Json) -> Json:
    from destination.embedded import EmbeddedDestination
    from ledger.parser import parse
    from settler.block_checks import ionhash_available
    from settler.cycle import settle

    ionhash_available()  # warm-up: lazy imports a running settler has done already
    parse("INSERT INTO Vehicle {'VIN': 'x'}")
    buffer = _open(args)
    destination = EmbeddedDestination(Path(args["replica"]))
    warned = _Warnings()
    logging.getLogger().addHandler(warned)
    try:
        with timed() as t:
            report = settle(buffer, destination, now=NOW, policy=settle_policy())
    finally:
        logging.getLogger().removeHandler(warned)
        destination.close()
        buffer.close()
    if report.halted:
        raise BenchError(f"the settle cycle halted: {report.halt_reason}")
    return {
        "blocks": report.blocks,
        "statements": report.statements,
        "revisions": report.revisions,
        "seconds": t.wall,
        "cpu_seconds": t.cpu,
        "warnings": warned.messages,
    }


class _Warnings(logging.Handler):
    """The warnings a phase logged (a group that fell back to one by one says why), so that a
    request-count mismatch between repetitions names its cause."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


def settle_policy() -> SettlePolicy:
    """The settle and idle phases' policy: the window, and a lease no phase outlasts
    (``LEASE_SECONDS``)."""
    from settler.cycle import SettlePolicy

    return SettlePolicy(window_seconds=WINDOW_SECONDS, lease_seconds=LEASE_SECONDS)


def _work(args: Json) -> Json:
    if args["mode"] == "ingest":
        return child_ingest(args)
    if args["mode"] in ("settle", "idle"):
        return child_settle(args)
    raise BenchError(f"unknown mode {args['mode']!r}")


def _phases(store: Json, events: Path, replica: Path, proxy: Any | None) -> Json:
    """Ingest, settle and an idle cycle on one store; the requests of each when ``proxy``."""
    out: Json = {}
    for mode in ("ingest", "settle", "idle"):
        since = len(proxy.log) if proxy is not None else 0
        args = dict(store, mode=mode, events=str(events), replica=str(replica))
        out[mode] = run_child(MODULE, args, python=MAIN_PYTHON, timeout=1800)
        if proxy is not None:
            kinds = proxy.kinds(since)
            failed = [e for e in proxy.log[since:] if not _answered(e.outcome)]
            if failed:
                raise BenchError(
                    f"{len(failed)} requests of the {mode} phase did not succeed, first: "
                    f"{failed[0].method} {failed[0].path} {failed[0].outcome}"
                )
            out[mode]["requests"] = dict(sorted(kinds.items()))
            out[mode]["request_count"] = sum(kinds.values())
            out[mode]["answers"] = dict(
                sorted(Counter(e.outcome for e in proxy.log[since:]).items())
            )
            out[mode]["server_seconds"] = sum(e.upstream_seconds for e in proxy.log[since:])
    if out["settle"]["blocks"] != out["ingest"]["blocks"] or out["idle"]["blocks"]:
        raise BenchError(
            f"the cycle replayed {out['settle']['blocks']} of the {out['ingest']['blocks']} "
            f"blocks ingested (then {out['idle']['blocks']} more)"
        )
    return out


def _answered(outcome: str) -> bool:
    """Forwarded and answered without a retryable status (a 404 or 409 is an answer)."""
    status = outcome.removeprefix("forward:")
    return status != outcome and status.isdigit() and int(status) < 500 and status != "429"


def _rates(run: Json) -> Json:
    i, s = run["ingest"], run["settle"]
    out = {
        "ingest_events_per_s": i["events"] / i["seconds"],
        "ingest_records_per_s": i["records"] / i["seconds"],
        "settle_blocks_per_s": s["blocks"] / s["seconds"],
        "settle_statements_per_s": s["statements"] / s["seconds"],
        "settle_seconds": s["seconds"],
        "ingest_seconds": i["seconds"],
    }
    if "server_seconds" in s:  # the server's own time answering, as the proxy timed it
        out["settle_server_share"] = s["server_seconds"] / s["seconds"]
        out["ingest_server_share"] = i["server_seconds"] / i["seconds"]
    return out


def _median_rates(runs: list[Json]) -> Json:
    rates = [_rates(r) for r in runs]
    return {k: median([r[k] for r in rates]) for k in rates[0]}


def measure(events: Path, *, reps: int, workdir: Path) -> Json:
    """``reps`` repetitions of SQLite, OpenSearch at 0 ms and at ``ROUND_TRIP_MS``, alternated."""
    from buffer.opensearch import OpenSearchBuffer
    from buffer.opensearch_local import LocalOpenSearch
    from buffer.opensearch_proxy import FaultProxy

    workdir.mkdir(parents=True, exist_ok=True)
    server = LocalOpenSearch.start()
    proxy = FaultProxy(upstream=server.url).start()
    runs: dict[str, list[Json]] = {"sqlite": [], **{_label(d): [] for d in DELAYS_MS}}
    try:
        for rep in range(reps):
            with tempfile.TemporaryDirectory(prefix="bench-os-", dir=workdir) as tmp:
                store = {"store": "sqlite", "path": str(Path(tmp) / "buffer.db")}
                runs["sqlite"].append(_phases(store, events, Path(tmp) / "replica.db", None))
            for delay in DELAYS_MS:
                prefix = f"bench-{rep}-{uuid.uuid4().hex[:8]}"
                OpenSearchBuffer.from_url(server.url, index_prefix=prefix, auth="none").close()
                proxy.delay_seconds = delay / 1000
                store = {"store": "opensearch", "url": proxy.url, "prefix": prefix}
                with tempfile.TemporaryDirectory(prefix="bench-os-", dir=workdir) as tmp:
                    runs[_label(delay)].append(
                        _phases(store, events, Path(tmp) / "replica.db", proxy)
                    )
                proxy.delay_seconds = 0.0
    finally:
        proxy.close()
        server.close()
    return summarize(runs)


def _label(delay_ms: float) -> str:
    return f"opensearch_{delay_ms:g}ms"


def summarize(runs: dict[str, list[Json]]) -> Json:
    first = runs[_label(ROUND_TRIP_MS)][0]
    counted = {
        f"{k} #{i + 1}": r for k, rs in runs.items() if k != "sqlite" for i, r in enumerate(rs)
    }
    # The counts are a function of the input and the options: every repetition must agree.
    for phase in ("ingest", "settle", "idle"):
        seen = {json.dumps(r[phase]["requests"], sort_keys=True) for r in counted.values()}
        if len(seen) != 1:
            raise BenchError(
                f"the {phase} phase sent different requests in different runs: "
                + differing(phase, counted)
            )
    ingest, settle_, idle = first["ingest"], first["settle"], first["idle"]
    per_event = ingest["request_count"] / ingest["events"]
    blocks = settle_["blocks"]
    steady = (settle_["request_count"] - idle["request_count"]) / blocks
    sqlite = _median_rates(runs["sqlite"])
    stores: Json = {"sqlite": sqlite}
    for delay in DELAYS_MS:
        rates = _median_rates(runs[_label(delay)])
        rates["settle_to_sqlite"] = ratio(
            rates["settle_blocks_per_s"], sqlite["settle_blocks_per_s"]
        )
        rates["ingest_to_sqlite"] = ratio(
            rates["ingest_records_per_s"], sqlite["ingest_records_per_s"]
        )
        stores[_label(delay)] = rates
    return {
        "round_trip_ms": ROUND_TRIP_MS,
        "repetitions": len(runs["sqlite"]),
        "workload": {
            "events": ingest["events"],
            "records": ingest["records"],
            "duplicates": ingest["duplicates"],
            "blocks": blocks,
            "statements": settle_["statements"],
        },
        "requests": {
            "ingest": ingest["requests"],
            "ingest_total": ingest["request_count"],
            "ingest_per_event": per_event,
            "settle": settle_["requests"],
            "settle_total": settle_["request_count"],
            "settle_per_block": settle_["request_count"] / blocks,
            "cycle_constant": idle["request_count"],
            "cycle_constant_requests": idle["requests"],
            "settle_per_block_steady": steady,
            "ingest_target_met": per_event <= TARGET_REQUESTS_PER_EVENT,
            "settle_target_met": steady <= TARGET_REQUESTS_PER_BLOCK,
        },
        "stores": stores,
    }


def differing(phase: str, runs: Mapping[str, Json]) -> str:
    """What ``phase`` sent in each of ``runs`` (label -> run), by the request kinds whose counts
    differ between them, with each run's time and the answers the proxy logged, so that a
    mismatch says what differed: ``opensearch_0ms #1: POST _mget 6, POST _update 36 (9.3 s;
    forward:200 88, forward:409 1); ...``."""
    kinds = sorted({k for r in runs.values() for k in r[phase]["requests"]})
    varying = [k for k in kinds if len({r[phase]["requests"].get(k, 0) for r in runs.values()}) > 1]
    parts = []
    for label, run in runs.items():
        p = run[phase]
        counts = ", ".join(f"{k} {p['requests'].get(k, 0)}" for k in varying)
        answers = ", ".join(f"{k} {n}" for k, n in p.get("answers", {}).items())
        warned = "".join(f"; warned: {w}" for w in p.get("warnings", [])[:3])
        parts.append(f"{label}: {counts} ({p['seconds']:.1f} s; {answers}{warned})")
    return "; ".join(parts)


def top(kinds: dict[str, int], n: int = 3) -> str:
    """The ``n`` most frequent request kinds, for the report: ``POST _mget 758, ...``."""
    return ", ".join(f"{k} {v:,}" for k, v in Counter(kinds).most_common(n))


if __name__ == "__main__":
    from bench.common import child_main

    child_main(_work)
