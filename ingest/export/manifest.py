"""The two manifests of a journal export (QLDB Developer Guide, "Journal export output").

- ``PREFIX/EXPORTID.started.manifest``, written when the export is requested: ``ledgerName``,
  ``exportId``, ``inclusiveStartTime``, ``exclusiveEndTime``, ``bucket``, ``prefix``,
  ``objectEncryptionType`` and, when the request named one, ``outputFormat`` (``ION_TEXT``, the
  default, ``ION_BINARY`` or ``JSON``).
- ``PREFIX/EXPORTID.STRANDID.completed.manifest``, written per strand when the export is done:
  ``{keys: [...]}``, the ordered list of the data object keys written (full bucket keys, named
  ``PREFIX/yyyy/mm/dd/hh/STRANDID.FIRSTSEQ-LASTSEQ.EXT``).

Manifests are written in the export's output format: Ion text or binary, or JSON (whose
timestamps are strings). An export without a completed manifest is unfinished.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ingest.export.store import ExportStore, MissingObject
from journal.errors import InputError
from journal.ion_binary import BVM

STARTED = re.compile(r"^(?P<export>[A-Za-z0-9]+)\.started\.manifest$")
COMPLETED = re.compile(r"^(?P<export>[A-Za-z0-9]+)\.(?P<strand>[A-Za-z0-9]+)\.completed\.manifest$")
OBJECT_RANGE = re.compile(
    r"(?:^|/)(?P<strand>[A-Za-z0-9]+)\.(?P<first>\d+)-(?P<last>\d+)\.[a-z0-9]+$"
)


class ManifestError(InputError):
    """A manifest that cannot be read as one (not Ion or JSON, or a field missing)."""


def _load(data: bytes, key: str) -> Any:
    from amazon.ion import simpleion

    try:
        if data[:4] == BVM:
            return simpleion.loads(data)
        text = data.decode("utf-8-sig")
        try:
            return json.loads(text)
        except ValueError:
            return simpleion.loads(text)
    except Exception as exc:
        raise ManifestError(f"{key}: not an export manifest ({type(exc).__name__})") from None


def _time(value: Any, key: str, name: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ManifestError(f"{key}: {name} is not a time ({value[:40]!r})") from None
    if not isinstance(value, datetime):
        raise ManifestError(f"{key}: {name} is missing or not a time")
    return value.astimezone(UTC)


def _str(struct: Any, name: str, key: str, *, required: bool = True) -> str | None:
    value = struct.get(name) if isinstance(struct, Mapping) else None
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{key}: {name} is missing or not a string")
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartedManifest:
    key: str
    export_id: str
    ledger_name: str
    start: datetime
    end: datetime
    bucket: str
    prefix: str
    encryption: str | None
    output_format: str

    @classmethod
    def read(cls, store: ExportStore, key: str) -> StartedManifest:
        v = _load(store.read(key), key)
        if not isinstance(v, Mapping):
            raise ManifestError(f"{key}: not a struct")
        fmt = _str(v, "outputFormat", key, required=False) or "ION_TEXT"
        if fmt not in ("ION_TEXT", "ION_BINARY", "JSON"):
            raise ManifestError(
                f"{key}: outputFormat {fmt[:40]!r} is not ION_TEXT, ION_BINARY or JSON"
            )
        export_id = _str(v, "exportId", key)
        assert export_id is not None
        m = STARTED.match(key.rsplit("/", 1)[-1])
        if m is None or m["export"] != export_id:
            raise ManifestError(f"{key}: exportId {export_id} is not the one its name gives")
        return cls(
            key=key,
            export_id=export_id,
            ledger_name=str(_str(v, "ledgerName", key)),
            start=_time(v.get("inclusiveStartTime"), key, "inclusiveStartTime"),
            end=_time(v.get("exclusiveEndTime"), key, "exclusiveEndTime"),
            bucket=str(_str(v, "bucket", key)),
            prefix=_str(v, "prefix", key, required=False) or "",
            encryption=_str(v, "objectEncryptionType", key, required=False),
            output_format=fmt,
        )

    def relative(self, object_key: str) -> str:
        """A data object's bucket key as a key of the store (the prefix stripped)."""
        prefix = self.prefix.strip("/")
        if prefix and object_key.startswith(prefix + "/"):
            return object_key[len(prefix) + 1 :]
        return object_key


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletedManifest:
    key: str
    export_id: str
    strand_id: str
    keys: tuple[str, ...]

    @classmethod
    def read(cls, store: ExportStore, key: str) -> CompletedManifest:
        m = COMPLETED.match(key.rsplit("/", 1)[-1])
        if m is None:
            raise ManifestError(f"{key}: not a completed manifest name")
        v = _load(store.read(key), key)
        keys = v.get("keys") if isinstance(v, Mapping) else None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ManifestError(f"{key}: keys is missing or not a list of strings")
        return cls(
            key=key, export_id=m["export"], strand_id=m["strand"], keys=tuple(map(str, keys))
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Export:
    """One export: its request and the completed manifest of each strand."""

    started: StartedManifest
    completed: tuple[CompletedManifest, ...]

    @property
    def export_id(self) -> str:
        return self.started.export_id


def find_exports(store: ExportStore) -> tuple[list[Export], list[str]]:
    """Every export under the store's prefix, ordered by start time (then export id), and every
    other key (data objects). Raises ``InputError`` when there is no started manifest, when a
    manifest cannot be read, and when an export has no completed manifest (unfinished: it is
    not ingested in part)."""
    started: dict[str, str] = {}
    completed: dict[str, list[str]] = {}
    others: list[str] = []
    for key in store.list_keys():
        name = key.rsplit("/", 1)[-1]
        if (m := STARTED.match(name)) is not None and "/" not in key:
            started[m["export"]] = key
        elif (c := COMPLETED.match(name)) is not None and "/" not in key:
            completed.setdefault(c["export"], []).append(key)
        elif not name.endswith(".manifest"):
            others.append(key)
    if not started:
        raise InputError(f"{store.location}: no journal export here (no EXPORTID.started.manifest)")
    exports = []
    for export_id, key in started.items():
        try:
            manifest = StartedManifest.read(store, key)
        except MissingObject:
            raise InputError(f"{store.location}/{key}: cannot be read") from None
        done = completed.get(export_id, [])
        if not done:
            raise InputError(
                f"{store.location}: export {export_id} (ledger {manifest.ledger_name}) is "
                f"unfinished: {export_id}.STRANDID.completed.manifest is missing; nothing was "
                "ingested, run it again once the export has completed"
            )
        exports.append(
            Export(
                started=manifest,
                completed=tuple(CompletedManifest.read(store, k) for k in sorted(done)),
            )
        )
    orphans = set(completed) - set(started)
    if orphans:
        raise InputError(
            f"{store.location}: completed manifest without its started manifest: "
            + ", ".join(sorted(orphans))
        )
    exports.sort(key=lambda e: (e.started.start, e.started.end, e.export_id))
    return exports, others
