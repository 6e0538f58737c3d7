"""What a Lambda container keeps between invocations: each part of its composition (a buffer, a
destination, an AWS client) built on first use and kept for the container's life, so warm
invocations share connections; tests put their own part in with ``use``.

One mechanism for the three handlers (``handlers.ingest``, ``handlers.settler``,
``handlers.export``), instead of a module global and a getter in each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ContainerPart(Generic[T]):
    """A part built by ``build`` on the first ``get`` and kept until ``use`` replaces it (tests)
    or forgets it (``use(None)``: built again on the next ``get``)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._part: T | None = None

    def get(self) -> T:
        if self._part is None:
            self._part = self._build()
        return self._part

    def use(self, part: T | None) -> None:
        self._part = part
