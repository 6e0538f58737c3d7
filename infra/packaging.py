"""Lambda packaging without Docker: the code asset is the project's own packages, copied.

``build_code`` copies the packages a function imports into ``build/lambda/<fn>/`` (plain
folders, hashed by CDK as assets); the third-party dependencies come from layers built by
``infra.build_layers``. Nothing here runs pip or Docker, so synthesis stays offline and fast.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The project's packages both functions ship: the handlers (entry points) reach the adapters
# through the composition root (compose.roots), which imports the chosen adapter lazily. The
# command line (qldb_settle) is not shipped: nothing below it imports it.
PACKAGES = (
    "journal",
    "runtime",
    "ingest",
    "buffer",
    "settler",
    "destination",
    "ledger",
    "compose",
    "handlers",
)
FUNCTIONS = ("ingest", "settler")
HANDLERS = {"ingest": "handlers.ingest.handler", "settler": "handlers.settler.handler"}

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".mypy_cache", "*.egg-info")


def build_code(out_dir: Path, *, root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """Copy ``PACKAGES`` from ``root`` into ``out_dir/<fn>/`` for each function (replacing what
    was there) and return the folder of each function."""
    folders: dict[str, Path] = {}
    for fn in FUNCTIONS:
        target = out_dir / fn
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for package in PACKAGES:
            source = root / package
            if not (source / "__init__.py").is_file():
                raise FileNotFoundError(f"package {package}/ not found under {root}")
            shutil.copytree(source, target / package, ignore=_IGNORE)
        folders[fn] = target
    logger.info("lambda code copied into %s", out_dir)
    return folders


def layer_folders(setting: str, *, root: Path = PROJECT_ROOT) -> dict[str, Path] | None:
    """The layer folder of each function from the ``lambdaLayers`` context value, or None when
    it is ``none``. A folder that has not been built is returned all the same (the app reports
    it); ``missing_layers`` says which."""
    if setting.strip().lower() in ("none", "false", "off", ""):
        return None
    base = Path(setting)
    if not base.is_absolute():
        base = root / base
    return {fn: base / fn for fn in FUNCTIONS}


def missing_layers(folders: dict[str, Path]) -> list[Path]:
    """Layer folders without a ``python/`` directory inside (not built yet)."""
    return [path for path in folders.values() if not (path / "python").is_dir()]
