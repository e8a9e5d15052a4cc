"""The maintenance function's settings, read once at cold start from its environment.

The maintenance function (``maintenance_handler``) plans reprocess batches and
runs reconcile passes (docs/reconcile.md). It carries the resize function's
settings too (``imgpipe.resize_config``), so that it computes the same
rendition-config version and knows which outputs make an image current.
Each numeric setting's default and bounds are declared once, below, through
the one environment reader (``imgpipe.settings``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from imgpipe import settings
from imgpipe.resize_config import ResizeConfig, from_env
from imgpipe.settings import Integer
from imgpipe.upload_config import PRESIGN_POST_EXPIRY_SECONDS

# SQS keeps a message at most 14 days: nothing waits on the queue longer than that.
_FORTNIGHT = 14 * 86400
# A `pending` record this old never got its S3 event (docs/reconcile.md).
RECONCILE_PENDING_AFTER_S = Integer("RECONCILE_PENDING_AFTER_S", 900, 1, _FORTNIGHT)
# A `processing` record this old outlived every delivery of its message: Terraform passes the
# resize queue's visibility timeout x its maxReceiveCount; the default is that product for the
# module's defaults (6 x 60 s x 5).
RECONCILE_STUCK_AFTER_S = Integer("RECONCILE_STUCK_AFTER_S", 1800, 1, 43_200 * 1000)
# Records read per status by one reconcile invocation (one Query page of the index, one BatchGetItem).
RECONCILE_PAGE_SIZE = Integer("RECONCILE_PAGE_SIZE", 100, 1, 100)


@dataclass(frozen=True)
class MaintenanceConfig:
    resize: ResizeConfig
    uploads_bucket: str
    table_name: str
    pending_after_s: int = RECONCILE_PENDING_AFTER_S.default
    stuck_after_s: int = RECONCILE_STUCK_AFTER_S.default
    page_size: int = RECONCILE_PAGE_SIZE.default
    # The upload API's form lifetime: an `awaiting_upload` record older than this may have expired
    # (the conditional write checks the record's own expiry).
    presign_expiry_s: int = PRESIGN_POST_EXPIRY_SECONDS.default


def from_environment(env: Mapping[str, str] | None = None) -> MaintenanceConfig:
    """Read and validate the settings (``os.environ`` by default); ``ConfigError`` names a bad one."""
    env = os.environ if env is None else env
    return MaintenanceConfig(
        resize=from_env(env),
        uploads_bucket=settings.required(env, "UPLOADS_BUCKET"),
        table_name=settings.required(env, "TABLE_NAME"),
        pending_after_s=RECONCILE_PENDING_AFTER_S.read(env),
        stuck_after_s=RECONCILE_STUCK_AFTER_S.read(env),
        page_size=RECONCILE_PAGE_SIZE.read(env),
        presign_expiry_s=PRESIGN_POST_EXPIRY_SECONDS.read(env),
    )
