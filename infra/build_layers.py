"""Build the Lambda dependency layers with pip for the Lambda platform (no Docker).

``python -m infra.build_layers [--out build/layers] [--only ingest|settler]`` writes
``<out>/<fn>/python/`` for each function, which the app picks up (context ``lambdaLayers``):

- ``ingest``: amazon.ion 0.15 with its C extension (manylinux wheel), lark, opensearch-py,
  aws-lambda-powertools (``infra/layers/ingest.txt``); no ionhash, no pyqldb.
- ``settler``: the QLDB set pinned by the project (pyqldb 3.2.4, amazon.ion 0.9.3, ionhash
  1.2.1, boto3/botocore 1.40.60: the runtime's botocore no longer knows QLDB), lark,
  opensearch-py, powertools, psycopg with its binary wheel (``infra/layers/settler.txt``).

Wheels are taken for ``manylinux2014_x86_64``, CPython 3.11 (``--only-binary=:all:``). Three
pins of the QLDB set exist only as source distributions; they are pure Python, so they are built
here into ``py3-none-any`` wheels first (``pip wheel --no-deps``) and offered to the platform
install through ``--find-links``; a wheel that comes out platform-specific stops the build.
Versions of everything else are constrained by the project's lock (``requirements/dev.txt``;
for the ingest layer without its amazon.ion pin), so the layers hold what the tests ran.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from infra.packaging import FUNCTIONS, PROJECT_ROOT

logger = logging.getLogger(__name__)

PLATFORM = "manylinux2014_x86_64"
PYTHON_VERSION = "3.11"
REQUIREMENTS = {fn: Path(__file__).parent / "layers" / f"{fn}.txt" for fn in FUNCTIONS}
LOCK = PROJECT_ROOT / "requirements" / "dev.txt"
# Pinned packages published only as source distributions (pure Python): built locally first.
SOURCE_ONLY = {"ingest": (), "settler": ("pyqldb==3.2.4", "ionhash==1.2.1", "amazon.ion==0.9.3")}
# What a function must be able to import from its layer (checked after the install).
MUST_HAVE = {
    "ingest": ("amazon/ion", "lark", "opensearchpy", "aws_lambda_powertools"),
    "settler": (
        "pyqldb",
        "ionhash",
        "amazon/ion",
        "botocore",
        "boto3",
        "lark",
        "opensearchpy",
        "aws_lambda_powertools",
        "psycopg",
        "psycopg_binary",
    ),
}
# Lambda's limit is 250 MB unzipped for the function and all its layers together.
MAX_LAYER_BYTES = 200 * 1024 * 1024


class LayerBuildError(RuntimeError):
    """A layer could not be built as the Lambda platform needs it."""


def constraints(fn: str, lock: Path = LOCK) -> list[str]:
    """Lines of the lock that constrain ``fn``'s layer (the ingest layer keeps its own
    amazon.ion 0.15 pin, so the lock's amazon.ion line is left out for it)."""
    lines = []
    for line in lock.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name = text.split("==", 1)[0].strip().lower().replace("_", "-")
        if fn == "ingest" and name == "amazon.ion":
            continue
        lines.append(text)
    return lines


def wheel_command(fn: str, wheelhouse: Path) -> list[str] | None:
    """``pip wheel`` for the source-only pins of ``fn``, or None when it has none."""
    if not SOURCE_ONLY[fn]:
        return None
    return [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--wheel-dir",
        str(wheelhouse),
        *SOURCE_ONLY[fn],
    ]


def install_command(fn: str, target: Path, wheelhouse: Path, constraint_file: Path) -> list[str]:
    """``pip install`` of ``fn``'s requirements for the Lambda platform into ``target``."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--platform",
        PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--find-links",
        str(wheelhouse),
        "--constraint",
        str(constraint_file),
        "--target",
        str(target),
        "--requirement",
        str(REQUIREMENTS[fn]),
    ]


def check_wheels(wheelhouse: Path) -> None:
    """Every locally built wheel must be pure Python (``py3-none-any``)."""
    for wheel in wheelhouse.glob("*.whl"):
        if not wheel.name.endswith("-none-any.whl"):
            raise LayerBuildError(f"{wheel.name} is not pure Python: cannot go to another platform")


def prune(site: Path) -> None:
    """Drop what the runtime never reads: byte code caches and console scripts."""
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(site / "bin", ignore_errors=True)


def check_layer(fn: str, site: Path) -> int:
    """The layer holds what ``fn`` imports and fits Lambda's size limit; returns its size."""
    missing = [name for name in MUST_HAVE[fn] if not (site / name).is_dir()]
    if missing:
        raise LayerBuildError(f"{fn} layer lacks {', '.join(missing)}")
    if fn == "ingest" and not any((site / "amazon").glob("_ioncmodule*.so")):
        raise LayerBuildError("ingest layer: amazon.ion has no C extension (amazon/_ioncmodule)")
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    if size > MAX_LAYER_BYTES:
        raise LayerBuildError(f"{fn} layer is {size // 2**20} MiB unzipped, over the limit")
    return size


def build_layer(fn: str, out: Path) -> Path:
    """Build ``out/<fn>/python`` from scratch and return it."""
    layer = out / fn
    if layer.exists():
        shutil.rmtree(layer)
    site = layer / "python"
    site.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix=f"qldb-settle-{fn}-") as tmp:
        wheelhouse = Path(tmp) / "wheels"
        wheelhouse.mkdir()
        constraint_file = Path(tmp) / "constraints.txt"
        constraint_file.write_text("\n".join(constraints(fn)) + "\n")
        command = wheel_command(fn, wheelhouse)
        if command is not None:
            _run(command)
            check_wheels(wheelhouse)
        _run(install_command(fn, site, wheelhouse, constraint_file))
    prune(site)
    size = check_layer(fn, site)
    logger.info("%s layer: %s (%.1f MiB unzipped)", fn, site, size / 2**20)
    return site


def _run(command: Sequence[str]) -> None:
    logger.info("running %s", " ".join(command))
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise LayerBuildError(f"{command[3]} failed with exit code {done.returncode}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.build_layers",
        description="Build the Lambda dependency layers with pip for manylinux2014_x86_64, "
        "CPython 3.11 (needs the package index, not Docker).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=PROJECT_ROOT / "build" / "layers",
        help="where <fn>/python/ go (the lambdaLayers context; default build/layers)",
    )
    parser.add_argument("--only", choices=FUNCTIONS, help="build one layer only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for fn in [args.only] if args.only else FUNCTIONS:
            build_layer(fn, args.out)
    except LayerBuildError as exc:
        print(f"build_layers: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
