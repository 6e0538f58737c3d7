"""The whole app: synthesis of every stack, cdk-nag, cfn-lint, configuration and the window."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="the CDK tests need aws-cdk-lib (the main environment)")

import aws_cdk as cdk
from constructs import IConstruct

from infra.app import main
from infra.config import Config
from infra.context import CONTEXT, render_cdk_json
from runtime.errors import ConfigError
from tests.infra.conftest import (
    ALARM_TOPIC,
    EXISTING_KEY,
    EXISTING_STREAM,
    OPERATOR_ROLE,
    Synthesized,
)

REPO = Path(__file__).resolve().parents[2]


def nag_report(synth: Synthesized) -> dict[str, Any]:
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    return {p["pluginName"]: p for p in report["pluginReports"]}


def acknowledgements(root: IConstruct) -> dict[str, str]:
    """Every acknowledged finding in the app: ``path rule`` -> reason."""
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    found: dict[str, str] = {}
    for node in root.node.find_all():
        for entry in node.node.metadata:
            if entry.type == key:
                for rule, reason in entry.data.items():
                    found[f"{node.node.path} {rule}"] = reason
    return found


def cfn_lint_errors(paths: list[Path]) -> list[str]:
    from cfnlint.api import lint_file

    return [
        f"{path.name}: {m.rule.id} {m.message}"
        for path in paths
        for m in lint_file(path)
        if m.rule.id.startswith("E")
    ]


def all_statements(synth: Synthesized) -> list[dict[str, Any]]:
    out = []
    for template in synth.templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                out.extend(resource["Properties"]["PolicyDocument"]["Statement"])
            for policy in resource.get("Properties", {}).get("Policies", []) or []:
                out.extend(policy["PolicyDocument"]["Statement"])
    return out


# Synthesis, cdk-nag, cfn-lint ---------------------------------------------------------------


def test_default_app_has_streaming_and_service_and_no_qldb(default_app: Synthesized) -> None:
    assert set(default_app.templates) == {"Streaming", "Service"}
    names = {s.stack_name for s in default_app.app.stacks}
    assert names == {"qldb-settle-streaming", "qldb-settle-service"}
    text = json.dumps(default_app.templates)
    assert "AWS::QLDB::" not in text
    # The service reads the stream the streaming stack creates.
    (esm,) = default_app.resources("Service", "AWS::Lambda::EventSourceMapping").values()
    assert "Fn::ImportValue" in esm["Properties"]["EventSourceArn"]


@pytest.mark.parametrize("which", ["default_app", "qldb_app", "existing_app"])
def test_cdk_nag_has_no_unacknowledged_finding(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synthesized = request.getfixturevalue(which)
    plugins = nag_report(synth)
    nag = plugins["AwsSolutions"]
    assert nag["conclusion"] == "success"
    assert nag["violations"] == []
    acks = acknowledgements(synth.app.app)
    assert any("AwsSolutions-L1" in a for a in acks), "findings are acknowledged one by one"
    for where, reason in acks.items():
        assert len(reason) >= 40, where  # a written reason, not a placeholder


@pytest.mark.parametrize("which", ["default_app", "qldb_app", "existing_app"])
def test_cfn_lint_finds_no_error(which: str, request: pytest.FixtureRequest) -> None:
    synth: Synthesized = request.getfixturevalue(which)
    paths = sorted(synth.outdir.glob("*.template.json"))
    assert len(paths) == len(synth.templates)
    assert cfn_lint_errors(paths) == []


def test_cfn_lint_would_catch_an_error(default_app: Synthesized, tmp_path: Path) -> None:
    """The lint check can fail: a template with a bad property is reported as an error."""
    template = json.loads(json.dumps(default_app.templates["Service"]))
    queue = next(r for r in template["Resources"].values() if r["Type"] == "AWS::SQS::Queue")
    queue["Properties"]["MessageRetentionPeriod"] = "fourteen days"
    path = tmp_path / "broken.template.json"
    path.write_text(json.dumps(template))
    assert cfn_lint_errors([path])


def test_qldb_app_adds_ledgers_and_journal_stream(qldb_app: Synthesized) -> None:
    assert set(qldb_app.templates) == {"Ledgers", "Streaming", "Service"}
    ledgers = qldb_app.resources("Ledgers", "AWS::QLDB::Ledger")
    assert sorted(r["Properties"]["Name"] for r in ledgers.values()) == [
        "qldb-settle-replica",
        "qldb-settle-source",
    ]
    (stream,) = qldb_app.resources("Streaming", "AWS::QLDB::Stream").values()
    assert stream["Properties"]["LedgerName"] == "qldb-settle-source"
    deps = {s.node.id for s in qldb_app.app.streaming.dependencies}  # type: ignore[union-attr]
    assert deps == {"Ledgers"}


def test_existing_stream_app(existing_app: Synthesized) -> None:
    assert set(existing_app.templates) == {"Service"}
    (esm,) = existing_app.resources("Service", "AWS::Lambda::EventSourceMapping").values()
    assert esm["Properties"]["EventSourceArn"] == EXISTING_STREAM
    assert esm["Properties"]["StartingPosition"] == "AT_TIMESTAMP"
    statements = all_statements(existing_app)
    decrypt = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert [s["Resource"] for s in decrypt] == [EXISTING_KEY]
    assert not [s for s in statements if "qldb:PartiQLInsert" in json.dumps(s["Action"])]
    for alarm in existing_app.resources("Service", "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [ALARM_TOPIC]
    (domain,) = existing_app.resources("Service", "AWS::OpenSearchService::Domain").values()
    principals = domain["Properties"]["AccessPolicies"]["Statement"][0]["Principal"]["AWS"]
    assert len(principals) == 3 and principals[2] == OPERATOR_ROLE


# Actions with no resource-level permissions in IAM (the only ones allowed on "*", and only
# with a condition): the settler reads the ingest function's IteratorAge before passing a gap.
NO_RESOURCE_LEVEL = {"cloudwatch:GetMetricStatistics"}


@pytest.mark.parametrize("which", ["default_app", "qldb_app", "existing_app"])
def test_every_iam_statement_names_its_resources(
    which: str, request: pytest.FixtureRequest
) -> None:
    synth: Synthesized = request.getfixturevalue(which)
    statements = all_statements(synth)
    assert statements
    for s in statements:
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if set(actions) <= NO_RESOURCE_LEVEL and "Condition" in s:
            continue  # an API IAM cannot scope by resource, narrowed by its condition instead
        assert "*" not in resources, s
    # The settler's QLDB access: SendCommand on the one destination ledger.
    sends = [s for s in statements if s["Action"] == "qldb:SendCommand"]
    assert len(sends) == 1
    assert json.dumps(sends[0]["Resource"]).endswith(':ledger/qldb-settle-replica"]]}')


def test_service_stack_wiring(default_app: Synthesized) -> None:
    functions = {
        k: f
        for k, f in default_app.resources("Service", "AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] != "index.handler"  # the security roles custom resource
    }
    by_handler = {f["Properties"]["Handler"]: f["Properties"] for f in functions.values()}
    assert set(by_handler) == {"handlers.ingest.handler", "handlers.settler.handler"}
    ingest_env = by_handler["handlers.ingest.handler"]["Environment"]["Variables"]
    settler_env = by_handler["handlers.settler.handler"]["Environment"]["Variables"]
    (domain_id,) = default_app.resources("Service", "AWS::OpenSearchService::Domain")
    for env in (ingest_env, settler_env):
        assert env["QLDB_SETTLE_BUFFER"] == {
            "Fn::Join": ["", ["opensearch:https://", {"Fn::GetAtt": [domain_id, "DomainEndpoint"]}]]
        }
        assert env["QLDB_SETTLE_INDEX_PREFIX"] == "qldb-settle"
        assert env["QLDB_SETTLE_EARLY_RELEASE"] == "false"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "QldbSettle"
    assert ingest_env["POWERTOOLS_SERVICE_NAME"] == "qldb-settle-ingest"
    assert settler_env["POWERTOOLS_SERVICE_NAME"] == "qldb-settle-settler"
    assert settler_env["QLDB_SETTLE_DESTINATION"] == "qldb:qldb-settle-replica"
    assert settler_env["QLDB_SETTLE_WINDOW_PARAMETER"] == "/qldb-settle/settle-window-seconds"
    assert by_handler["handlers.settler.handler"]["ReservedConcurrentExecutions"] == 1
    # Both roles, and only they (and the FGAC master: test_infra_security), may call the domain.
    (domain,) = default_app.resources("Service", "AWS::OpenSearchService::Domain").values()
    principals = domain["Properties"]["AccessPolicies"]["Statement"][0]["Principal"]["AWS"]
    roles = sorted(f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values())
    assert sorted(p["Fn::GetAtt"][0] for p in principals) == roles
    outputs = default_app.templates["Service"]["Outputs"]
    assert "FailedRangesQueueUrl" in outputs


# The settle window --------------------------------------------------------------------------


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out.extend(diff(a.get(k), b.get(k), f"{path}/{k}"))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{path}/{i}")
        ]
    return [] if a == b else [path]


def test_changing_the_window_changes_only_the_ssm_parameter_and_the_settlers_default(
    default_app: Synthesized, synthesize: Callable[[Mapping[str, Any]], Synthesized]
) -> None:
    """The parameter is what the settler reads; the environment variable is the value it would
    use were no parameter named (it never stands in for a failed read: handlers.settler). The
    dashboard draws the window as a line: that line moves, nothing else of it."""
    wider = synthesize({"settleWindowSeconds": "240"})  # below lagAlarmSeconds (300)
    assert set(wider.templates) == set(default_app.templates)
    (dashboard_id,) = default_app.resources("Service", "AWS::CloudWatch::Dashboard")
    bodies = [
        "".join(
            part if isinstance(part, str) else json.dumps(part)
            for part in t["Service"]["Resources"][dashboard_id]["Properties"]["DashboardBody"][
                "Fn::Join"
            ][1]
        )
        for t in (default_app.templates, wider.templates)
    ]
    assert '"value":120000' in bodies[0]
    assert bodies[1] == bodies[0].replace('"value":120000', '"value":240000')
    differences = {
        stack: [
            d
            for d in diff(default_app.templates[stack], wider.templates[stack])
            if not d.startswith(f"/Resources/{dashboard_id}/Properties/DashboardBody/")
        ]
        for stack in default_app.templates
    }
    (param_id,) = default_app.resources("Service", "AWS::SSM::Parameter")
    (settler_id,) = [
        rid
        for rid in default_app.resources("Service", "AWS::Lambda::Function")
        if "QLDB_SETTLE_WINDOW_PARAMETER"
        in default_app.templates["Service"]["Resources"][rid]["Properties"]
        .get("Environment", {})
        .get("Variables", {})
    ]
    assert differences == {
        "Streaming": [],
        "Service": [
            f"/Resources/{settler_id}/Properties/Environment/Variables/QLDB_SETTLE_WINDOW_SECONDS",
            f"/Resources/{param_id}/Properties/Value",
        ],
    }
    (before,) = default_app.resources("Service", "AWS::SSM::Parameter").values()
    (after,) = wider.resources("Service", "AWS::SSM::Parameter").values()
    assert (before["Properties"]["Value"], after["Properties"]["Value"]) == ("120", "240")


# Configuration ------------------------------------------------------------------------------


def test_cdk_json_is_generated_from_the_context_table() -> None:
    assert (REPO / "cdk.json").read_text() == render_cdk_json()
    context = json.loads(render_cdk_json())["context"]
    for key in CONTEXT:
        assert context[key.name] == key.default
        assert context[f"// {key.name}"].startswith(key.meaning)


def test_deploy_doc_lists_every_context_key() -> None:
    doc = (REPO / "docs" / "deploy.md").read_text()
    for key in CONTEXT:
        assert f"`{key.name}`" in doc, key.name


def test_defaults_and_cli_strings_parse() -> None:
    config = Config.defaults()
    assert config.settle_window_seconds == 120 and config.deploy_ledgers is False
    given = {
        "settleWindowSeconds": "300",
        "lagAlarmSeconds": "600",
        "deployLedgers": "true",
        "shardCount": 8,
    }
    parsed = Config.from_context(given.get)
    assert (parsed.settle_window_seconds, parsed.deploy_ledgers, parsed.shard_count) == (
        300,
        True,
        8,
    )


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"settleWindowSeconds": "two minutes"}, "settleWindowSeconds"),
        ({"deployLedgers": "maybe"}, "deployLedgers"),
        ({"startingPosition": "EARLIEST"}, "startingPosition"),
        ({"startingPosition": "AT_TIMESTAMP"}, "startingPositionTimestamp"),
        ({"openSearchDataNodes": 4}, "openSearchDataNodes"),
        ({"existingStreamArn": "my-stream"}, "existingStreamArn"),
        (
            {"existingStreamArn": EXISTING_STREAM, "deployJournalStream": True},
            "deployJournalStream",
        ),
        ({"logRetentionDays": 31}, "logRetentionDays"),
        ({"serviceName": "QLDB Settle"}, "serviceName"),
    ],
)
def test_bad_context_is_refused_naming_the_key(context: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Config.from_context(context.get)


# The command itself -------------------------------------------------------------------------


def test_main_synthesizes_every_stack_and_flags_missing_layers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``infra.app.main`` (what ``python -m infra.app`` runs; in-process, as the jsii kernel
    reads the CLI's environment only when it starts): the layers were not built, so the app
    synthesizes all the same and flags it as an error that makes ``cdk deploy`` refuse."""
    out = tmp_path / "cdk.out"
    assert main(outdir=str(out), context={"lambdaLayers": str(tmp_path / "none")}) == 0
    assert sorted(p.name for p in out.glob("*.template.json")) == [
        "Service.template.json",
        "Streaming.template.json",
    ]
    assert "dependency layers not built" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())["artifacts"]["Service"]
    metadata = json.loads((out / manifest["additionalMetadataFile"]).read_text())
    errors = [e for entries in metadata.values() for e in entries if e["type"] == "aws:cdk:error"]
    assert any("python -m infra.build_layers" in e["data"] for e in errors)
    assert (REPO / "build" / "lambda" / "settler" / "settler" / "__init__.py").is_file()
