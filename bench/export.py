"""Export ingest throughput: journal-export blocks per second into the buffer, one core, against
bare decoding of the same data objects, in each of the three output formats.

The input is the journal export of a simulated ledger (``qldb-settle simulate`` with an export
format and ``export_fraction`` 1.0: every block but the journal's last, which the simulator always
leaves to the stream), one simulation per format with the same seed, so the three exports hold
the same blocks. A data object holds 50 blocks.

- baseline (``decode``): every data object of the export read from its file and decoded by the
  format's own parser and nothing else: ``simpleion.loads(bytes, single_value=False)`` for Ion
  text and Ion binary, ``json.loads`` of each line for JSON Lines (plain floats: the export
  reader's ``parse_float=Decimal`` is its own cost). No manifest, no check, no record, no buffer:
  the least any reader of the export must pay. The file reads are inside the clock on both sides
  (the page cache holds them).
- measured (``ingest``): ``ingest.export.service.ingest_export`` over a ``FolderStore`` of the
  export into a new ``SqliteBuffer``, as ``qldb-settle ingest`` calls it: manifests, each object
  read and its format detected (``ingest.export.objects``), every block checked as a whole and
  linked to the one before (``ingest.export.blocks``), its stream records built, encoded and
  decoded as stream records are (``ingest.decode.decode_user_record``), one ``put`` per object.
  The child raises ``BenchError`` unless the buffer then holds every block of the export.

Blocks per second are the export's blocks over wall-clock seconds; revisions per second the
revisions stored. Each repetition of each is a fresh child process; the parent alternates
baseline and measured children and keeps medians (the ratio is the median of the paired ratios).
Children run in ``.venv-ingest`` (amazon.ion 0.15 with its C extension, the ingest Lambda's
environment) when it exists, else in ``.venv``. This module imports only the standard library,
``bench.common``, ``ingest``, ``journal``, ``buffer`` and ``ledger.classify`` (a test checks it):
no ionhash, pyqldb, boto3 or opensearchpy.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    INGEST_PYTHON,
    MAIN_PYTHON,
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

MODULE = "bench.export"
FORMATS = ("ION_TEXT", "ION_BINARY", "JSON")
FORMAT_LABELS = {"ION_TEXT": "Ion text", "ION_BINARY": "Ion binary", "JSON": "JSON Lines"}
BASELINES = {
    "ION_TEXT": "simpleion.loads",
    "ION_BINARY": "simpleion.loads",
    "JSON": "json.loads per line",
}


def _objects(folder: Path) -> list[Path]:
    """The export's data objects (every file but the manifests), in name order."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".manifest"))
    if not found:
        raise BenchError(f"{folder}: no export data objects")
    return found


def _decode(data: bytes, fmt: str) -> int:
    """Bare decoding of one data object; how many blocks it holds."""
    if fmt == "JSON":
        return sum(1 for line in data.split(b"\n") if line.strip() and json.loads(line) is not None)
    from amazon.ion import simpleion

    return len(simpleion.loads(data, single_value=False))


def child_decode(args: Json) -> Json:
    """Every data object read from its file and decoded by the format's parser."""
    fmt = args["format"]
    paths = _objects(Path(args["export"]))
    _decode(paths[0].read_bytes(), fmt)  # warm-up, as the ingest child's
    reset_peak_rss()
    rss_before = rss_kb()
    blocks = 0
    with timed() as t:
        for path in paths:
            blocks += _decode(path.read_bytes(), fmt)
    return {
        "blocks": blocks,
        "objects": len(paths),
        "seconds": t.wall,
        "cpu_seconds": t.cpu,
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak_rss_kb(),
        "ion": ion_version(),
    }


def child_ingest(args: Json) -> Json:
    """``ingest_export`` of the export into a new ``SqliteBuffer``; every block must be stored."""
    from buffer.sqlite import SqliteBuffer
    from ingest.export.objects import read_object
    from ingest.export.service import LedgerRef, ingest_export
    from ingest.export.store import open_store
    from ledger.classify import classify

    fmt = args["format"]
    expected = int(args["blocks"])
    ledger = LedgerRef.from_arn(args["ledger_arn"])
    store = open_store(args["export"])
    classify("SELECT * FROM Person")  # warm-up: the grammar is loaded once per process
    list(read_object(_objects(Path(args["export"]))[0].read_bytes())[1])  # as the decode child's
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        buffer = SqliteBuffer(Path(tmp) / "buffer.db")
        try:
            reset_peak_rss()
            rss_before = rss_kb()
            with timed() as t:
                report = ingest_export(buffer, store, ledger)
            peak = peak_rss_kb()
            buffered = len(buffer.blocks())
        finally:
            buffer.close()
    put = report.put
    stored = dict(put.stored)
    got = report.formats.get(report.exports[0]) if report.exports else None
    if (
        report.blocks != expected
        or buffered != expected
        or stored.get("blocks", 0) != expected
        or report.problems
        or put.rejected
        or put.conflicts
        or got != fmt
    ):
        raise BenchError(
            f"export ingest ({fmt}, read as {got}) stored {stored.get('blocks', 0)} blocks "
            f"(the buffer holds {buffered}, {report.blocks} read, {put.rejected} rejected, "
            f"{put.conflicts} conflicts, problems {report.problems[:2]}) of the export's "
            f"{expected} blocks"
        )
    return {
        "blocks": report.blocks,
        "objects": report.objects,
        "records": report.records,
        "revisions": stored.get("revisions", 0),
        "stored": stored,
        "seconds": t.wall,
        "cpu_seconds": t.cpu,
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak,
        "ion": ion_version(),
    }


def _work(args: Json) -> Json:
    if args["mode"] == "decode":
        return child_decode(args)
    if args["mode"] == "ingest":
        return child_ingest(args)
    raise BenchError(f"unknown mode {args['mode']!r}")


def environment() -> tuple[str, Path]:
    """Where the children run: ``.venv-ingest`` when it is built, else ``.venv``."""
    if INGEST_PYTHON.exists():
        return "venv-ingest", INGEST_PYTHON
    return "venv", MAIN_PYTHON if MAIN_PYTHON.exists() else Path(sys.executable)


def measure_format(
    folder: Path, *, fmt: str, blocks: int, ledger_arn: str, python: Path | str, reps: int
) -> Json:
    """Alternate ``reps`` baseline and ``reps`` measured children on one format's export."""
    common: dict[str, Any] = {"export": str(folder), "format": fmt}
    decode: list[Json] = []
    ingest: list[Json] = []
    for _ in range(reps):
        decode.append(run_child(MODULE, {"mode": "decode", **common}, python=python))
        ingest.append(
            run_child(
                MODULE,
                {"mode": "ingest", "blocks": blocks, "ledger_arn": ledger_arn, **common},
                python=python,
            )
        )
    if any(d["blocks"] != blocks for d in decode):
        raise BenchError(
            f"bare decoding of the {fmt} export found {decode[0]['blocks']} blocks, not {blocks}"
        )
    decode_rates = [d["blocks"] / d["seconds"] for d in decode]
    ingest_rates = [i["blocks"] / i["seconds"] for i in ingest]
    paired = [i / d for i, d in zip(ingest_rates, decode_rates, strict=True)]
    first = ingest[0]
    return {
        "label": FORMAT_LABELS[fmt],
        "ion": first["ion"],
        "baseline": BASELINES[fmt],
        "blocks": first["blocks"],
        "objects": first["objects"],
        "records": first["records"],
        "revisions": first["revisions"],
        "stored": first["stored"],
        "repetitions": reps,
        "ingest_blocks_per_s": median(ingest_rates),
        "ingest_revisions_per_s": median([i["revisions"] / i["seconds"] for i in ingest]),
        "ingest_cpu_blocks_per_s": median([i["blocks"] / i["cpu_seconds"] for i in ingest]),
        "decode_blocks_per_s": median(decode_rates),
        "decode_cpu_blocks_per_s": median([d["blocks"] / d["cpu_seconds"] for d in decode]),
        "ratio": median(paired),
        "ratio_of_medians": ratio(median(ingest_rates), median(decode_rates)),
        "ingest_peak_rss_kb": median([float(i["peak_rss_kb"]) for i in ingest]),
        "ingest_rss_growth_kb": median(
            [float(i["peak_rss_kb"] - i["rss_before_kb"]) for i in ingest]
        ),
        "decode_peak_rss_kb": median([float(d["peak_rss_kb"]) for d in decode]),
    }


def measure(exports: dict[str, Json], *, reps: int) -> Json:
    """Every format's export (``exports``: format → the simulation's stats, whose ``export``
    says where it is, how many blocks it holds and the ledger's ARN)."""
    name, python = environment()
    formats: dict[str, Json] = {}
    ion: str | None = None
    for fmt in FORMATS:
        stats = exports[fmt]
        info = stats["export"]
        r = measure_format(
            Path(info["path"]),
            fmt=fmt,
            blocks=int(info["blocks"]),
            ledger_arn=str(info["ledger_arn"]),
            python=python,
            reps=reps,
        )
        r["simulation"] = {
            "transactions": stats["transactions"],
            "journal_blocks": stats["blocks"],
            "export_blocks": info["blocks"],
            "export_objects": info["objects"],
        }
        formats[fmt] = r
        ion = ion or str(r["ion"])
    return {
        "environment": name,
        "python": str(python),
        "ion": ion,
        "formats": formats,
        "target": "reported",
    }


if __name__ == "__main__":
    from bench.common import child_main

    child_main(_work)
