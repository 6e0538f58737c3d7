"""Replay of a journal export in S3: the export-ingest function and its state machine exist only
when the context names an export, read that prefix and nothing else, and are cdk-nag and cfn-lint
clean."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="the CDK tests need aws-cdk-lib (the main environment)")

from aws_cdk.assertions import Match, Template

from tests.infra.conftest import Synthesized
from tests.infra.test_infra_app import acknowledgements, cfn_lint_errors, nag_report

BUCKET = "my-qldb-exports"
PREFIX = "journalExport"
LEDGER_ARN = "arn:aws:qldb:eu-west-1:111122223333:ledger/my-ledger"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CONTEXT = {
    "exportBucket": BUCKET,
    "exportPrefix": PREFIX,
    "exportLedgerArn": LEDGER_ARN,
    "exportKeyArn": KEY_ARN,
}
S3_ARN = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::{BUCKET}"]]}
OBJECTS_ARN = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::{BUCKET}/{PREFIX}/*"]]}


@pytest.fixture(scope="module")
def export_app(synthesize: Callable[[Mapping[str, Any]], Synthesized]) -> Synthesized:
    return synthesize(CONTEXT)


def _export_function(app: Synthesized) -> tuple[str, dict[str, Any]] | None:
    functions = app.resources("Service", "AWS::Lambda::Function")
    found = [
        (k, f)
        for k, f in functions.items()
        if f["Properties"]["Handler"] == "handlers.export.handler"
    ]
    assert len(found) <= 1
    return found[0] if found else None


def _statements(app: Synthesized, role_logical_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in app.resources("Service", "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def test_without_the_context_there_is_no_export_replay(default_app: Synthesized) -> None:
    assert _export_function(default_app) is None
    assert not default_app.resources("Service", "AWS::StepFunctions::StateMachine")
    assert "s3:GetObject" not in json.dumps(default_app.templates["Service"])


def test_the_function_ingests_the_configured_export(export_app: Synthesized) -> None:
    found = _export_function(export_app)
    assert found is not None
    props = found[1]["Properties"]
    assert props["Timeout"] == 900 and props["MemorySize"] == 1024
    env = props["Environment"]["Variables"]
    assert env["QLDB_SETTLE_EXPORT"] == f"s3://{BUCKET}/{PREFIX}"
    assert env["QLDB_SETTLE_LEDGER_ARN"] == LEDGER_ARN
    assert env["POWERTOOLS_SERVICE_NAME"] == "qldb-settle-export"
    assert "QLDB_SETTLE_BUFFER" in env


def test_its_policy_grants_exactly_the_prefix_reads(export_app: Synthesized) -> None:
    found = _export_function(export_app)
    assert found is not None
    role_id = found[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = _statements(export_app, role_id)
    s3 = [s for s in statements if any(str(a).startswith("s3:") for a in _list(s["Action"]))]
    assert sorted(json.dumps(s["Action"]) for s in s3) == ['"s3:GetObject"', '"s3:ListBucket"']
    listing = next(s for s in s3 if s["Action"] == "s3:ListBucket")
    assert listing["Resource"] == S3_ARN
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{PREFIX}/*"]}}
    reading = next(s for s in s3 if s["Action"] == "s3:GetObject")
    assert reading["Resource"] == OBJECTS_ARN
    (decrypt,) = [s for s in statements if "kms:Decrypt" in _list(s["Action"])]
    assert decrypt["Resource"] == KEY_ARN and _list(decrypt["Action"]) == ["kms:Decrypt"]
    # the buffer like the ingest function, and nothing else
    others = {a for s in statements for a in _list(s["Action"])} - {
        "s3:GetObject", "s3:ListBucket", "kms:Decrypt",
        "logs:CreateLogStream", "logs:PutLogEvents",
    }  # fmt: skip
    assert others and all(a.startswith("es:ESHttp") for a in others), others
    # named in the buffer domain's resource policy
    (domain,) = export_app.resources("Service", "AWS::OpenSearchService::Domain").values()
    assert role_id in json.dumps(domain["Properties"]["AccessPolicies"])
    # no other S3 read anywhere in the service stack
    text = json.dumps(export_app.templates["Service"])
    assert text.count('"s3:GetObject"') == 1


def test_without_a_prefix_the_whole_bucket_and_without_a_key_no_kms(
    synthesize: Callable[[Mapping[str, Any]], Synthesized],
) -> None:
    app = synthesize({"exportBucket": BUCKET, "exportLedgerArn": LEDGER_ARN})
    found = _export_function(app)
    assert found is not None
    statements = _statements(app, found[1]["Properties"]["Role"]["Fn::GetAtt"][0])
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert "Condition" not in listing
    assert not [s for s in statements if "kms:Decrypt" in _list(s["Action"])]


def test_the_state_machine_loops_until_done(export_app: Synthesized) -> None:
    template = Template.from_json(export_app.templates["Service"])
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": "qldb-settle-export-replay",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": Match.object_like({"Level": "ALL"}),
        },
    )
    (machine,) = export_app.resources("Service", "AWS::StepFunctions::StateMachine").values()
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    for needle in ("$.done", "$.transient", "NeedsAttention", "BufferUnavailable"):
        assert needle in definition, needle
    outputs = export_app.templates["Service"]["Outputs"]
    assert any(k.startswith("ExportReplayStateMachineArn") for k in outputs)


def test_nag_and_cfn_lint_are_clean(export_app: Synthesized) -> None:
    nag = nag_report(export_app)["AwsSolutions"]
    assert nag["violations"] == [] and nag["conclusion"] == "success"
    acks = acknowledgements(export_app.app.app)
    assert any("ExportReplay" in where for where in acks)
    for where, reason in acks.items():
        assert len(reason) >= 40, where
    paths = sorted(export_app.outdir.glob("*.template.json"))
    assert cfn_lint_errors(paths) == []


def test_the_context_is_checked() -> None:
    from infra.config import Config
    from runtime.errors import ConfigError

    with pytest.raises(ConfigError, match="exportLedgerArn"):
        Config.from_context({"exportBucket": BUCKET}.get)
    with pytest.raises(ConfigError, match="exportPrefix"):
        Config.from_context({**CONTEXT, "exportPrefix": "journal*"}.get)
    with pytest.raises(ConfigError, match="exportBucket"):
        Config.from_context({**CONTEXT, "exportBucket": "Not_A_Bucket"}.get)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
