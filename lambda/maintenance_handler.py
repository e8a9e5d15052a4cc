"""Maintenance Lambda: the tasks of the reprocess and reconcile state machines.

Thin: it dispatches on ``event["action"]`` and shapes the answer; the rules
live in ``imgpipe.reprocess`` (docs/config-version.md, "Reprocess") and
``imgpipe.reconcile`` (docs/reconcile.md). Neither action sends anything: each
returns ``batches`` of ``SendMessageBatch`` entries, and the state machine
sends them to the resize queue through its SQS integration.

- ``{"action": "plan_reprocess", "Items": [{"key": k}, ...], "BatchInput": {"all": b, "force": b}}``
  answers ``{"listed", "skipped_current", "enqueue", "failed", "failures", "batches"}``;
- ``{"action": "reconcile", "next": <token or null>}`` answers
  ``{"reenqueued_pending", "reenqueued_stuck", "failed_stuck", "expired", "left_alone",
  "events_not_published", "batches", "next"}``; a record it marks failed gets its ``Image Failed``
  event on the resize function's bus (``EVENT_BUS_NAME``; off when empty); an event the bus
  refused after its retries is counted in the answer and as the ``EventsNotPublished`` metric
  (Powertools EMF, dimension ``service``: the alarm ``maintenance-events-not-published``);
- ``{"action": "summarize_reprocess", "MapRunArn": a, "ResultWriterDetails": {"Bucket": b, "Key": k}}``
  (the reprocess map's output) reads the run's results and answers the execution's output:
  ``{"listed", "skipped_current", "enqueued", "failed", "failed_batches", "not_started", "failures",
  "map_run_arn", "results": {"bucket", "manifest"}}`` (``imgpipe.reprocess_results``).

An unknown action or a malformed event raises ``BadRequest`` (the state
machine sees the error ``BadRequest``; its message names what was wrong);
throttling and 5xx raise ``TransientError``, which the state machine retries.
Settings are read once per cold start (``imgpipe.maintenance_config``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from imgpipe import aws, config_version, events, keys, reconcile, reprocess, reprocess_results, resizes
from imgpipe.errors import BadRequest, ConfigError
from imgpipe.maintenance_config import MaintenanceConfig, from_environment

logger = Logger()  # service: POWERTOOLS_SERVICE_NAME; level: LOG_LEVEL
metrics = Metrics()  # namespace: POWERTOOLS_METRICS_NAMESPACE; dimension service: POWERTOOLS_SERVICE_NAME


@functools.cache
def setup() -> tuple[MaintenanceConfig, reprocess.Deployment]:
    """The settings, and what a record is compared with: read once per cold start."""
    config = from_environment()
    secret = resizes.load_id_secret(aws.table(config.table_name))
    deployment = reprocess.Deployment(
        config_version.version(config.resize),
        config_version.outputs(config.resize),
        functools.partial(keys.id_for_key, secret=secret),
    )
    return config, deployment


def reset() -> None:
    """Forget the cold-start state (tests change the environment between cases)."""
    setup.cache_clear()


def plan_reprocess(event: dict[str, Any]) -> dict[str, Any]:
    config, deployment = setup()
    listed = reprocess.listed_keys(event.get("Items"))
    options = reprocess.Options.parse(event.get("BatchInput"))
    table, s3 = aws.table(config.table_name), aws.client("s3")
    plan = reprocess.plan(listed, options, deployment, s3=s3, table=table, bucket=config.uploads_bucket)
    answer = plan.answer()
    logger.info(
        "reprocess planned",
        extra={name: answer[name] for name in ("listed", "skipped_current", "enqueue", "failed")}
        | {"all": options.all, "force": options.force, "failures": answer["failures"][:20]},
    )
    return answer


def publish_event(entry: dict[str, Any]) -> None:
    """Send one completion event (a stuck record's ``Image Failed``), logged as the resize function does."""
    detail = json.loads(entry["Detail"])
    log = {"image_id": detail["image_id"], "detail_type": entry["DetailType"]}
    try:
        event_id = events.publish(aws.client("events"), entry, is_transient=aws.is_transient)
    except Exception as exc:
        code = getattr(exc, "code", type(exc).__name__)
        logger.error("event not published", extra={**log, "error_code": code, "error": str(exc)})
        raise
    logger.info("event published", extra={**log, "event_id": event_id, "event": events.loggable(detail)})


def run_reconcile(event: dict[str, Any]) -> dict[str, Any]:
    config, _ = setup()
    token = reconcile.parse_token(event.get("next"))
    table, s3 = aws.table(config.table_name), aws.client("s3")
    answer = reconcile.run(token, config, table=table, s3=s3, publish=publish_event).answer()
    logger.info("reconcile pass", extra={k: v for k, v in answer.items() if k != "batches"})
    if answer["events_not_published"]:
        # The resize function's metric, name and namespace, under this function's service: the
        # alarm maintenance-events-not-published (events.tf). Flushed here, not by a decorator:
        # a pass that lost no event writes no metric line.
        lost = answer["events_not_published"]
        metrics.add_metric(name="EventsNotPublished", unit=MetricUnit.Count, value=lost)
        metrics.flush_metrics()
    return answer


def summarize_reprocess(event: dict[str, Any]) -> dict[str, Any]:
    config, _ = setup()
    details = event.get("ResultWriterDetails")
    bucket = details.get("Bucket") if isinstance(details, dict) else None
    manifest_key = details.get("Key") if isinstance(details, dict) else None
    if not isinstance(manifest_key, str) or not manifest_key.endswith("/manifest.json"):
        raise BadRequest(f"ResultWriterDetails does not name a results manifest: {details!r:.200}")
    if bucket != config.resize.resized_bucket:
        raise BadRequest(f"the results are not in the resized bucket but in {bucket!r:.80}")
    summary = reprocess_results.read_run(aws.client("s3"), bucket, manifest_key)
    answer = summary.answer() | {
        "map_run_arn": event.get("MapRunArn"),
        "results": {"bucket": bucket, "manifest": manifest_key},
    }
    logger.info("reprocess summarized", extra={k: v for k, v in answer.items() if k != "failures"})
    return answer


ACTIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "plan_reprocess": plan_reprocess,
    "reconcile": run_reconcile,
    "summarize_reprocess": summarize_reprocess,
}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get("action") if isinstance(event, dict) else None
    run = ACTIONS.get(action) if isinstance(action, str) else None
    if run is None:
        known = ", ".join(sorted(ACTIONS))
        logger.error("unknown action", extra={"action": repr(action)[:80], "outcome": "bad_request"})
        raise BadRequest(f"unknown action {action!r:.40}; known: {known}")
    try:
        return run(event)
    except ConfigError as exc:
        logger.error("configuration error", extra={"outcome": "config_error", "error": str(exc)})
        raise
    except BadRequest as exc:
        logger.error("bad request", extra={"action": action, "outcome": "bad_request", "error": exc.message})
        raise
