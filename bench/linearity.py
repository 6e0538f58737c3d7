"""Ingest cost per record against event size: the same records delivered in Lambda events of 10
records and in events of 10,000, in the ingest Lambda's environment (``.venv-ingest``).

Input: a simulated stream on one shard without KPL aggregation (``SimulationConfig(shards=1,
aggregate_rate=0)``: one user record per Kinesis record, so "records" means the same thing for
both sizes; duplicates and redelivered batches as usual), its Kinesis records taken in arrival
order, the first ``records`` of them re-packed (``repack``) into events of ``small`` and of
``big`` records, written as event files before the clock starts.

Measured: ``bench.ingest.child_ingest`` over each folder (every event through
``ingest.decode.decode_event`` and ``ingest.service.ingest_items`` into a new ``SqliteBuffer``,
one ``ingest_items`` call per event as the Lambda does), each repetition a fresh child, the sizes
alternating. The figure is the cost per record in the big events over the cost per record in the
small ones, paired per repetition (target: within 1.2x either way).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import BenchError, Json, median, run_child
from bench.ingest import MODULE as INGEST_MODULE
from bench.ingest import _events

TOLERANCE = 1.2


def repack(events: Sequence[Any], size: int, records: int) -> list[Json]:
    """The first ``records`` Kinesis records of ``events``, in order, as events of ``size``
    records (the last one shorter when ``size`` does not divide ``records``)."""
    if size < 1:
        raise BenchError(f"an event holds at least one record, not {size}")
    flat = [r for e in events for r in e["Records"]]
    if len(flat) < records:
        raise BenchError(f"the stream has {len(flat)} Kinesis records, fewer than {records}")
    flat = flat[:records]
    return [{"Records": flat[i : i + size]} for i in range(0, records, size)]


def write_events(directory: Path, events: Sequence[Json]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for n, event in enumerate(events):
        (directory / f"event-{n:06d}.json").write_text(json.dumps(event), encoding="utf-8")
    return directory


def transactions_for(records: int) -> int:
    """Simulated transactions enough for ``records`` delivered records (about 2.3 each with the
    simulator's defaults; 2 keeps a margin)."""
    return max(10, records // 2 + 10)


def build(workdir: Path, *, records: int, small: int, big: int) -> Json:
    """Simulate the stream and write the two folders of events."""
    from qldb_settle.simulate import SimulationConfig, simulate

    sim = simulate(
        workdir / "input",
        SimulationConfig(
            transactions=transactions_for(records), seed=13, shards=1, aggregate_rate=0.0
        ),
    )
    events = _events(workdir / "input" / "events")
    folders = {}
    for size in (small, big):
        folders[str(size)] = str(
            write_events(workdir / f"events-{size}", repack(events, size, records))
        )
    return {"records": records, "small": small, "big": big, "folders": folders, "sim": sim.stats}


def per_record_ratio(big: Json, small: Json) -> float:
    """Cost per record in the big events over the cost per record in the small ones."""
    return float(big["seconds"] / big["records"]) / float(small["seconds"] / small["records"])


def within(ratio: float, tolerance: float = TOLERANCE) -> bool:
    return 1 / tolerance <= ratio <= tolerance


def measure(built: Json, *, python: Path | str, reps: int) -> Json:
    runs: dict[str, list[Json]] = {str(built["small"]): [], str(built["big"]): []}
    for _ in range(reps):
        for size, rs in runs.items():
            rs.append(
                run_child(
                    INGEST_MODULE,
                    {"mode": "ingest", "events": built["folders"][size]},
                    python=python,
                )
            )
    small, big = runs[str(built["small"])], runs[str(built["big"])]
    for run in (*small, *big):
        if run["records"] != built["records"]:
            raise BenchError(f"{run['records']} records ingested, not {built['records']}")
    ratios = [per_record_ratio(b, s) for b, s in zip(big, small, strict=True)]
    r = median(ratios)
    return {
        "ion": small[0]["ion"],
        "records": built["records"],
        "repetitions": reps,
        "sizes": {
            size: {
                "events": -(-built["records"] // int(size)),
                "records_per_event": int(size),
                "records_per_s": median([x["records"] / x["seconds"] for x in rs]),
                "us_per_record": median([x["seconds"] / x["records"] * 1e6 for x in rs]),
                "stored": rs[0]["stored"],
                "duplicates": rs[0]["duplicates"],
            }
            for size, rs in runs.items()
        },
        "small": built["small"],
        "big": built["big"],
        "ratio": r,
        "paired_ratios": ratios,
        "target": (
            f"ingest cost per record the same (within {TOLERANCE}x) for events of "
            f"{built['small']:,} and of {built['big']:,} records"
        ),
        "target_met": within(r),
    }
