"""Which ledgers ``serve-qldb`` serves, by name: one file (``SingleLedger``) or a folder where
ledger N is the file ``N.db`` (``LedgerDirectory``).

Both answer a session's ``LedgerName`` (``catalog(name)``, the ledger to run statements on) and
the control plane's ledger calls: ``names``, ``info`` (creation time, deletion protection,
permissions mode), ``create``, ``update`` and ``delete`` (a folder's ledgers only: a single file
is not created or deleted through the API). A folder keeps each ledger's settings beside it in
``N.json``. Errors: ``UnknownLedger``, ``LedgerExists``, ``LedgerRefused`` (the message says
why); the servers turn them into QLDB's.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class UnknownLedger(LookupError):
    """No ledger of that name."""


class LedgerExists(Exception):
    """A ledger of that name exists already."""


class LedgerRefused(Exception):
    """The call cannot be done on this ledger (deletion protection, a single served file)."""


@dataclass(frozen=True, slots=True)
class LedgerInfo:
    name: str
    created: datetime
    deletion_protection: bool = True
    permissions_mode: str = "ALLOW_ALL"


def _created(path: str) -> datetime:
    return datetime.fromtimestamp(os.stat(path).st_mtime if os.path.exists(path) else 0, UTC)


class SingleLedger:
    """One ledger, answering to ``name`` (None: to any ledger name; the file is the ledger)."""

    def __init__(self, ledger: Any, name: str | None = None) -> None:
        self.ledger = ledger
        self.name = name
        self._created = _created(str(getattr(ledger, "path", "")))

    def __call__(self, name: str) -> Any:
        if self.name is not None and name != self.name:
            raise UnknownLedger(f"Ledger {name} does not exist")
        return self.ledger

    def names(self) -> list[str]:
        return [self.name or str(getattr(self.ledger, "ledger_name", "embedded"))]

    def info(self, name: str) -> LedgerInfo:
        self(name)
        return LedgerInfo(name=name, created=self._created)

    def create(self, name: str, *, deletion_protection: bool, permissions_mode: str) -> LedgerInfo:
        if self.name is None or name == self.name:
            raise LedgerExists(f"Ledger {name} already exists")
        raise LedgerRefused(
            "serve-qldb serves one ledger file; serve a folder (--ledger embedded:DIR/) to create "
            "ledgers"
        )

    def update(self, name: str, *, deletion_protection: bool | None) -> LedgerInfo:
        raise LedgerRefused("serve-qldb serves one ledger file: its settings are fixed")

    def delete(self, name: str) -> None:
        self(name)
        raise LedgerRefused("serve-qldb serves this one ledger file: delete the file instead")

    def close(self) -> None:
        pass


class LedgerDirectory:
    """A folder of ledgers: ``LedgerName`` N is the file ``N.db`` in it, created on first use by
    a session (or by ``CreateLedger``)."""

    def __init__(self, path: str, open_ledger: Callable[[str, str], Any]) -> None:
        self.path = path
        self._open = open_ledger
        self._ledgers: dict[str, Any] = {}
        self._lock = threading.RLock()

    def _file(self, name: str, ext: str = ".db") -> str:
        return os.path.join(self.path, f"{name}{ext}")

    def __call__(self, name: str) -> Any:
        with self._lock:
            ledger = self._ledgers.get(name)
            if ledger is None:
                ledger = self._open(self._file(name), name)
                self._ledgers[name] = ledger
            return ledger

    def names(self) -> list[str]:
        return sorted(f[:-3] for f in os.listdir(self.path) if f.endswith(".db"))

    def info(self, name: str) -> LedgerInfo:
        if not os.path.exists(self._file(name)):
            raise UnknownLedger(f"Ledger {name} does not exist")
        try:
            with open(self._file(name, ".json"), encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            return LedgerInfo(name=name, created=_created(self._file(name)))
        return LedgerInfo(
            name=name,
            created=datetime.fromisoformat(meta["created"]),
            deletion_protection=bool(meta["deletion_protection"]),
            permissions_mode=str(meta["permissions_mode"]),
        )

    def _save(self, info: LedgerInfo) -> None:
        meta = {
            "created": info.created.isoformat(),
            "deletion_protection": info.deletion_protection,
            "permissions_mode": info.permissions_mode,
        }
        with open(self._file(info.name, ".json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)

    def create(self, name: str, *, deletion_protection: bool, permissions_mode: str) -> LedgerInfo:
        with self._lock:
            if os.path.exists(self._file(name)):
                raise LedgerExists(f"Ledger {name} already exists")
            self(name)
            info = LedgerInfo(name, datetime.now(UTC), deletion_protection, permissions_mode)
            self._save(info)
            return info

    def update(self, name: str, *, deletion_protection: bool | None) -> LedgerInfo:
        with self._lock:
            info = self.info(name)
            if deletion_protection is not None:
                info = LedgerInfo(name, info.created, deletion_protection, info.permissions_mode)
                self._save(info)
            return info

    def delete(self, name: str) -> None:
        with self._lock:
            if self.info(name).deletion_protection:
                raise LedgerRefused(
                    f"Ledger {name} has deletion protection enabled: disable it with UpdateLedger "
                    "first"
                )
            ledger = self._ledgers.pop(name, None)
            if ledger is not None:
                ledger.close()
            for ext in (".db", ".db-wal", ".db-shm", ".json"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self._file(name, ext))

    def close(self) -> None:
        with self._lock:
            ledgers, self._ledgers = list(self._ledgers.values()), {}
        for ledger in ledgers:
            ledger.close()
