"""Logging and metrics shared by the handlers (Powertools Logger and Metrics).

The service name and namespace come from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, set per function by the stack.
"""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from feedback_loop.lake_sink import LakeBatchOutcome

logger = Logger()
metrics = Metrics()

__all__ = ["MetricUnit", "logger", "metrics", "report_lake_batch"]


def report_lake_batch(outcome: LakeBatchOutcome, written_metric: str) -> None:
    """Log what a lake writer rejected or could not write, and count what it wrote."""
    for item_id, error in outcome.rejected:
        logger.warning(
            "Rejected lake input",
            extra={"item": item_id, "reason": error.reason, "detail": error.detail},
        )
    for failure in outcome.errors:
        logger.error("Lake write failed; its items will be retried", extra={"error": failure})
    if outcome.rejected:
        metrics.add_metric(
            name="RejectedMessages", unit=MetricUnit.Count, value=len(outcome.rejected)
        )
    metrics.add_metric(name=written_metric, unit=MetricUnit.Count, value=len(outcome.written))
