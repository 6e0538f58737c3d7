"""Build the Lambda dependency layers with pip for the Lambda platform (no Docker), from locks.

``python -m infra.build_layers [--out build/layers] [--only ingest|settler]`` writes
``<out>/<fn>/python/`` for each function, which the app picks up (context ``lambdaLayers``),
installing exactly the lock ``infra/layers/<fn>.lock``: every distribution of the layer, its
version and the sha256 of its file, installed ``--no-deps`` (nothing is resolved at build time).

``python -m infra.build_layers --lock [--only FN]`` regenerates the locks: pip resolves the
layer's requirements (``infra/layers/<fn>.in``) for the Lambda platform, constrained by the
project's lock (``requirements/dev.txt``; for the ingest layer without its amazon.ion pin, so the
layers hold what the tests ran), and the lock keeps the whole closure but ``EXCLUDE``: the
distributions no function imports (``tests/infra/test_infra_layer_imports.py`` invokes each
handler from exactly its asset plus its layer, and fails on a package missing or never imported).

- ``ingest`` (also the export-ingest function's): amazon.ion 0.15 with its C extension, lark,
  opensearch-py, aws-lambda-powertools; no ionhash, no pyqldb, no boto3/botocore (the Lambda
  runtime's, for SigV4 and S3 only).
- ``settler``: the QLDB set pinned by the project (pyqldb 3.2.4, amazon.ion 0.9.3, ionhash
  1.2.1, boto3/botocore 1.40.60: the runtime's newer botocore has no qldb-session model), lark,
  opensearch-py, powertools, psycopg with its binary wheel.
- ``runtime``: not a layer: a stand-in of what the Lambda runtime provides (boto3, botocore,
  s3transfer), for the import test of the ingest functions only.

Wheels are taken for ``manylinux2014_x86_64`` (glibc 2.17; the python3.11 runtime is Amazon
Linux 2, glibc 2.26), CPython 3.11, ``--only-binary=:all:``. Three pins of the QLDB set exist
only as source distributions: the lock holds the sdist's hash; they are pure Python, built here
into ``py3-none-any`` wheels (``pip wheel --no-deps --require-hashes``; a wheel that comes out
platform-specific stops the build) and installed from that folder. pip checks the hashes of what
it downloads; the build requirements of those three sdists (setuptools) are not hash-checked.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.packaging import FUNCTIONS, PROJECT_ROOT

logger = logging.getLogger(__name__)

# The Lambda architecture the layers are built for (infra/lambdas.py ARCHITECTURE says why).
MACHINE = "x86_64"
PLATFORM = f"manylinux2014_{MACHINE}"
PYTHON_VERSION = "3.11"
LAYERS = FUNCTIONS
RUNTIME = "runtime"
LAYER_DIR = Path(__file__).parent / "layers"
INPUTS = {name: LAYER_DIR / f"{name}.in" for name in (*LAYERS, RUNTIME)}
LOCKS = {name: LAYER_DIR / f"{name}.lock" for name in (*LAYERS, RUNTIME)}
DEV_LOCK = PROJECT_ROOT / "requirements" / "dev.txt"
# Pinned packages published only as source distributions (pure Python): built locally first.
SOURCE_ONLY = {
    "ingest": (),
    "settler": ("pyqldb==3.2.4", "ionhash==1.2.1", "amazon.ion==0.9.3"),
    RUNTIME: (),
}
# Distributions of a layer's closure left out of its lock: nothing the functions run imports
# them (tests/infra/test_infra_layer_imports.py shows it by invoking the handlers without them).
EXCLUDE: dict[str, dict[str, str]] = {
    "ingest": {
        "jsonconversion": "required by amazon.ion 0.15 for amazon.ion.json_encoder only, which "
        "nothing imports (simpleion does not)",
        "numpy": "required by jsonconversion only, which imports it optionally (59 MiB)",
        "opensearch-protobufs": "opensearch-py 3's gRPC transport, never imported by opensearchpy "
        "(the buffer speaks HTTP)",
        "grpcio": "required by opensearch-protobufs only (18 MiB)",
        "protobuf": "required by opensearch-protobufs only",
    },
    "settler": {
        "s3transfer": "required by boto3 for S3 transfers only, and the settler uses no S3 (were "
        "it imported, the runtime's copy would load, untested with botocore 1.40.60)",
        "opensearch-protobufs": "opensearch-py 3's gRPC transport, never imported by opensearchpy "
        "(the buffer speaks HTTP)",
        "grpcio": "required by opensearch-protobufs only (18 MiB)",
        "protobuf": "required by opensearch-protobufs only",
    },
    RUNTIME: dict.fromkeys(
        ("jmespath", "python-dateutil", "six", "urllib3"),
        "the ingest layer holds it (the runtime's own is shadowed by the layer's)",
    ),
}
# Files of kept distributions that nothing imports: removed after the install.
PRUNE_PATHS = {
    "ingest": ("amazon/ionbenchmark", "amazon/objects-Release"),
    "settler": (),
    RUNTIME: (),
}
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
    RUNTIME: ("boto3", "botocore", "s3transfer"),
}
# What a layer must not carry: the runtime's (the ingest layer) or what was pruned.
MUST_NOT_HAVE = {
    "ingest": ("boto3", "botocore", "numpy", "grpc", "amazon/ionbenchmark", "pyqldb", "ionhash"),
    "settler": ("numpy", "grpc"),
    RUNTIME: (),
}
# Lambda's limit is 250 MB unzipped for the function and all its layers together.
MAX_LAYER_BYTES = 200 * 1024 * 1024
# ELF e_machine of the shared objects a layer may hold.
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}

_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


class LayerBuildError(RuntimeError):
    """A layer could not be built (or locked) as the Lambda platform needs it."""


def normalize(name: str) -> str:
    """A distribution's name as the lock writes it (PEP 503: ``amazon.ion`` is ``amazon-ion``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str
    sdist: bool = False  # the hash is a source distribution's: built into a wheel here

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


def read_lock(name: str, path: Path | None = None) -> dict[str, Pin]:
    """The pins of a lock, by name."""
    pins: dict[str, Pin] = {}
    text = (path or LOCKS[name]).read_text()
    for raw in text.replace("\\\n", " ").splitlines():
        line, _, comment = raw.partition("#")
        if not line.strip():
            continue
        spec = line.split()[0]
        if "==" not in spec:
            raise LayerBuildError(f"{name} lock: {spec!r} is not pinned with ==")
        dist, version = spec.split("==", 1)
        hashes = _HASH.findall(line)
        if len(hashes) != 1:
            raise LayerBuildError(f"{name} lock: {spec} needs exactly one sha256 hash")
        pin = Pin(normalize(dist), version, hashes[0], sdist="sdist" in comment)
        pins[pin.name] = pin
    return pins


def constraints(fn: str, lock: Path = DEV_LOCK) -> list[str]:
    """Lines of the project's lock that constrain ``fn``'s resolution (the ingest layer keeps
    its own amazon.ion 0.15 pin, so the lock's amazon.ion line is left out for it)."""
    lines = []
    for line in lock.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name = normalize(text.split("==", 1)[0].strip())
        if fn == "ingest" and name == "amazon-ion":
            continue
        lines.append(text)
    return lines


def _platform_args() -> list[str]:
    return [
        "--platform",
        PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
    ]


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"]


def resolve_command(fn: str, report: Path, wheelhouse: Path, constraint_file: Path) -> list[str]:
    """``pip install --dry-run --report`` of ``fn``'s requirements for the Lambda platform."""
    return [
        *_pip("install"),
        "--dry-run",
        "--ignore-installed",
        "--report",
        str(report),
        *_platform_args(),
        "--find-links",
        str(wheelhouse),
        "--constraint",
        str(constraint_file),
        "--target",
        str(report.parent / "unused-target"),
        "--requirement",
        str(INPUTS[fn]),
    ]


def sdist_command(requirements: Path, wheelhouse: Path) -> list[str]:
    """``pip wheel`` of hash-pinned source distributions into pure-Python wheels."""
    return [
        *_pip("wheel"),
        "--no-deps",
        "--require-hashes",
        "--no-binary=:all:",
        "--wheel-dir",
        str(wheelhouse),
        "--requirement",
        str(requirements),
    ]


def install_command(target: Path, requirements: Path) -> list[str]:
    """``pip install`` of hash-pinned wheels for the Lambda platform, nothing resolved."""
    return [
        *_pip("install"),
        "--no-compile",
        "--no-deps",
        "--require-hashes",
        *_platform_args(),
        "--target",
        str(target),
        "--requirement",
        str(requirements),
    ]


def local_install_command(target: Path, wheelhouse: Path, pins: Sequence[Pin]) -> list[str]:
    """``pip install`` of the wheels built here from hash-checked sources (no index)."""
    return [
        *_pip("install"),
        "--no-compile",
        "--no-deps",
        "--no-index",
        *_platform_args(),
        "--find-links",
        str(wheelhouse),
        "--target",
        str(target),
        *[f"{p.name}=={p.version}" for p in pins],
    ]


def check_wheels(wheelhouse: Path) -> None:
    """Every locally built wheel must be pure Python (``py3-none-any``)."""
    for wheel in wheelhouse.glob("*.whl"):
        if not wheel.name.endswith("-none-any.whl"):
            raise LayerBuildError(f"{wheel.name} is not pure Python: cannot go to another platform")


def lock_pins(
    fn: str, report: Mapping[str, object], sdist_hashes: Mapping[str, str], wheelhouse: Path
) -> tuple[list[Pin], list[str]]:
    """The pins of ``fn``'s lock from pip's installation report, and the names left out.

    Every distribution of the closure is pinned but ``EXCLUDE[fn]``; each excluded name must be
    in the closure (a stale exclusion is an error), and a wheel built here (in ``wheelhouse``,
    from a source-only pin) takes its source distribution's hash from ``sdist_hashes``."""
    pins: list[Pin] = []
    seen: set[str] = set()
    installs = report.get("install")
    if not isinstance(installs, list):
        raise LayerBuildError("pip's report has no install list")
    for item in installs:
        name = normalize(item["metadata"]["name"])
        version = item["metadata"]["version"]
        seen.add(name)
        if name in EXCLUDE[fn]:
            continue
        url = str(item["download_info"]["url"])
        if url.startswith(wheelhouse.resolve().as_uri()):
            key = f"{name}=={version}"
            if key not in sdist_hashes:
                raise LayerBuildError(f"{fn}: {key} was built here but is no source pin")
            pins.append(Pin(name, version, sdist_hashes[key], sdist=True))
            continue
        if not url.endswith(".whl"):
            raise LayerBuildError(f"{fn}: {name} {version} resolved to a non-wheel {url}")
        sha = item["download_info"]["archive_info"]["hashes"]["sha256"]
        pins.append(Pin(name, version, sha))
    stale = sorted(set(EXCLUDE[fn]) - seen)
    if stale:
        raise LayerBuildError(f"{fn}: EXCLUDE names what the closure lacks: {', '.join(stale)}")
    return sorted(pins, key=lambda p: p.name), sorted(set(EXCLUDE[fn]) & seen)


def render_lock(fn: str, pins: Sequence[Pin], excluded: Mapping[str, str]) -> str:
    lines = [
        f"# The {fn} lock: generated by `python -m infra.build_layers --lock --only {fn}`",
        f"# from infra/layers/{fn}.in for {PLATFORM}, CPython {PYTHON_VERSION}, wheels only,",
        "# constrained by requirements/dev.txt. Installed with --no-deps --require-hashes: edit",
        "# the .in, not this. Left out of the closure (infra/build_layers.py EXCLUDE):",
    ]
    for name in sorted(excluded):
        lines.append(f"#   {name}: {excluded[name]}")
    if not excluded:
        lines.append("#   nothing")
    for pin in pins:
        note = "  # sdist: pure Python, built into a wheel here" if pin.sdist else ""
        lines.append(f"{pin.name}=={pin.version} \\\n    --hash=sha256:{pin.sha256}{note}")
    return "\n".join(lines) + "\n"


def _sdist_of(filename: str) -> tuple[str, str] | None:
    """``(name, version)`` of a source distribution's file name."""
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            name, _, version = filename[: -len(suffix)].rpartition("-")
            return normalize(name), version
    return None


def resolve_lock(fn: str) -> str:
    """Resolve ``fn``'s closure for the Lambda platform: the text of its lock."""
    with tempfile.TemporaryDirectory(prefix=f"qldb-settle-lock-{fn}-") as tmp_name:
        tmp = Path(tmp_name)
        wheelhouse, sdists = tmp / "wheels", tmp / "sdists"
        wheelhouse.mkdir()
        sdist_hashes: dict[str, str] = {}
        if SOURCE_ONLY[fn]:
            _run(
                [
                    *_pip("download"),
                    "--no-deps",
                    "--no-binary=:all:",
                    "--dest",
                    str(sdists),
                    *SOURCE_ONLY[fn],
                ]
            )
            for spec in SOURCE_ONLY[fn]:
                name, version = spec.split("==")
                found = [
                    f for f in sdists.iterdir() if _sdist_of(f.name) == (normalize(name), version)
                ]
                if len(found) != 1:
                    raise LayerBuildError(f"{spec}: expected one sdist, found {found}")
                digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
                sdist_hashes[f"{normalize(name)}=={version}"] = digest
            requirements = tmp / "sdists.txt"
            requirements.write_text(
                "".join(f"{k} --hash=sha256:{v}\n" for k, v in sdist_hashes.items())
            )
            _run(sdist_command(requirements, wheelhouse))
            check_wheels(wheelhouse)
        constraint_file = tmp / "constraints.txt"
        constraint_file.write_text("\n".join(constraints(fn)) + "\n")
        report = tmp / "report.json"
        _run(resolve_command(fn, report, wheelhouse, constraint_file))
        pins, excluded = lock_pins(fn, json.loads(report.read_text()), sdist_hashes, wheelhouse)
    return render_lock(fn, pins, {n: EXCLUDE[fn][n] for n in excluded})


def lock(fn: str) -> Path:
    """Write ``infra/layers/<fn>.lock`` (``resolve_lock``)."""
    LOCKS[fn].write_text(resolve_lock(fn))
    logger.info("%s: %d pins", LOCKS[fn], len(read_lock(fn)))
    return LOCKS[fn]


def prune(fn: str, site: Path) -> None:
    """Drop what the runtime never reads: byte code caches, console scripts, ``PRUNE_PATHS``."""
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(site / "bin", ignore_errors=True)
    for rel in PRUNE_PATHS[fn]:
        path = site / rel
        if not path.exists():
            raise LayerBuildError(f"{fn}: PRUNE_PATHS names {rel}, which the install lacks")
        shutil.rmtree(path)


def elf_machine(path: Path) -> int | None:
    """The ELF ``e_machine`` of a shared object (None when it is not ELF)."""
    with path.open("rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def check_layer(fn: str, site: Path) -> int:
    """The layer holds what ``fn`` imports, none of what it must not, only shared objects of
    ``MACHINE``, and fits Lambda's size limit; returns its size."""
    missing = [name for name in MUST_HAVE[fn] if not (site / name).is_dir()]
    if missing:
        raise LayerBuildError(f"{fn} layer lacks {', '.join(missing)}")
    extra = [name for name in MUST_NOT_HAVE[fn] if (site / name).exists()]
    if extra:
        raise LayerBuildError(f"{fn} layer carries {', '.join(extra)}, which it must not")
    if fn == "ingest" and not any((site / "amazon").glob("_ioncmodule*.so")):
        raise LayerBuildError("ingest layer: amazon.ion has no C extension (amazon/_ioncmodule)")
    for so in site.rglob("*.so*"):
        machine = elf_machine(so)
        if so.is_file() and machine is not None and machine != ELF_MACHINE[MACHINE]:
            raise LayerBuildError(f"{so.relative_to(site)} is not an {MACHINE} shared object")
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    if size > MAX_LAYER_BYTES:
        raise LayerBuildError(f"{fn} layer is {size // 2**20} MiB unzipped, over the limit")
    return size


def build_layer(fn: str, out: Path) -> Path:
    """Build ``out/<fn>/python`` from scratch, exactly ``fn``'s lock, and return it."""
    pins = list(read_lock(fn).values())
    layer = out / fn
    if layer.exists():
        shutil.rmtree(layer)
    site = layer / "python"
    site.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix=f"qldb-settle-{fn}-") as tmp_name:
        tmp = Path(tmp_name)
        wheels = [p for p in pins if not p.sdist]
        sources = [p for p in pins if p.sdist]
        requirements = tmp / "wheels.txt"
        requirements.write_text("".join(p.requirement + "\n" for p in wheels))
        _run(install_command(site, requirements))
        if sources:
            wheelhouse = tmp / "wheels"
            wheelhouse.mkdir()
            source_requirements = tmp / "sdists.txt"
            source_requirements.write_text("".join(p.requirement + "\n" for p in sources))
            _run(sdist_command(source_requirements, wheelhouse))
            check_wheels(wheelhouse)
            _run(local_install_command(site, wheelhouse, sources))
    installed = set(installed_distributions(site))
    if installed != {p.name for p in pins}:
        raise LayerBuildError(f"{fn}: installed {sorted(installed)}, locked {len(pins)} pins")
    prune(fn, site)
    size = check_layer(fn, site)
    logger.info("%s layer: %s (%.1f MiB unzipped)", fn, site, size / 2**20)
    return site


def installed_distributions(site: Path) -> dict[str, Path]:
    """The distributions installed in ``site`` (lock names) and their ``.dist-info`` folders."""
    return {
        normalize(info.name.removesuffix(".dist-info").rsplit("-", 1)[0]): info
        for info in site.glob("*.dist-info")
    }


def cache_key(names: Sequence[str] = (*LAYERS, RUNTIME)) -> str:
    """What a cached build depends on: the locks, this builder and the platform."""
    digest = hashlib.sha256(f"{PLATFORM} {PYTHON_VERSION}".encode())
    digest.update(Path(__file__).read_bytes())
    for name in names:
        digest.update(LOCKS[name].read_bytes())
    return digest.hexdigest()[:16]


def build_cached(base: Path) -> dict[str, Path]:
    """The layers and the runtime stand-in built under ``base/<key>/`` (reused when the key's
    build is complete; one process builds at a time, the others wait for it); returns each
    one's folder (holding ``python/``)."""
    names = (*LAYERS, RUNTIME)
    key = cache_key(names)
    out = base / key
    done = out / ".complete"
    base.mkdir(parents=True, exist_ok=True)
    with (base / ".lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if not done.is_file():
            for old in base.iterdir():  # builds of other keys are stale: one cached at a time
                if old.is_dir() and old.name != key:
                    shutil.rmtree(old)
            for name in names:
                build_layer(name, out)
            done.write_text("\n".join(names) + "\n")
    return {name: out / name for name in names}


def _run(command: Sequence[str]) -> None:
    logger.info("running %s", " ".join(command))
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise LayerBuildError(f"pip {command[3]} failed with exit code {done.returncode}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.build_layers",
        description=f"Build the Lambda dependency layers from their locks with pip for {PLATFORM}, "
        f"CPython {PYTHON_VERSION} (needs the package index, not Docker); --lock regenerates the "
        "locks.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=PROJECT_ROOT / "build" / "layers",
        help="where <fn>/python/ go (the lambdaLayers context; default build/layers)",
    )
    parser.add_argument("--only", choices=(*LAYERS, RUNTIME), help="one layer only")
    parser.add_argument(
        "--lock", action="store_true", help="resolve and write infra/layers/<fn>.lock instead"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = [args.only] if args.only else list(LAYERS if not args.lock else (*LAYERS, RUNTIME))
    try:
        for fn in names:
            if args.lock:
                lock(fn)
            else:
                build_layer(fn, args.out)
    except LayerBuildError as exc:
        print(f"build_layers: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
