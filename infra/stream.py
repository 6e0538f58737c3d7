"""The blog's second stack: the journal stream into Kinesis, and the raw backup to S3.

A Kinesis data stream encrypted with a customer-managed KMS key (rotation on), a Firehose
delivery stream copying every record to an S3 bucket (SSE-KMS with the same key, public access
blocked, TLS only, access logged to a second bucket), and, when asked, the QLDB journal stream
from the source ledger into the Kinesis stream (KPL aggregation on, as QLDB's default).

The backup is the audit copy: Firehose writes it with a put-only role of ours (CDK's grant would
let it read and delete), the versioned bucket has lifecycle rules (colder class, noncurrent
expiry, abandoned uploads) and, when asked, Object Lock with a default retention; the journal
stream's role trusts QLDB only for this account's source ledger.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_qldb as qldb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.lambdas import RETENTION


class JournalStream(Construct):
    """The Kinesis stream the ingest function reads, with its key and its Firehose backup.

    ``source_ledger_name`` set: also the QLDB journal stream (``AWS::QLDB::Stream``) from that
    ledger, starting at ``start_time``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shard_count: int,
        retention_hours: int,
        source_ledger_name: str | None = None,
        start_time: str = "2020-01-01T00:00:00Z",
        log_retention_days: int = 30,
        object_lock: str = "",
        object_lock_days: int = 365,
    ) -> None:
        """``object_lock`` GOVERNANCE or COMPLIANCE: the backup bucket is created with Object
        Lock and that default retention of ``object_lock_days`` on every object version."""
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="qldb-settle: journal stream and its raw backup",
            enable_key_rotation=True,
        )
        self.stream = kinesis.Stream(
            self,
            "Stream",
            shard_count=shard_count,
            retention_period=Duration.hours(retention_hours),
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=self.key,
            # Enhanced monitoring of this one metric: the dashboard's iterator age per shard.
            shard_level_metrics=[kinesis.ShardLevelMetrics.ITERATOR_AGE_MILLISECONDS],
        )
        self.access_logs = s3.Bucket(
            self,
            "BackupAccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.backup = s3.Bucket(
            self,
            "Backup",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="backup/",
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[BACKUP_LIFECYCLE],
            object_lock_enabled=bool(object_lock) or None,
            object_lock_default_retention=(
                _lock_retention(object_lock, object_lock_days) if object_lock else None
            ),
        )
        self.backup_writer = self._backup_writer()
        self.delivery_logs = logs.LogGroup(
            self,
            "Backup2S3Logs",
            retention=RETENTION[log_retention_days],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.backup_writer.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.delivery_logs.log_group_arn],
            )
        )
        # Firehose de-aggregates KPL records from a Kinesis source and writes the Ion binary
        # records back to back: `qldb-settle ingest` reads these objects (GZIP) as they are.
        # Firehose reads the stream with a role of its own, for this account only (CDK grants it
        # the stream's reads and its key's decrypt).
        self.backup_reader = iam.Role(
            self,
            "BackupReaderRole",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
            description="Firehose reads the journal stream for the raw backup",
        )
        self.delivery = firehose.DeliveryStream(
            self,
            "Backup2S3",
            role=self.backup_reader,
            source=firehose.KinesisStreamSource(self.stream),
            destination=firehose.S3Bucket(
                self.backup,
                compression=firehose.Compression.GZIP,
                encryption_key=self.key,
                data_output_prefix="raw/!{timestamp:yyyy/MM/dd/HH}/",
                error_output_prefix="errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
                buffering_interval=Duration.seconds(300),
                # Our role, closed to CDK's grants (read, delete...): only its own statements.
                role=self.backup_writer.without_policy_updates(),
                logging_config=firehose.EnableLogging(self.delivery_logs),
            ),
        )
        self.delivery.node.add_dependency(self.backup_writer)
        self.journal_stream: qldb.CfnStream | None = None
        if source_ledger_name is not None:
            qldb_arn = f"arn:{Aws.PARTITION}:qldb:{Aws.REGION}:{Aws.ACCOUNT_ID}"
            # Only QLDB acting for this account's source ledger (no confused deputy): the
            # ledger's ARN, or its journal streams' (QLDB's own examples name those).
            source_arns = [
                f"{qldb_arn}:ledger/{source_ledger_name}",
                f"{qldb_arn}:stream/{source_ledger_name}/*",
            ]
            role = iam.Role(
                self,
                "JournalStreamRole",
                assumed_by=iam.ServicePrincipal(
                    "qldb.amazonaws.com",
                    conditions={
                        "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                        "ArnLike": {"aws:SourceArn": source_arns},
                    },
                ),
                description="QLDB writes the journal stream of the source ledger",
            )
            self.stream.grant_write(role)
            self.journal_stream = qldb.CfnStream(
                self,
                "JournalStream",
                ledger_name=source_ledger_name,
                stream_name=f"{source_ledger_name}-journal",
                role_arn=role.role_arn,
                inclusive_start_time=start_time,
                kinesis_configuration=qldb.CfnStream.KinesisConfigurationProperty(
                    stream_arn=self.stream.stream_arn, aggregation_enabled=True
                ),
            )
            self.journal_stream.node.add_dependency(role)
            # cfn-lint's frozen schema of the shut-down AWS::QLDB::Stream also refuses a GetAtt
            # in KinesisConfiguration.StreamArn (E1010), which CloudFormation accepted.
            self.journal_stream.add_metadata(
                "cfn-lint", {"config": {"ignore_checks": ["E3710", "E1010"]}}
            )

    def _backup_writer(self) -> iam.Role:
        """Firehose's role for the backup: it may add objects to the bucket and nothing else (no
        read, no delete, no overwrite of a retention): what the S3 destination needs, with the
        key only through S3 for this bucket."""
        role = iam.Role(
            self,
            "BackupWriterRole",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
            description="Firehose writes the raw journal backup: put-only",
        )
        bucket = self.backup
        role.add_to_policy(
            iam.PolicyStatement(
                sid="FindTheBucket",
                actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                resources=[bucket.bucket_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AddObjects",
                actions=list(BACKUP_WRITE_ACTIONS),
                resources=[bucket.arn_for_objects("*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptThroughS3",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[self.key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.{Aws.URL_SUFFIX}"},
                    # Bucket keys: the encryption context is the bucket's ARN.
                    "StringLike": {
                        "kms:EncryptionContext:aws:s3:arn": [
                            bucket.bucket_arn,
                            bucket.arn_for_objects("*"),
                        ]
                    },
                },
            )
        )
        return role


# Firehose's S3 writes: PutObject (and the multipart upload it is made of, aborted on failure).
BACKUP_WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")

# The versioned backup: current objects move to Glacier Instant Retrieval (still read in
# milliseconds by `qldb-settle ingest`) after 90 days; versions that stopped being current
# (which Firehose never makes: it writes new keys) go after 90 days, or when their Object Lock
# retention ends if later; failed multipart uploads are cleaned after 7 days.
BACKUP_LIFECYCLE = s3.LifecycleRule(
    id="backup-lifecycle",
    transitions=[
        s3.Transition(
            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
            transition_after=Duration.days(90),
        )
    ],
    noncurrent_version_expiration=Duration.days(90),
    abort_incomplete_multipart_upload_after=Duration.days(7),
)


def _lock_retention(mode: str, days: int) -> s3.ObjectLockRetention:
    if mode == "COMPLIANCE":
        return s3.ObjectLockRetention.compliance(Duration.days(days))
    return s3.ObjectLockRetention.governance(Duration.days(days))
