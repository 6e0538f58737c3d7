"""Ingest throughput: stream records per second through the ingest path, one core, against bare
Ion parsing of the same records.

The input is a simulated stream (``qldb-settle simulate``: Lambda Kinesis events with KPL
aggregates, duplicates and redelivered batches), read from ``DIR/*.json`` before the clock starts.

- baseline (``parse``): ``simpleion.loads`` of every user record's Ion binary, the records taken
  out of base64 and their KPL aggregates beforehand;
- measured (``ingest``): each event through ``ingest.decode.decode_event`` (base64, KPL checked
  and split, Ion structure check, Ion parsing, typed records, fingerprints, statement
  classification) and ``ingest.service.ingest_items`` into a new ``SqliteBuffer``, one put per
  event as the Lambda does, its modules imported before the clock starts (as the Lambda imports
  them at init: the children write no bytecode, so on a fresh clone a module first imported on
  the clock was compiled from source there, about 10 ms of the run). Nothing is verified at
  ingest: digests and hashes are the settler's (ionhash is not in the ingest environment).

Each repetition of each is a fresh child process (its peak RSS is its own); the parent alternates
baseline and measured children and keeps medians, in ``.venv`` (amazon.ion 0.9.3) and in
``.venv-ingest`` (amazon.ion 0.15 with its C extension). This module imports only the standard
library, ``ingest``, ``journal``, ``buffer`` and ``ledger.classify``: it runs in both.
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    Json,
    ion_version,
    median,
    peak_rss_kb,
    ratio,
    reset_peak_rss,
    rss_kb,
    run_child,
    timed,
)

MODULE = "bench.ingest"


def _events(directory: Path) -> list[Any]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise BenchError(f"{directory}: no event files (*.json)")
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def _user_records(events: list[Any]) -> list[bytes]:
    from ingest import kpl

    out: list[bytes] = []
    for event in events:
        for record in event["Records"]:
            data = base64.b64decode(record["kinesis"]["data"])
            if kpl.is_aggregate(data):
                out.extend(u.data for u in kpl.deaggregate(data))
            else:
                out.append(data)
    return out


def child_parse(args: Json) -> Json:
    """Bare Ion parsing of every user record of the events."""
    from amazon.ion import simpleion

    records = _user_records(_events(Path(args["events"])))
    simpleion.loads(records[0], single_value=False)  # warm-up, as the ingest child's
    reset_peak_rss()
    rss_before = rss_kb()
    with timed() as t:
        for data in records:
            simpleion.loads(data, single_value=False)
    return {
        "records": len(records),
        "seconds": t.wall,
        "cpu_seconds": t.cpu,
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak_rss_kb(),
        "ion": ion_version(),
    }


def ingest_events(buffer: Any, events: list[Any]) -> Any:
    """Every event through decode and ``ingest_items``, one call per event as the Lambda does;
    the ``IngestReport`` of them all."""
    from ingest.decode import decode_event
    from ingest.service import IngestReport, ingest_items

    total = IngestReport()
    for event in events:
        report = ingest_items(buffer, decode_event(event))
        total.records += report.records
        total.put.add(report.put)
    return total


def child_ingest(args: Json) -> Json:
    """Every event through decode and ``ingest_items`` into a new ``SqliteBuffer``."""
    import ingest.decode
    import ingest.service  # noqa: F401 - imported before the clock, as the Lambda does at init
    from buffer.sqlite import SqliteBuffer
    from ledger.classify import classify

    events = _events(Path(args["events"]))
    expected = len(_user_records(events))
    classify("SELECT * FROM Person")  # warm-up: the grammar is loaded once per process
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        buffer = SqliteBuffer(Path(tmp) / "buffer.db")
        try:
            reset_peak_rss()
            rss_before = rss_kb()
            with timed() as t:
                total = ingest_events(buffer, events)
            peak = peak_rss_kb()
        finally:
            buffer.close()
    put = total.put
    if total.records != expected or put.rejected:
        raise BenchError(
            f"the ingest path took {total.records} records ({put.rejected} rejected) of the "
            f"{expected} user records of the events"
        )
    return {
        "records": total.records,
        "seconds": t.wall,
        "cpu_seconds": t.cpu,
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak,
        "stored": dict(put.stored),
        "duplicates": put.duplicates,
        "ion": ion_version(),
    }


def _work(args: Json) -> Json:
    if args["mode"] == "parse":
        return child_parse(args)
    if args["mode"] == "ingest":
        return child_ingest(args)
    raise BenchError(f"unknown mode {args['mode']!r}")


def measure(events: Path, *, python: Path | str, reps: int) -> Json:
    """Alternate ``reps`` baseline and ``reps`` measured children in one environment."""
    parse: list[Json] = []
    ingest: list[Json] = []
    for _ in range(reps):
        parse.append(run_child(MODULE, {"mode": "parse", "events": str(events)}, python=python))
        ingest.append(run_child(MODULE, {"mode": "ingest", "events": str(events)}, python=python))
    records = parse[0]["records"]
    parse_rates = [p["records"] / p["seconds"] for p in parse]
    ingest_rates = [i["records"] / i["seconds"] for i in ingest]
    paired = [i / p for i, p in zip(ingest_rates, parse_rates, strict=True)]
    return {
        "ion": ingest[0]["ion"],
        "records": records,
        "stored": ingest[0]["stored"],
        "duplicates": ingest[0]["duplicates"],
        "repetitions": reps,
        "parse_records_per_s": median(parse_rates),
        "ingest_records_per_s": median(ingest_rates),
        "ingest_cpu_records_per_s": median([i["records"] / i["cpu_seconds"] for i in ingest]),
        "parse_cpu_records_per_s": median([p["records"] / p["cpu_seconds"] for p in parse]),
        "ratio": median(paired),
        "ratio_of_medians": ratio(median(ingest_rates), median(parse_rates)),
        "ingest_peak_rss_kb": median([float(i["peak_rss_kb"]) for i in ingest]),
        "ingest_rss_growth_kb": median(
            [float(i["peak_rss_kb"] - i["rss_before_kb"]) for i in ingest]
        ),
        "parse_peak_rss_kb": median([float(p["peak_rss_kb"]) for p in parse]),
        "target": "ingest at least half the rate of bare Ion parsing (ratio >= 0.5)",
        "target_met": median(paired) >= 0.5,
    }


if __name__ == "__main__":
    from bench.common import child_main

    child_main(_work)
