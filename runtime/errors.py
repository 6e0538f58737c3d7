"""Errors about the run, not the journal: a client could not be reached in time
(``TransientError``, exit 3), another settler holds the lease (``LeaseHeld``), the destination's
checkpoint moved under a cycle (``CheckpointMismatch``), a setting or URL is malformed
(``ConfigError``, exit 2). They share ``journal.errors.SettleError`` as their base, so the CLI
maps every error it raises on purpose in one place."""

from __future__ import annotations

from datetime import datetime

from journal.errors import SettleError


class TransientError(SettleError):
    """The buffer or destination could not be reached after retries; nothing was lost, run it
    again: exit 3."""


class LeaseHeld(SettleError):
    """Another settler holds the lease; this one does nothing this cycle (``holder`` and
    ``until`` say who and how long, when the buffer could tell)."""

    def __init__(
        self, message: str, *, holder: str | None = None, until: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.holder = holder
        self.until = until


class CheckpointMismatch(SettleError):
    """The destination's checkpoint is no longer the one this cycle started from (compare-and-set
    failed): another writer moved it, or a retried commit already landed. Nothing was applied."""


class ConfigError(SettleError):
    """A setting or URL is malformed: exit 2."""
