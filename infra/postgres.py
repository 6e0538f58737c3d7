"""Where a block is replayed when the context says ``destination=postgresql``: an Aurora
PostgreSQL Serverless v2 cluster in a VPC of its own.

- The VPC has public subnets (one NAT gateway), private subnets with egress for the settler (it
  still reaches OpenSearch, SSM and Secrets Manager) and isolated subnets for the cluster, with
  flow logs to CloudWatch.
- The cluster: encrypted storage, IAM authentication enabled, deletion protection, backups kept
  7 days, its PostgreSQL log exported; the master credentials in a Secrets Manager secret the
  settler alone may read (granted by the settler construct), fetched once per container.
- ``client_security_group`` is the settler's: the only one the cluster's security group admits.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from infra.lambdas import RETENTION

DATABASE = "replica"
USERNAME = "qldb_settle"
PORT = 5432


class PostgresReplica(Construct):
    """The Aurora PostgreSQL Serverless v2 replica, its VPC and the settler's security group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster_identifier: str,
        min_capacity: float,
        max_capacity: float,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(
                    name="settler", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                ),
                ec2.SubnetConfiguration(
                    name="database", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED
                ),
            ],
        )
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            retention=RETENTION[log_retention_days],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.vpc.add_flow_log(
            "FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs)
        )
        self.client_security_group = ec2.SecurityGroup(
            self,
            "SettlerSecurityGroup",
            vpc=self.vpc,
            description="qldb-settle settler: the only client of the PostgreSQL replica",
            allow_all_outbound=True,
        )
        self.cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=rds.DatabaseClusterEngine.aurora_postgres(
                version=rds.AuroraPostgresEngineVersion.VER_16_9
            ),
            writer=rds.ClusterInstance.serverless_v2("Writer"),
            serverless_v2_min_capacity=min_capacity,
            serverless_v2_max_capacity=max_capacity,
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            credentials=rds.Credentials.from_generated_secret(USERNAME),
            default_database_name=DATABASE,
            port=PORT,
            storage_encrypted=True,
            iam_authentication=True,
            deletion_protection=True,
            backup=rds.BackupProps(retention=Duration.days(7)),
            cluster_identifier=cluster_identifier,
            cloudwatch_logs_exports=["postgresql"],
            removal_policy=RemovalPolicy.SNAPSHOT,
        )
        # The exported PostgreSQL log's group, made here with its retention (CDK's own
        # cloudwatchLogsRetention would add a custom-resource Lambda for that).
        logs.LogGroup(
            self,
            "PostgresLog",
            log_group_name=f"/aws/rds/cluster/{cluster_identifier}/postgresql",
            retention=RETENTION[log_retention_days],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.cluster.connections.allow_default_port_from(
            self.client_security_group, "the settler replays into the replica"
        )
        secret = self.cluster.secret
        assert secret is not None  # from_generated_secret always makes one
        self.secret = secret

    @property
    def url(self) -> str:
        """The destination URL the settler uses; its password comes from ``secret``."""
        return f"postgresql://{USERNAME}@{self.cluster.cluster_endpoint.hostname}:{PORT}/{DATABASE}"
