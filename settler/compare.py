"""Prove a replica equal to its source, by content (document ids differ by design).

Two independent references:

- the source ledger itself (``DIR/source.db`` of a simulation), or an export file;
- the stream's own REVISION_DETAILS: the latest revision of every document, deletions removed
  (with ``simulate --export``, the journal's first part is an export: its revisions count too).
  This one does not depend on the PartiQL engine that both the source and the replica run, so an
  engine bug cannot hide itself by being made twice.

Documents are compared as multisets of (table, canonical fingerprint of the data) per table:
``missing`` are in the reference but not in the replica, ``unexpected`` the other way round.

A replica copy whose content came from a JSON Lines export (the destination marks it:
``down_converted_copies``) cannot equal its Ion source; it is matched to a reference document
whose down-conversion (``down_converted``: what the export made of it) it equals, and counted
apart (``Comparison.down_converted``), never as equal by content. Only marked copies are
matched that way, so a replica that lost Ion types on its own is still reported different.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from journal.canonical import fingerprint
from journal.errors import InputError
from journal.ion_json import json_text

Document = tuple[str, Any]  # (table, data)


@dataclass(slots=True)
class Comparison:
    reference: str
    documents: int = 0
    missing: list[tuple[str, Any]] = field(default_factory=list)
    unexpected: list[tuple[str, Any]] = field(default_factory=list)
    # Replica copies from a JSON Lines export equal to their reference only after its
    # down-conversion (Ion types lost): neither missing nor unexpected, and not exact either.
    down_converted: int = 0

    @property
    def equal(self) -> bool:
        return not self.missing and not self.unexpected

    def summary(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "equal": self.equal,
            "documents": self.documents,
            "missing": len(self.missing),
            "unexpected": len(self.unexpected),
            "down_converted": self.down_converted,
        }


def down_converted(data: Any) -> Any:
    """What a JSON Lines export makes of an Ion value: its JSON (``journal.ion_json``) read back
    as the export reader reads it (numbers with a fraction or exponent as decimals)."""
    return json.loads(json_text(data), parse_float=Decimal)


def compare(
    reference_name: str,
    reference: Iterable[Document],
    replica: Iterable[Document],
    *,
    down_converted_copies: Iterable[Document] = (),
) -> Comparison:
    """Compare two collections of documents by content, table by table; the replica's
    ``down_converted_copies`` left over are matched after down-conversion (module docstring)."""
    ref: dict[tuple[str, str], Any] = {}
    ref_count: Counter[tuple[str, str]] = Counter()
    for table, data in reference:
        key = (table, fingerprint(data))
        ref_count[key] += 1
        ref.setdefault(key, data)
    rep: dict[tuple[str, str], Any] = {}
    rep_count: Counter[tuple[str, str]] = Counter()
    for table, data in replica:
        key = (table, fingerprint(data))
        rep_count[key] += 1
        rep.setdefault(key, data)
    result = Comparison(reference=reference_name, documents=sum(ref_count.values()))
    for key, n in (ref_count - rep_count).items():
        result.missing.extend([(key[0], ref[key])] * n)
    for key, n in (rep_count - ref_count).items():
        result.unexpected.extend([(key[0], rep[key])] * n)
    marked = Counter((table, fingerprint(data)) for table, data in down_converted_copies)
    if marked and result.missing and result.unexpected:
        _match_down_converted(result, marked)
    return result


def _match_down_converted(result: Comparison, marked: Counter[tuple[str, str]]) -> None:
    wanted: dict[tuple[str, str], list[int]] = {}
    for i, (table, data) in enumerate(result.missing):
        wanted.setdefault((table, fingerprint(down_converted(data))), []).append(i)
    matched: set[int] = set()
    unexpected = []
    for table, data in result.unexpected:
        key = (table, fingerprint(data))
        if marked[key] > 0:
            candidates = wanted.get((table, fingerprint(down_converted(data))))
            if candidates:
                marked[key] -= 1
                matched.add(candidates.pop())
                result.down_converted += 1
                continue
        unexpected.append((table, data))
    result.unexpected = unexpected
    result.missing = [doc for i, doc in enumerate(result.missing) if i not in matched]


def documents_of_ledger(path: Path) -> list[Document]:
    """Current user documents of an embedded ledger file (source or replica)."""
    from ledger import EmbeddedLedger

    if not path.exists():
        raise InputError(f"{path}: no such ledger file")
    led = EmbeddedLedger(path)
    try:
        return [(table, data) for table, _id, data in led.documents()]
    finally:
        led.close()


def documents_of_export(path: Path) -> list[Document]:
    """Documents of an ``export --format ion`` file (one ``{table, id, data}`` per line)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        values = simpleion.loads(path.read_bytes(), single_value=False)
    except Exception as exc:
        raise InputError(f"{path}: not an Ion export ({exc})") from None
    out = []
    for i, v in enumerate(values):
        if not isinstance(v, Mapping) or "table" not in v or "data" not in v:
            raise InputError(f"{path}: value {i} is not {{table, id, data}}")
        out.append((str(v["table"]), v["data"]))
    return out


def documents_of_stream(paths: Iterable[Path], exported: Iterable[Any] = ()) -> list[Document]:
    """The latest revision of every document in a stream's REVISION_DETAILS (and in
    ``exported``, the REVISION_DETAILS a journal export stands for, ``revisions_of_export``),
    deletions removed."""
    from ingest.decode import decode_file
    from journal.records import RevisionDetails

    latest: dict[str, RevisionDetails] = {}

    def add(record: Any) -> None:
        if isinstance(record, RevisionDetails):
            key = f"{record.ledger}/{record.document_id}"
            seen = latest.get(key)
            if seen is None or record.version > seen.version:
                latest[key] = record

    for record in exported:
        add(record)
    for path in paths:
        for item in decode_file(path):
            add(getattr(item, "record", None))
    return [(r.table_name, r.data) for r in latest.values() if r.data is not None]


def revisions_of_export(folder: Path, ledger_arn: str) -> Iterator[Any]:
    """The REVISION_DETAILS records the journal export(s) under ``folder`` (the folder holding
    the manifests) stand for, read and checked as ``qldb-settle ingest`` reads them. A
    ``simulate --export`` folder holds the journal's first part there, the stream the rest."""
    from ingest.decode import decode_user_record
    from ingest.export.blocks import BlockProblem, check_block, from_json
    from ingest.export.manifest import find_exports
    from ingest.export.objects import ObjectDamage, read_object
    from ingest.export.service import LedgerRef
    from ingest.export.store import FolderStore
    from journal.ion_binary import encode
    from journal.records import RevisionDetails

    ledger = LedgerRef.from_arn(ledger_arn)
    store = FolderStore(folder)
    exports, _others = find_exports(store)
    for export in exports:
        for completed in export.completed:
            for key in completed.keys:
                fmt, items = read_object(store.read(export.started.relative(key)))
                arn = ledger.stream_arn(export.export_id, fmt)
                for item in items:
                    if isinstance(item, ObjectDamage):
                        raise InputError(f"{key}: {item.reason}")
                    value = from_json(item.value) if fmt == "JSON" else item.value
                    try:
                        block = check_block(value, arn)
                    except BlockProblem as exc:
                        raise InputError(f"{key} block {item.index}: {exc}") from None
                    for rec in block.records:
                        decoded = decode_user_record(encode(rec), origin=key)
                        record = getattr(decoded, "record", None)
                        if isinstance(record, RevisionDetails):
                            yield record


def export_of_simulation(folder: Path) -> tuple[Path, str] | None:
    """``(the export's manifest folder, the exported ledger's ARN)`` of a ``simulate --export``
    folder, from its ``simulation.json``; None when the simulation wrote no export."""
    import json

    stats_path = folder / "simulation.json"
    if not stats_path.exists():
        return None
    try:
        stats = json.loads(stats_path.read_text())
    except ValueError:
        raise InputError(f"{stats_path}: not JSON") from None
    stats = stats.get("stats") if isinstance(stats, Mapping) else None
    info = stats.get("export") if isinstance(stats, Mapping) else None
    if not isinstance(info, Mapping) or not info.get("ledger_arn"):
        return None
    manifests = folder / "export" / "journalExport"
    if not manifests.is_dir():
        raise InputError(f"{folder}: simulation.json names an export, {manifests} is missing")
    return manifests, str(info["ledger_arn"])


def event_files(directory: Path) -> Iterator[Path]:
    yield from sorted(p for p in directory.rglob("*.json") if p.is_file())
