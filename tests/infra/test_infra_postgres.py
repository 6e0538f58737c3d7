"""``destination=postgresql``: the Aurora PostgreSQL Serverless v2 replica, the settler in its
VPC with that one secret, cdk-nag and cfn-lint clean."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="the CDK tests need aws-cdk-lib (the main environment)")

from tests.infra.conftest import Synthesized
from tests.infra.test_infra_app import acknowledgements, all_statements, cfn_lint_errors, nag_report


@pytest.fixture(scope="module")
def pg_app(synthesize: Callable[[Mapping[str, Any]], Synthesized]) -> Synthesized:
    return synthesize({"destination": "postgresql", "postgresqlMaxCapacity": 8})


def _settler(app: Synthesized) -> dict[str, Any]:
    functions = app.resources("Service", "AWS::Lambda::Function")
    return next(
        f for f in functions.values() if f["Properties"]["Handler"] == "handlers.settler.handler"
    )


def test_the_cluster_is_aurora_postgresql_serverless_v2_encrypted(pg_app: Synthesized) -> None:
    (cluster,) = pg_app.resources("Service", "AWS::RDS::DBCluster").values()
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert props["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 0.5, "MaxCapacity": 8}
    assert props["StorageEncrypted"] is True and props["DeletionProtection"] is True
    assert props["EnableIAMDatabaseAuthentication"] is True
    assert props["DatabaseName"] == "replica"
    (instance,) = pg_app.resources("Service", "AWS::RDS::DBInstance").values()
    assert instance["Properties"]["DBInstanceClass"] == "db.serverless"
    assert pg_app.resources("Service", "AWS::EC2::FlowLog")


def test_the_settler_runs_in_the_vpc_with_the_secret_only(pg_app: Synthesized) -> None:
    settler = _settler(pg_app)["Properties"]
    assert settler["VpcConfig"]["SubnetIds"] and settler["VpcConfig"]["SecurityGroupIds"]
    env = settler["Environment"]["Variables"]
    assert json.dumps(env["QLDB_SETTLE_DESTINATION"]).startswith('{"Fn::Join"')
    assert "postgresql://qldb_settle@" in json.dumps(env["QLDB_SETTLE_DESTINATION"])
    assert env["QLDB_SETTLE_PG_SCHEMA"] == "qldb" and "QLDB_SETTLE_PG_SECRET_ARN" in env
    statements = all_statements(pg_app)
    secret_reads = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    (read,) = secret_reads
    (attachment,) = pg_app.resources("Service", "AWS::SecretsManager::SecretTargetAttachment")
    assert read["Resource"] == {"Ref": attachment}  # that one secret (its ARN), nothing else
    assert not any("qldb:SendCommand" in json.dumps(s["Action"]) for s in statements)
    # the cluster admits the settler's security group only
    ingress = pg_app.resources("Service", "AWS::EC2::SecurityGroupIngress")
    assert len(ingress) == 1
    (rule,) = ingress.values()
    props = rule["Properties"]
    assert props["SourceSecurityGroupId"]["Fn::GetAtt"][0].startswith("ReplicaSettlerSecurityGroup")
    assert props["FromPort"] == {
        "Fn::GetAtt": [props["FromPort"]["Fn::GetAtt"][0], "Endpoint.Port"]
    }


def test_the_default_app_has_no_database(default_app: Synthesized) -> None:
    assert not default_app.resources("Service", "AWS::RDS::DBCluster")
    env = _settler(default_app)["Properties"]["Environment"]["Variables"]
    assert env["QLDB_SETTLE_DESTINATION"] == "qldb:qldb-settle-replica"


def test_nag_and_cfn_lint_are_clean(pg_app: Synthesized) -> None:
    nag = nag_report(pg_app)["AwsSolutions"]
    assert nag["violations"] == [] and nag["conclusion"] == "success"
    for where, reason in acknowledgements(pg_app.app.app).items():
        assert len(reason) >= 40, where
    paths = sorted(pg_app.outdir.glob("*.template.json"))
    assert cfn_lint_errors(paths) == []
