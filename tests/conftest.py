"""Fixtures every test area may use (add yours below; keep this file importable with only the
ingest environment's packages: stdlib, amazon.ion, pytest, hypothesis and the project).

- ``fixtures_dir``: the real stream data of ``../shared/fixtures/real`` (skips when absent).
- ``synth``: a ``Synth`` (``tests/synth.py``), which builds synthetic stream records with the
  real constructors. Import its names with ``from synth import ...``, never ``from conftest``:
  every test folder has a ``conftest.py``, and that import picks whichever was loaded first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from synth import Synth

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_ROOT / ".." / "shared" / "fixtures" / "real"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The real stream fixtures (read in place, never copied into the repo)."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(
            f"the shared real fixtures are absent ({FIXTURES_DIR.resolve()}); they live in "
            "../shared/fixtures/real beside the repository"
        )
    return FIXTURES_DIR.resolve()


@pytest.fixture(scope="session")
def synth() -> Synth:
    return Synth()
