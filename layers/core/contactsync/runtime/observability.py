"""Observability at the edge: the runtime's handlers share one Powertools Logger, Metrics and
Tracer, configured by the environment template.yaml sets (POWERTOOLS_SERVICE_NAME,
POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL).

The logger is the standard library's ``contactsync`` logger (the service's name), so the
library's own loggers (``logging.getLogger(__name__)`` under ``contactsync.``) reach the same
JSON output with the invocation's context. Everyone logs ids and counts, never contact data.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(log_uncaught_exceptions=True)
metrics = Metrics()
tracer = Tracer()

__all__ = ["MetricUnit", "logger", "metrics", "tracer"]
