"""The small ingest environment (make test-ingest) has no moto or boto3: nothing here is
collected there."""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("moto") is None:
    collect_ignore_glob = ["test_*.py"]
