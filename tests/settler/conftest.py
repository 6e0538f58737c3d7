"""Fixtures of the settler's tests: a real SQLite buffer file and destinations in a tmp dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from buffer.port import SettlingBuffer


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[SettlingBuffer]:
    from buffer.sqlite import SqliteBuffer

    b = SqliteBuffer(tmp_path / "buffer.db")
    yield b
    b.close()
