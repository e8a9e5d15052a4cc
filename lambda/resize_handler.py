"""Resize Lambda: an SQS batch of S3 notifications in, renditions in the resized bucket out.

Thin: parse the event (``imgpipe.s3_events``), fetch the object, render with the
pure engine (``imgpipe.engine``), write the outputs and the table record (the
S3 and DynamoDB calls live in ``imgpipe.resizes``, the twin of
``imgpipe.uploads``; ``imgpipe.aws`` sorts their errors). Each SQS message
succeeds or fails on its own (``ReportBatchItemFailures``):

- transient trouble (throttling, 5xx, timeouts) fails just that message, and
  SQS delivers it again (then to the DLQ after the queue's maxReceiveCount);
- a permanent error (not an image, too many pixels, source gone, ...) is
  recorded in the table (``failed``, with its code), logged and counted, and
  the message succeeds: retrying cannot help;
- anything unexpected fails the message too, so it is retried; on its last
  receive (``ApproximateReceiveCount`` reaching the queue's maxReceiveCount,
  ``MAX_RECEIVE_COUNT``) the record is marked ``failed`` with code
  ``internal`` first, so a dead-lettered message always leaves a reason.

A record that already shows this deployment's rendition-config version, done
with every configured output for the event's version, costs a read and no
render: the outcome is ``current`` (``imgpipe.config_version``,
docs/config-version.md), unless the message asks to ``force``.

``ObjectRemoved`` events make the image follow its original
(``process_removal``): when the version the record holds is deleted, or a
newer delete marker hides it, the renditions are deleted and the record
becomes a ``deleted`` tombstone (docs/ordering.md, "Deletes").

Each render runs in a child process with a deadline and a memory ceiling
(``imgpipe.sandbox``, ``imgpipe.timebox``): a slow or huge image fails alone,
and a message that starts too late is handed back to SQS untouched. Public
error messages (the record's, which the API returns) name no bucket, key,
account or path; the logs keep the detail.

Settings are read once per cold start (``imgpipe.resize_config``); a bad value
fails every invocation loudly with the variable's name.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from imgpipe import (
    aws,
    cdn,
    config_version,
    events,
    keys,
    limits,
    ordering,
    records,
    resizes,
    s3_events,
    sandbox,
)
from imgpipe.engine import EngineOptions, RenderResult, render
from imgpipe.errors import (
    ConfigError,
    OutOfTime,
    PermanentError,
    RenderTimeout,
    TooManyPixels,
    TransientError,
    public_message,
)
from imgpipe.resize_config import ResizeConfig, from_env
from imgpipe.timebox import TimeBox

logger = Logger()  # service: POWERTOOLS_SERVICE_NAME; level: LOG_LEVEL
metrics = Metrics()  # namespace: POWERTOOLS_METRICS_NAMESPACE
processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)

# Events the record says must not change the image (docs/ordering.md).
_PASSED_OVER = {
    ordering.SUPERSEDED: ("info", "event superseded by a newer version", "ImagesSuperseded"),
    ordering.REFUSED: ("warning", "object refused: its image is bound to another original", "ImagesRefused"),
    ordering.DUPLICATE: ("info", "duplicate event: this version is already done", "DuplicateEvents"),
    ordering.UNAFFECTED: ("info", "delete of a version the image does not show", "DeletesUnaffected"),
    config_version.CURRENT: ("info", "image already current: nothing to render", "ImagesSkippedCurrent"),
    config_version.KEPT: ("warning", "re-render failed: the image keeps its renditions", "RerendersFailed"),
}

INTERNAL_MESSAGE = "the image could not be processed after every attempt; the error was logged"
# The invocation's context and time box, and whether this message is on its last receive.
_context: contextvars.ContextVar[Any] = contextvars.ContextVar("context", default=None)
_timebox: contextvars.ContextVar[TimeBox | None] = contextvars.ContextVar("timebox", default=None)
_last_receive: contextvars.ContextVar[bool] = contextvars.ContextVar("last_receive", default=False)


@dataclass(frozen=True)
class Setup:
    """What a cold start prepares once: the settings, the engine's options, the id secret,
    and the rendition-config version with the outputs it makes."""

    config: ResizeConfig
    options: EngineOptions
    renderer: sandbox.Renderer
    id_secret: bytes = field(repr=False)
    config_version: str = ""
    outputs: frozenset[tuple[str, str]] = frozenset()

    def image_id(self, key: str) -> str:
        """The image id of an uploads-bucket key in this deployment (``keys.id_for_key``)."""
        return keys.id_for_key(key, self.id_secret)

    def shows_current(self, record: dict[str, Any] | None) -> bool:
        """The record is done under this config version with every output (the skip rule)."""
        return config_version.shows_current(record, self.config_version, self.outputs)


@functools.cache
def setup() -> Setup:
    config = from_env()
    budget = limits.memory_budget(config.memory_mb)
    options = EngineOptions(
        config.max_pixels,
        config.background,
        _watermark(config),
        memory_budget=budget,
        avif_speed=config.avif_speed,
        max_animation_pixels=config.max_animation_pixels,
        threads=limits.engine_threads(config.memory_mb),
    )
    secret = resizes.load_id_secret(_table(config))
    renderer = sandbox.Renderer(config.memory_mb)
    return Setup(
        config, options, renderer, secret, config_version.version(config), config_version.outputs(config)
    )


def image_id(key: str) -> str:
    """The image id of an uploads-bucket key in this deployment."""
    return setup().image_id(key)


def reset() -> None:
    """Forget the cold-start state (tests change the environment between cases)."""
    if setup.cache_info().currsize:
        setup().renderer.close()
    setup.cache_clear()


def _s3() -> Any:
    return aws.client("s3")


def _table(config: ResizeConfig) -> Any:
    return aws.table(config.table_name) if config.table_name else None


def _watermark(config: ResizeConfig):
    if not config.watermark_enabled:
        return None
    from imgpipe.engine import load_mark
    from imgpipe.watermark import Watermark

    common = {
        "position": config.watermark_position,
        "opacity": config.watermark_opacity,
        "margin": config.watermark_margin,
        "scale": config.watermark_scale,
        "min_size": config.watermark_min_size,
    }
    if config.watermark_text:
        return Watermark(text=config.watermark_text, **common)
    data = resizes.fetch_watermark(_s3(), config.uploads_bucket, config.watermark_key)
    try:
        image = load_mark(data)
    except PermanentError as exc:
        raise ConfigError(
            f"WATERMARK_KEY: {config.watermark_key!r} is not a usable image ({exc.code})"
        ) from None
    return Watermark(image=image, **common)


def _passed_over(reason: str, started: float, log: dict[str, Any], **fields: Any) -> str:
    """Log and count an event that must not change its image; returns the outcome."""
    level, message, metric = _PASSED_OVER[reason]
    _report(level, message, metric, started, log, outcome=reason, **fields)
    return reason


def _record_failure(
    job: _Job, original: dict[str, Any], exc: PermanentError
) -> tuple[str | None, dict[str, Any]]:
    """Record a permanent failure; the outcome when the record refuses it, and the record as it was."""
    bucket, made_by = job.setup.config.resized_bucket, job.setup.config_version
    message = public_message(exc.message)
    try:
        was = resizes.record_failed(
            _s3(), bucket, job.table, job.image_id, original, exc.code, message, job.source, made_by
        )
    except records.Conflict as conflict:
        return job.refused(conflict.record), {}
    return None, was


@dataclass
class _Job:
    """One object event on its way through process_object: what each step adds to the record and log."""

    obj: s3_events.S3Object
    setup: Setup
    image_id: str
    table: Any
    source: ordering.Source
    original: dict[str, Any]
    log: dict[str, Any]
    options: s3_events.Options = s3_events.NO_OPTIONS
    started: float = field(default_factory=time.perf_counter)
    lap: float = field(default_factory=time.perf_counter)
    fetched: bool = False
    rerender: bool = False  # this version is done already: render again, and keep it done meanwhile

    @classmethod
    def of(cls, obj: s3_events.S3Object, setup: Setup, options: s3_events.Options) -> _Job:
        image_id = setup.image_id(obj.key)
        log = {"key": obj.key, "image_id": image_id, "version_id": obj.version_id, "event_size": obj.size}
        return cls(
            obj=obj,
            setup=setup,
            image_id=image_id,
            table=_table(setup.config),
            source=ordering.Source.of(obj.key, obj.sequencer, obj.version_id),
            original={"key": obj.key, "size": obj.size, "version_id": obj.version_id},
            log={**log, "sequencer": obj.sequencer, **options.logged()},
            options=options,
        )

    def verdict(self, record: dict[str, Any] | None) -> str | None:
        """Why this event must not change ``record``, or ``None`` to render (docs/ordering.md).

        A reprocess speaks for the record's version only, with its sequencer.
        A version already done is ``current`` when the record shows this config
        version with every output and the message does not force; otherwise it
        is rendered again (``rerender``).
        """
        if self.options.reprocess:
            source = ordering.reprocessed(record, self.source)
            if source is None:
                return ordering.SUPERSEDED
            self.source = source
        reason = ordering.verdict(record, self.source)
        if reason != ordering.DUPLICATE:
            return reason
        if self.setup.shows_current(record) and not self.options.force:
            return config_version.CURRENT
        self.rerender = True
        return None

    def refused(self, record: dict[str, Any] | None) -> str:
        """The outcome when ``record`` refused this event's write."""
        reason = ordering.verdict(record, self.source) or ordering.SUPERSEDED
        if reason != ordering.DUPLICATE:  # only a failure is refused for a version already done
            return reason
        if self.rerender:
            return config_version.KEPT
        return config_version.CURRENT if self.setup.shows_current(record) else ordering.DUPLICATE

    def stage(self, name: str) -> None:
        """Note how long the step just ended took: ``stages_ms`` in the image's log line."""
        now = time.perf_counter()
        self.log.setdefault("stages_ms", {})[name] = round((now - self.lap) * 1000, 1)
        self.lap = now

    def known_original(self) -> dict[str, Any]:
        """What the record should say of the original: this event's, merged over the record's if unread."""
        return (
            self.original
            if self.fetched
            else resizes.known_original(self.table, self.image_id, self.original)
        )


def process_object(
    obj: s3_events.S3Object, setup: Setup, options: s3_events.Options = s3_events.NO_OPTIONS
) -> str:
    """Render one version of an object; returns the outcome, raises TransientError to retry.

    The outcome is ``done`` or ``failed``; ``skipped`` for a folder marker;
    ``current`` when the record already shows this config version
    (docs/config-version.md); ``kept`` when a re-render of a done version
    fails; or, when the image's record says this event must not change it
    (docs/ordering.md), ``superseded``, ``refused`` or ``duplicate``.
    """
    job = _Job.of(obj, setup, options)
    if obj.folder_marker:
        logger.info(
            "event skipped", extra={**job.log, "outcome": "skipped", "reason": "an S3 console folder"}
        )
        return "skipped"
    try:
        return _render_and_store(job)
    except records.Conflict as conflict:
        return _passed_over(job.refused(conflict.record), job.started, job.log)
    except PermanentError as exc:
        return _failed(job, exc)
    except Exception as exc:
        _will_retry(job, exc)
        raise


def _render_and_store(job: _Job) -> str:
    """Read the record, fetch the version, render, write the renditions, commit: the ordinary path."""
    config, table, image_id, s3 = job.setup.config, job.table, job.image_id, _s3()
    made_by, bucket = job.setup.config_version, config.resized_bucket
    if table is not None:
        reason = job.verdict(resizes.read_record(table, image_id))
        if reason:
            return _passed_over(reason, job.started, job.log)
        job.stage("read_record")
    response, version, job.source = resizes.get_version(s3, job.obj, job.source)
    data = resizes.read_version(job.obj, response, job.original, version, config.max_source_bytes)
    job.fetched = True
    job.log["bytes"] = len(data)
    job.stage("fetch")
    if table is not None and not job.rerender:  # a re-rendered image stays done meanwhile
        resizes.record_processing(table, image_id, job.original, job.source, made_by)
        job.stage("record_processing")
    result = _render(data, job.setup)
    del data
    job.stage("render")
    job.original.update(width=result.width, height=result.height, format=result.source_format)
    renditions = resizes.store_renditions(s3, bucket, image_id, job.obj, result, version, job.source, made_by)
    job.stage("store")
    was = None
    if table is not None:
        was = resizes.record_done(s3, bucket, table, image_id, job.original, renditions, job.source, made_by)
        job.stage("record_done")
    outcome = _processed(job.started, job.log, result, renditions, job.original["size"])
    _announce(job, was, job.original, renditions=renditions)
    return outcome


def _failed(job: _Job, exc: PermanentError) -> str:
    """Record and report a permanent failure; the outcome (another version may own the record)."""
    fields = {"error_code": exc.code, "error": exc.message, "error_detail": exc.detail}
    original, was = job.original, None
    if job.table is not None:
        original = job.known_original()
        reason, was = _record_failure(job, original, exc)
        if reason == config_version.KEPT:
            return _passed_over(reason, job.started, job.log, **fields)
        if reason:
            return _passed_over(reason, job.started, job.log)
    _report("warning", "image failed", "ImagesFailed", job.started, job.log, outcome="failed", **fields)
    _announce(job, was, original, error={"code": exc.code, "message": public_message(exc.message)})
    return "failed"


def _announce(
    job: _Job,
    was: dict[str, Any] | None,
    original: dict[str, Any],
    renditions: Sequence[dict[str, Any]] = (),
    error: dict[str, str] | None = None,
) -> None:
    """Publish the image's completion event (docs/events.md), once: a write that found the record
    already so (``was``, a duplicate delivery's) publishes nothing. Never raises: the renditions
    and the record are written whatever happens to the event."""
    config, status = job.setup.config, "failed" if error else "done"
    made_by = job.setup.config_version
    if not config.event_bus_name or records.already(was, status, job.source, made_by):
        return
    log = {**job.log, "detail_type": events.DETAIL_TYPES[status]}
    try:
        url = cdn.rendition_urls(
            _s3(), config.resized_bucket, config.cdn_base_url, config.rendition_url_expiry_seconds
        )
        listed = events.renditions(renditions, url)
        detail = events.detail(job.image_id, status, job.obj.bucket, original, made_by, listed, error)
        entry = events.entry(config.event_bus_name, config.event_source, detail)
        event_id = events.publish(_events(), entry, is_transient=aws.is_transient)
    except Exception as exc:  # logged and counted (alarm: events-not-published), never retried by SQS
        metrics.add_metric(name="EventsNotPublished", unit=MetricUnit.Count, value=1)
        logger.error(
            "event not published",
            extra={**log, "error_code": getattr(exc, "code", type(exc).__name__), "error": str(exc)},
        )
        return
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=1)
    logger.info("event published", extra={**log, "event_id": event_id, "event": events.loggable(detail)})


def _events() -> Any:
    return aws.client("events")


def _will_retry(job: _Job, exc: Exception) -> None:
    """Report a transient or unexpected error (the message is retried); on its last receive, record it."""
    if isinstance(exc, TransientError):
        fields = {"error_code": exc.code, "error": exc.message, "error_detail": exc.detail}
        _report(
            "warning",
            "image will be retried",
            "ImagesRetried",
            job.started,
            job.log,
            outcome="retry",
            **fields,
        )
    else:
        error = type(exc).__name__
        _report(
            "exception", "image errored", "ImagesErrored", job.started, job.log, outcome="error", error=error
        )
    _fail_on_last_receive(job)


def process_removal(obj: s3_events.S3Object, setup: Setup) -> str:
    """Follow a deleted original: tombstone the record and delete its renditions (docs/ordering.md).

    The outcome is ``deleted``; or, when the removal must not change the image,
    ``superseded``, ``refused``, ``duplicate`` or ``unaffected``. Raises
    ``TransientError`` to retry. In an unversioned bucket (no version id) a
    delete removes the object itself, so it counts like a delete marker.
    """
    config = setup.config
    started = time.perf_counter()
    image_id = setup.image_id(obj.key)
    table = _table(config)
    log = {"key": obj.key, "image_id": image_id, "version_id": obj.version_id, "sequencer": obj.sequencer}
    if table is None:
        logger.info("event skipped", extra={**log, "outcome": "skipped", "reason": "no table"})
        return "skipped"
    source = ordering.Source.of(obj.key, obj.sequencer, obj.version_id)
    marker = obj.delete_marker or source.version is None
    try:
        reason = ordering.removal(resizes.read_record(table, image_id), source, marker)
        if reason:
            return _passed_over(reason, started, log)
        listed = resizes.record_deleted(table, image_id, source, marker)
    except records.Conflict as conflict:
        reason = ordering.removal(conflict.record, source, marker) or ordering.SUPERSEDED
        return _passed_over(reason, started, log)
    left = [r["key"] for r in listed if r.get("key")]
    resizes.delete_renditions(_s3(), config.resized_bucket, left, "the original was deleted")
    _report("info", "image deleted", "ImagesDeleted", started, log, outcome="deleted", renditions=len(listed))
    return "deleted"


def _processed(
    started: float, log: dict[str, Any], result: RenderResult, renditions: list[dict[str, Any]], size: int
) -> str:
    """Log and count a done image."""
    output_bytes = sum(r["bytes"] for r in renditions)
    duration = _report(
        "info",
        "image processed",
        "ImagesProcessed",
        started,
        log,
        outcome="done",
        format=result.source_format,
        width=result.width,
        height=result.height,
        outputs=len(renditions),
        output_bytes=output_bytes,
    )
    metrics.add_metric(name="SourceBytes", unit=MetricUnit.Bytes, value=size)
    metrics.add_metric(name="OutputBytes", unit=MetricUnit.Bytes, value=output_bytes)
    metrics.add_metric(name="ProcessingMs", unit=MetricUnit.Milliseconds, value=duration)
    return "done"


def _fail_on_last_receive(job: _Job) -> None:
    """On the message's last receive, record ``failed``/``internal``: the DLQ will get it, not us again.

    Conditional like every record write: a newer version's record is left alone.
    """
    if job.table is None or not _last_receive.get():
        return
    try:
        merged = job.known_original()
        message, made_by = INTERNAL_MESSAGE, job.setup.config_version
        was = records.mark_failed(
            job.table, job.image_id, merged, "internal", message, source=job.source, config_version=made_by
        )
    except records.Conflict:
        logger.info("a newer version owns the record: nothing to record", extra={"image_id": job.image_id})
        return
    except Exception:  # the original exception is the one to raise; this one is logged
        logger.exception("could not record the failure", extra={"image_id": job.image_id})
        return
    metrics.add_metric(name="ImagesFailedInternal", unit=MetricUnit.Count, value=1)
    _announce(job, was, merged, error={"code": "internal", "message": INTERNAL_MESSAGE})


def _render(data: bytes, setup: Setup) -> RenderResult:
    """The engine's render in a child process: killed at its deadline, refused past its memory."""
    config = setup.config
    context, box = _context.get(), _timebox.get()
    remaining = context.get_remaining_time_in_millis() if context is not None else 60_000
    seconds, whole = (box or TimeBox.from_remaining(remaining)).render_seconds(remaining)
    try:
        return setup.renderer.call(render, data, config.renditions, setup.options, seconds=seconds)
    except sandbox.Timeout:
        if whole:
            message = f"rendering took longer than {seconds:.0f} s, the limit for one image"
            raise RenderTimeout(message) from None
        raise OutOfTime(f"the invocation had {seconds:.1f} s left for rendering; retried with more") from None
    except MemoryError:
        raise TooManyPixels(
            f"decoding needs more memory than the function has ({config.memory_mb} MB)"
        ) from None


def _report(
    level: str, message: str, metric: str, started: float, log: dict[str, Any], **fields: Any
) -> float:
    """The one log line and the outcome's count metric for an image; returns its duration in ms."""
    duration = round((time.perf_counter() - started) * 1000, 1)
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    getattr(logger, level)(message, extra={**log, **fields, "duration_ms": duration})
    return duration


def record_handler(record, lambda_context: Any = None) -> None:
    """One SQS message: every object event in it, or an exception to have it retried."""
    prepared = setup()
    _begin_message(record, lambda_context, prepared.config)
    message = _parse_message(record)
    if message is None:
        return
    if not message.objects:
        logger.info("s3:TestEvent skipped", extra={"message_id": record.message_id, "outcome": "skipped"})
    for obj in message.objects:
        reason = _skip_reason(obj, prepared.config)
        if reason:
            logger.info("event skipped", extra={"key": obj.key, "outcome": "skipped", "reason": reason})
        elif obj.created:
            process_object(obj, prepared, message.options)
        else:
            process_removal(obj, prepared)


def _begin_message(record, lambda_context: Any, config: ResizeConfig) -> None:
    """Note the invocation and whether this is the message's last receive; hand it back when too late."""
    box = _timebox.get()
    received = int(record.attributes.approximate_receive_count or 1)
    last = config.max_receive_count is not None and received >= config.max_receive_count
    _context.set(lambda_context)
    _last_receive.set(last)
    late = box is not None and lambda_context is not None and not last
    if late and not box.can_start(lambda_context.get_remaining_time_in_millis()):
        metrics.add_metric(name="MessagesHandedBack", unit=MetricUnit.Count, value=1)
        logger.warning("message handed back", extra={"message_id": record.message_id, "outcome": "retry"})
        raise OutOfTime("too little time left in this invocation; SQS delivers the message again")


def _parse_message(record) -> s3_events.Message | None:
    """The S3 events in the message body, or ``None`` (logged and counted) when it is not one."""
    try:
        return s3_events.parse_message(record.body)
    except PermanentError as exc:
        metrics.add_metric(name="BadMessages", unit=MetricUnit.Count, value=1)
        fields = {"message_id": record.message_id, "outcome": "dropped", "error_code": exc.code}
        logger.warning("message dropped", extra={**fields, "error": exc.message})
        return None


def _skip_reason(obj: s3_events.S3Object, config: ResizeConfig) -> str | None:
    """Why this object event changes nothing, or ``None`` to process it."""
    if not (obj.created or obj.removed):
        return f"event {obj.event_name} is neither ObjectCreated nor ObjectRemoved"
    if config.watermark_key and obj.key == config.watermark_key and obj.bucket == config.uploads_bucket:
        return "the watermark image itself"
    if obj.removed and obj.key.endswith("/"):
        return "an S3 console folder"
    return None


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        setup()  # configuration errors fail the whole invocation, loudly, before any message
    except ConfigError as exc:
        metrics.add_metric(name="ConfigErrors", unit=MetricUnit.Count, value=1)
        logger.error("configuration error", extra={"outcome": "config_error", "error": str(exc)})
        raise
    metrics.add_metric(name="MessagesReceived", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    _timebox.set(TimeBox.from_remaining(context.get_remaining_time_in_millis()))
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
