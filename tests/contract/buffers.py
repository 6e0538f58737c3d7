"""The settling-buffer adapters the contract suite runs against.

Each entry is ``(name, factory)``; ``factory(directory)`` opens a buffer kept in (or keyed by)
that directory. Called twice with the same directory it must open the same buffer (a second
instance that sees what the first wrote: the persistence and lease tests rely on it); different
directories are independent buffers. Append your adapter's entry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from buffer.port import SettlingBuffer


def _sqlite(directory: Path) -> SettlingBuffer:
    from buffer.sqlite import SqliteBuffer

    directory.mkdir(parents=True, exist_ok=True)
    return SqliteBuffer(directory / "buffer.db")


def _opensearch(directory: Path) -> SettlingBuffer:
    # osmem-server, started once per test process on a free loopback port (real HTTP); the
    # directory names an index prefix on it.
    from buffer.opensearch_local import local_buffer

    return local_buffer(directory)


def _memory(directory: Path) -> SettlingBuffer:
    # The in-memory store of buffer.memory, shared by the directory's name in this process.
    from buffer.memory import memory_buffer

    return memory_buffer(str(directory))


BUFFERS: list[tuple[str, Callable[[Path], SettlingBuffer]]] = [
    ("sqlite", _sqlite),
    ("opensearch", _opensearch),
    ("memory", _memory),
]

# Adapters whose contract run also belongs in the small ingest environment (amazon.ion 0.15).
INGEST_ENV = {"sqlite", "memory"}
