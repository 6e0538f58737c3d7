"""The CDK app: ``python -m infra.app`` (or ``npx aws-cdk synth``) synthesizes every stack.

Stacks: ``<serviceName>-ledgers`` (only with ``deployLedgers``), ``<serviceName>-streaming``
(unless ``existingStreamArn``), ``<serviceName>-service``. cdk-nag's AwsSolutions pack runs on
the whole app; its suppressions, each with its reason, are in ``infra.nag``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import cdk_nag

from infra import nag
from infra.config import Config
from infra.context import FEATURE_FLAGS
from infra.packaging import PROJECT_ROOT, build_code, layer_folders, missing_layers
from infra.stacks import LedgersStack, ServiceStack, StreamingStack

logger = logging.getLogger(__name__)

LAYERS_MISSING = (
    "dependency layers not built: run `python -m infra.build_layers` first (or synthesize with "
    "-c lambdaLayers=none to check templates only; those functions would not run)"
)


class QldbSettleApp:
    """The app and its stacks, for ``main`` and for tests (``Template.from_stack``)."""

    def __init__(
        self,
        *,
        context: Mapping[str, Any] | None = None,
        outdir: str | None = None,
        code_dir: Path | None = None,
        nag_checks: bool = True,
    ) -> None:
        """``code_dir``: already built code folders (``infra.packaging.build_code``); None
        builds them into ``build/lambda``. ``context`` is added to cdk.json's / the CLI's."""
        ctx: dict[str, Any] = {"aws:cdk:bundling-stacks": [], **FEATURE_FLAGS}
        ctx.update(context or {})
        self.app = cdk.App(context=ctx, outdir=outdir)
        self.config = Config.from_context(self.app.node.try_get_context)
        config = self.config

        if code_dir is None:
            code_dirs = build_code(PROJECT_ROOT / "build" / "lambda")
        else:
            code_dirs = {fn: code_dir / fn for fn in ("ingest", "settler")}
        layer_dirs = layer_folders(config.lambda_layers)
        self.layers_missing: list[Path] = []
        if layer_dirs is not None:
            self.layers_missing = missing_layers(layer_dirs)
            if self.layers_missing:
                layer_dirs = None

        env = cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        )
        name = config.service_name
        self.ledgers: LedgersStack | None = None
        if config.deploy_ledgers:
            self.ledgers = LedgersStack(
                self.app,
                "Ledgers",
                stack_name=f"{name}-ledgers",
                config=config,
                env=env,
                description="qldb-settle: source and destination QLDB ledgers",
            )
        self.streaming: StreamingStack | None = None
        if config.creates_stream:
            self.streaming = StreamingStack(
                self.app,
                "Streaming",
                stack_name=f"{name}-streaming",
                config=config,
                env=env,
                description="qldb-settle: Kinesis journal stream (KMS), Firehose backup to S3",
            )
            if self.ledgers is not None and config.deploy_journal_stream:
                self.streaming.add_dependency(self.ledgers)
        self.service = ServiceStack(
            self.app,
            "Service",
            stack_name=f"{name}-service",
            config=config,
            stream=self.streaming.journal.stream if self.streaming else None,
            code_dirs=code_dirs,
            layer_dirs=layer_dirs,
            env=env,
            description="qldb-settle: ingest, OpenSearch settling buffer, settler, monitoring",
        )
        if self.ledgers is not None:
            self.service.add_dependency(self.ledgers)
        if self.layers_missing:
            cdk.Annotations.of(self.service).add_error(LAYERS_MISSING)
        elif layer_dirs is None:
            cdk.Annotations.of(self.service).add_warning_v2(
                "qldb-settle:no-layers", "synthesized without dependency layers (lambdaLayers=none)"
            )

        self.stacks: list[cdk.Stack] = [
            s for s in (self.ledgers, self.streaming, self.service) if s is not None
        ]
        nag.suppress(self)
        if nag_checks:
            cdk.Validations.of(self.app).add_plugins(cdk_nag.AwsSolutionsChecks(self.app))

    @property
    def outdir(self) -> str:
        return self.app.outdir

    def synth(self) -> cdk.cx_api.CloudAssembly:
        return self.app.synth()


def main(*, outdir: str | None = None, context: Mapping[str, Any] | None = None) -> int:
    """Synthesize the app. The CDK CLI passes the output folder and the context through the
    environment (``CDK_OUTDIR``, ``CDK_CONTEXT_JSON``); the arguments are for callers in-process."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if outdir is None and not os.environ.get("CDK_OUTDIR"):
        outdir = str(PROJECT_ROOT / "cdk.out")  # run directly, not by the CDK CLI
    app = QldbSettleApp(outdir=outdir, context=context)
    app.synth()
    logger.info("synthesized %s into %s", ", ".join(s.stack_name for s in app.stacks), app.outdir)
    if app.layers_missing:
        print(f"warning: {LAYERS_MISSING}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
