"""Shared, session-scoped CDK syntheses (jsii is slow: each app is synthesized once).

Every app here is synthesized without dependency layers (``lambdaLayers=none``) and from one
copy of the project's packages made at the start of the session, so two syntheses differ only
by the context they are given (other engineers editing the packages meanwhile change nothing).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from infra.app import QldbSettleApp

# The small ingest environment (make test-ingest) has no aws-cdk-lib: nothing here is collected.
if importlib.util.find_spec("aws_cdk") is None:
    collect_ignore_glob = ["test_*.py"]

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

NO_LAYERS = {"lambdaLayers": "none"}


@dataclass(frozen=True)
class Synthesized:
    """One synthesized app: the app object, its output folder and each stack's template."""

    app: QldbSettleApp
    outdir: Path
    templates: Mapping[str, dict[str, Any]]  # by construct id: Ledgers, Streaming, Service

    def resources(self, stack: str, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.templates[stack]["Resources"].items() if v["Type"] == type_}


@pytest.fixture(scope="session")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infra.packaging import build_code

    out = tmp_path_factory.mktemp("lambda-code")
    build_code(out)
    return out


@pytest.fixture(scope="session")
def synthesize(
    code_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[Mapping[str, Any]], Synthesized]]:
    cache: dict[str, Synthesized] = {}

    from infra.app import QldbSettleApp

    def run(context: Mapping[str, Any]) -> Synthesized:
        key = json.dumps(context, sort_keys=True)
        if key not in cache:
            outdir = tmp_path_factory.mktemp("cdk.out")
            app = QldbSettleApp(
                context={**NO_LAYERS, **context}, outdir=str(outdir), code_dir=code_dir
            )
            app.synth()
            templates = {
                stack.node.id: json.loads(
                    (outdir / f"{stack.artifact_id}.template.json").read_text()
                )
                for stack in app.stacks
            }
            cache[key] = Synthesized(app=app, outdir=outdir, templates=templates)
        return cache[key]

    yield run


@pytest.fixture(scope="session")
def default_app(synthesize: Callable[[Mapping[str, Any]], Synthesized]) -> Synthesized:
    """The app as cdk.json configures it: streaming and service stacks, no QLDB resources."""
    return synthesize({})


@pytest.fixture(scope="session")
def qldb_app(synthesize: Callable[[Mapping[str, Any]], Synthesized]) -> Synthesized:
    """With the opt-in QLDB parts: both ledgers and the journal stream."""
    return synthesize({"deployLedgers": "true", "deployJournalStream": "true"})


EXISTING_STREAM = "arn:aws:kinesis:eu-west-1:111122223333:stream/qldb-journal"
EXISTING_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALARM_TOPIC = "arn:aws:sns:eu-west-1:111122223333:ops"
OPERATOR_ROLE = "arn:aws:iam::111122223333:role/qldb-settle-operator"


@pytest.fixture(scope="session")
def existing_app(synthesize: Callable[[Mapping[str, Any]], Synthesized]) -> Synthesized:
    """The settling service alone, against an existing stream and an ALLOW_ALL destination."""
    return synthesize(
        {
            "existingStreamArn": EXISTING_STREAM,
            "existingStreamRetentionHours": 72,
            "existingStreamKeyArn": EXISTING_KEY,
            "destinationPermissionsMode": "ALLOW_ALL",
            "alarmTopicArn": ALARM_TOPIC,
            "operatorRoleArns": OPERATOR_ROLE,
            "startingPosition": "AT_TIMESTAMP",
            "startingPositionTimestamp": "2024-05-01T00:00:00Z",
        }
    )
