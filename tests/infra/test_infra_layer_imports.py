"""Each function runs from exactly its code asset plus its layer: real invocations in an isolated
interpreter (``python -I -S -B``, no site-packages), against local servers.

The layers are built from their locks (``infra/layers/*.lock``, ``python -m infra.build_layers``)
into ``build/layer-tests/<key>/`` (key: the locks and the builder; a second run reuses them) and
the handlers are invoked by ``tests/infra/layer_probe.py``: the ingest handler on simulated Lambda
Kinesis events and the export handler on a simulated journal export in (moto's) S3, both into
osmem-server, then the settler handler replaying that buffer through pyqldb into ``serve-qldb``,
its window from (moto's) SSM and the ingest's health from SQS and CloudWatch, and another buffer
into PostgreSQL (a throwaway local server, its password from Secrets Manager; skipped when the
machine has no PostgreSQL server, as the other PostgreSQL tests are). A package left out
of a lock, or pruned too far, fails here; so does a package the layer carries that none of its
functions' invocations imports (``NOT_IMPORTED`` would name one kept anyway, and why: none is).

The ingest functions take boto3 and botocore from the Lambda runtime: the probe puts a stand-in of
those two (and s3transfer; ``infra/layers/runtime.lock``) after the layer, as Lambda orders its
path (``/var/task``, ``/opt/python``, then the runtime's own packages).

Each lock is also resolved again and must equal the checked-in one. Needs the package index:
about 80 s the first time, about 45 s with the build cached (``build/layer-tests/``), most of it
resolving the settler's lock (its three source distributions are built into wheels).
``QLDB_SETTLE_LAYER_TESTS=0`` skips it, by choice only (the default is to run);
``QLDB_SETTLE_LAYER_DIR=DIR`` tests the layers already built in DIR instead (``DIR/ingest``,
``DIR/settler``, ``DIR/runtime``), e.g. the ones about to be deployed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from infra import build_layers as bl
from infra.packaging import PROJECT_ROOT, build_code

pytestmark = pytest.mark.skipif(
    os.environ.get("QLDB_SETTLE_LAYER_TESTS", "1") == "0",
    reason="QLDB_SETTLE_LAYER_TESTS=0: the layer import tests were skipped by choice",
)

PROBE = Path(__file__).with_name("layer_probe.py")
REGION = "us-east-1"
# Any credentials: moto, osmem-server and serve-qldb check no signature. Never a real account's.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLELOCAL",
    "AWS_SECRET_ACCESS_KEY": "local-secret-not-checked",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Distributions a layer carries although no invocation here imports them, and why.
NOT_IMPORTED: dict[str, dict[str, str]] = {"ingest": {}, "settler": {}}


@dataclass(frozen=True)
class Built:
    layers: dict[str, Path]  # ingest, settler, runtime -> the folder holding python/
    code: dict[str, Path]  # ingest, settler -> the code asset


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    given = os.environ.get("QLDB_SETTLE_LAYER_DIR")
    if given:
        base = Path(given).resolve()
        layers = {name: base / name for name in (*bl.LAYERS, bl.RUNTIME)}
    else:
        layers = bl.build_cached(PROJECT_ROOT / "build" / "layer-tests")
    for name, folder in layers.items():
        assert (folder / "python").is_dir(), f"{name} layer not built at {folder}"
    code = build_code(tmp_path_factory.mktemp("lambda-code"))
    return Built(layers=layers, code=code)


@dataclass
class Servers:
    opensearch: str
    qldb: str
    aws: str


class AwsBridge(ThreadingHTTPServer):
    """moto over loopback HTTP without moto's server (it needs Flask, which the project does not
    install): each request is handed to moto's in-process backends (``mock_aws`` must be active)
    at the AWS URL of the service its SigV4 credential scope names."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _BridgeHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _BridgeHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        from botocore.awsrequest import AWSPreparedRequest
        from moto.core.botocore_stubber import BotocoreStubber

        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/", self.headers["Authorization"])
        assert scope is not None, f"unsigned request {self.command} {self.path}"
        region, service = scope.groups()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = AWSPreparedRequest(
            method=self.command,
            url=f"https://{service}.{region}.amazonaws.com{self.path}",
            headers=dict(self.headers.items()),
            body=body,
            stream_output=False,
        )
        answer = BotocoreStubber().process_request(request)
        assert answer is not None, f"moto has no {service} at {self.path}"
        status, headers, content = answer
        data = content.encode() if isinstance(content, str) else bytes(content or b"")
        self.send_response(int(status))
        for key, value in (headers or {}).items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    from moto import mock_aws

    from buffer.opensearch_local import shared_server

    osmem = shared_server()
    ledgers = tmp_path_factory.mktemp("ledgers")
    qldb = subprocess.Popen(
        [sys.executable, "-m", "qldb_settle.cli", "serve-qldb", "--ledger", f"embedded:{ledgers}/"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert qldb.stdout is not None
    qldb_url = qldb.stdout.readline().strip()
    try:
        assert qldb_url.startswith("http://"), f"serve-qldb did not start: {qldb_url!r}"
        with mock_aws():
            bridge = AwsBridge()
            threading.Thread(target=bridge.serve_forever, daemon=True).start()
            try:
                yield Servers(opensearch=osmem.url, qldb=qldb_url, aws=bridge.url)
            finally:
                bridge.shutdown()
                bridge.server_close()
    finally:
        qldb.terminate()
        qldb.wait(timeout=20)
        qldb.stdout.close()


@dataclass(frozen=True)
class Workload:
    events: list[Path]
    export_dir: Path
    ledger_arn: str
    blocks: int


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    """A small simulated ledger: its first blocks as a journal export, the rest as the stream."""
    out = tmp_path_factory.mktemp("sim") / "run"
    done = subprocess.run(
        [sys.executable, "-m", "qldb_settle.cli", "simulate", "--out", str(out), "--json",
         "--transactions", "12", "--shards", "1", "--seed", "3",
         "--export", "ion-binary", "--export-fraction", "0.5"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    summary = json.loads(done.stdout)
    return Workload(
        events=sorted((out / "events").glob("*.json")),
        export_dir=out / "export" / "journalExport",
        ledger_arn=summary["export"]["ledger_arn"],
        blocks=int(summary["blocks"]) - int(summary["read_only_blocks"]),
    )


def stdlib_dirs() -> list[Path]:
    paths = sysconfig.get_paths()
    return [Path(paths["stdlib"]).resolve(), Path(paths["platstdlib"]).resolve()]


def probe(
    tmp: Path, paths: list[Path], steps: list[str], env: dict[str, str], **spec: Any
) -> dict[str, Any]:
    """Run the probe isolated and return its output; every module must come from ``paths`` or
    the standard library."""
    spec_file, out = tmp / f"spec-{uuid.uuid4().hex[:8]}.json", tmp / "out.json"
    spec_file.write_text(json.dumps({"paths": [str(p) for p in paths], "steps": steps, **spec}))
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", str(PROBE), str(spec_file), str(out)],
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), **env},
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"probe {steps} failed:\n{done.stderr[-6000:]}"
    result: dict[str, Any] = json.loads(out.read_text())
    roots = [p.resolve() for p in paths] + stdlib_dirs()
    strays = {
        name: file
        for name, file in result["modules"].items()
        if not any(Path(file).is_relative_to(root) for root in roots)
    }
    assert not strays, f"modules from outside the asset and its layers: {strays}"
    return result


def distributions(site: Path) -> dict[str, set[Path]]:
    """Each distribution of a layer (its name as in the lock) and the module files it installed."""
    dists: dict[str, set[Path]] = {}
    for name, info in bl.installed_distributions(site).items():
        files = set()
        for line in (info / "RECORD").read_text().splitlines():
            rel = line.rsplit(",", 2)[0]
            if rel.endswith((".py", ".so")) and (site / rel).is_file():
                files.add((site / rel).resolve())
        dists[name] = files
    return dists


def imported_from(site: Path, modules: dict[str, str]) -> set[str]:
    loaded = {Path(f) for f in modules.values()}
    return {name for name, files in distributions(site).items() if files & loaded}


def aws_env(servers: Servers, prefix: str) -> dict[str, str]:
    return {
        **FAKE_AWS,
        "AWS_ENDPOINT_URL": servers.aws,  # S3, SSM, SQS, CloudWatch: moto, through the bridge
        "QLDB_SETTLE_BUFFER": f"opensearch:{servers.opensearch}",
        "QLDB_SETTLE_INDEX_PREFIX": prefix,
        "POWERTOOLS_METRICS_NAMESPACE": "QldbSettle",
    }


def fill_buffer(
    tmp: Path, built: Built, servers: Servers, workload: Workload, prefix: str
) -> dict[str, dict[str, Any]]:
    """The ingest handler on the stream's events, then the export handler on the export (in
    moto's S3), into the buffer of ``prefix``; their probes' outputs."""
    import boto3

    base = aws_env(servers, prefix)
    ingest_paths = [
        built.code["ingest"],
        built.layers["ingest"] / "python",
        built.layers[bl.RUNTIME] / "python",
    ]
    runs: dict[str, dict[str, Any]] = {}
    runs["ingest"] = probe(
        tmp,
        ingest_paths,
        ["ingest", "sigv4"],
        {**base, "POWERTOOLS_SERVICE_NAME": "qldb-settle-ingest"},
        events=[str(p) for p in workload.events],
        opensearch=servers.opensearch,
        index_prefix=prefix,
    )
    bucket = f"export-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", region_name=REGION)  # moto's, in this process (mock_aws is active)
    s3.create_bucket(Bucket=bucket)
    for path in workload.export_dir.rglob("*"):
        if path.is_file():
            key = "journalExport/" + path.relative_to(workload.export_dir).as_posix()
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
    runs["export"] = probe(
        tmp,
        ingest_paths,
        ["export"],
        {
            **base,
            "POWERTOOLS_SERVICE_NAME": "qldb-settle-export",
            "QLDB_SETTLE_LEDGER_ARN": workload.ledger_arn,
        },
        export=f"s3://{bucket}/journalExport",
    )
    return runs


def settler_env(servers: Servers, prefix: str) -> dict[str, str]:
    """The settler's settings as the stack sets them: its window from SSM, the ingest's health
    from its failure queue (SQS) and its IteratorAge (CloudWatch)."""
    import boto3

    window = f"/qldb-settle/{prefix}/window"
    boto3.client("ssm", region_name=REGION).put_parameter(Name=window, Value="0", Type="String")
    queue = boto3.client("sqs", region_name=REGION).create_queue(QueueName=prefix)["QueueUrl"]
    return {
        **aws_env(servers, prefix),
        "POWERTOOLS_SERVICE_NAME": "qldb-settle-settler",
        "QLDB_SETTLE_WINDOW_PARAMETER": window,
        "QLDB_SETTLE_FAILURE_QUEUE_URL": queue,
        "QLDB_SETTLE_INGEST_FUNCTION": "qldb-settle-ingest",
    }


@pytest.fixture(scope="module")
def runs(
    built: Built, servers: Servers, workload: Workload, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The three functions invoked in turn on one buffer: ingest, export ingest, then the
    settler replaying it through pyqldb."""
    tmp = tmp_path_factory.mktemp("probe")
    prefix = f"lp-{uuid.uuid4().hex[:10]}"
    runs = fill_buffer(tmp, built, servers, workload, prefix)
    runs["settler"] = probe(
        tmp,
        [built.code["settler"], built.layers["settler"] / "python"],
        ["settler", "psycopg"],
        {
            **settler_env(servers, prefix),
            "QLDB_SETTLE_DESTINATION": "qldb:replica",
            "QLDB_SETTLE_QLDB_ENDPOINT": servers.qldb,
        },
    )
    return runs


@pytest.fixture(scope="module")
def postgres_run(
    built: Built, servers: Servers, workload: Workload, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The settler replaying another buffer into PostgreSQL (a throwaway local server), its
    password read from (moto's) Secrets Manager as the stack has it."""
    import boto3

    from destination.postgres_local import LocalPostgres
    from runtime.errors import ConfigError

    try:
        server = LocalPostgres.start()
    except ConfigError as exc:
        pytest.skip(f"no PostgreSQL server here: {exc}")
    try:
        tmp = tmp_path_factory.mktemp("probe-pg")
        prefix = f"lp-{uuid.uuid4().hex[:10]}"
        fill_buffer(tmp, built, servers, workload, prefix)
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"{prefix}-replica", SecretString=json.dumps({"password": "not-checked"})
        )["ARN"]
        yield probe(
            tmp,
            [built.code["settler"], built.layers["settler"] / "python"],
            ["settler"],
            {
                **settler_env(servers, prefix),
                "QLDB_SETTLE_DESTINATION": server.url("layerprobe"),
                "QLDB_SETTLE_PG_SECRET_ARN": secret,
            },
        )
    finally:
        server.stop()


def test_ingest_runs_from_its_asset_and_layer_with_the_ion_c_extension(
    runs: dict[str, dict[str, Any]], built: Built
) -> None:
    modules = runs["ingest"]["modules"]
    layer = (built.layers["ingest"] / "python").resolve()
    assert Path(modules["amazon._ioncmodule"]).is_relative_to(layer)
    assert Path(modules["opensearchpy"]).is_relative_to(layer)
    assert Path(modules["aws_lambda_powertools.metrics"]).is_relative_to(layer)
    # SigV4 for OpenSearch: botocore's, from the runtime (the stand-in), never from the layer.
    runtime = (built.layers[bl.RUNTIME] / "python").resolve()
    assert Path(modules["botocore.auth"]).is_relative_to(runtime)
    assert Path(modules["handlers.ingest"]).is_relative_to(built.code["ingest"].resolve())
    assert len(runs["ingest"]["answers"]["ingest"]) > 0


def test_export_ingest_runs_from_the_ingest_asset_and_layer(
    runs: dict[str, dict[str, Any]], built: Built
) -> None:
    answer = runs["export"]["answers"]["export"]
    assert answer["done"] is True, answer
    runtime = (built.layers[bl.RUNTIME] / "python").resolve()
    assert Path(runs["export"]["modules"]["boto3"]).is_relative_to(runtime)


def test_settler_replays_through_pyqldb_from_its_asset_and_layer(
    runs: dict[str, dict[str, Any]], built: Built, workload: Workload
) -> None:
    answer = runs["settler"]["answers"]["settler"]
    assert answer["replayed"]["blocks"] == workload.blocks, answer
    assert answer["gaps_passed"] >= 1 and answer["halted"] is False, answer
    assert answer["window_seconds"] == 0
    modules = runs["settler"]["modules"]
    layer = (built.layers["settler"] / "python").resolve()
    for name in ("pyqldb", "ionhash", "botocore", "boto3", "psycopg_binary", "amazon.ion"):
        assert Path(modules[name]).is_relative_to(layer), name
    assert runs["settler"]["answers"]["psycopg"]["impl"] == "binary"


def test_settler_replays_into_postgresql_from_its_asset_and_layer(
    postgres_run: dict[str, Any], built: Built, workload: Workload
) -> None:
    answer = postgres_run["answers"]["settler"]
    assert answer["replayed"]["blocks"] == workload.blocks, answer
    layer = (built.layers["settler"] / "python").resolve()
    for name in ("psycopg", "psycopg_binary", "destination.postgres"):
        root = layer if name != "destination.postgres" else built.code["settler"].resolve()
        assert Path(postgres_run["modules"][name]).is_relative_to(root), name


@pytest.mark.parametrize("name", [*bl.LAYERS, bl.RUNTIME])
def test_each_lock_is_the_closure_of_its_requirements_but_the_exclusions(name: str) -> None:
    """Resolving ``<name>.in`` again for the Lambda platform gives the lock as checked in: a
    requirement changed without ``python -m infra.build_layers --lock`` fails here."""
    assert bl.resolve_lock(name) == bl.LOCKS[name].read_text()


@pytest.mark.parametrize("layer", bl.LAYERS)
def test_every_package_a_layer_carries_is_imported(
    layer: str, runs: dict[str, dict[str, Any]], built: Built
) -> None:
    """Nothing the functions never import: each distribution of the layer has a module that one
    of the invocations of its functions (ingest and export ingest share the ingest layer)
    imported, or a reason in ``NOT_IMPORTED``."""
    site = built.layers[layer] / "python"
    users = ("ingest", "export") if layer == "ingest" else ("settler",)
    used = set().union(*(imported_from(site, runs[u]["modules"]) for u in users))
    unused = set(distributions(site)) - used - set(NOT_IMPORTED[layer])
    assert not unused, f"{layer} layer carries what no invocation imports: {sorted(unused)}"
    assert set(bl.read_lock(layer)) == set(distributions(site))
