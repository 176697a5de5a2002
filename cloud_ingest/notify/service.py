"""The notification worker as the application runs it: built from the settings, started, stopped."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.clock import Clock, SystemClock
from cloud_ingest.infra.config import Settings
from cloud_ingest.notify.channels import SmtpSettings
from cloud_ingest.notify.worker import DeliveryWorker, WorkerSettings


def worker_settings(settings: Settings) -> WorkerSettings:
    """The worker's settings from the application's (`notify_*`)."""
    return WorkerSettings(
        interval=timedelta(seconds=settings.notify_interval_s),
        max_attempts=settings.notify_max_attempts,
        backoff=timedelta(seconds=settings.notify_backoff_s),
        backoff_max=timedelta(
            seconds=max(settings.notify_backoff_max_s, settings.notify_backoff_s)
        ),
        send_timeout=timedelta(seconds=settings.notify_send_timeout_s),
        lease=timedelta(seconds=max(120.0, 2 * settings.notify_send_timeout_s)),
    )


def smtp_settings(settings: Settings) -> SmtpSettings:
    """The default SMTP server of e-mail channels."""
    return SmtpSettings(
        host=settings.notify_smtp_host,
        port=settings.notify_smtp_port,
        sender=settings.notify_smtp_sender,
        username=settings.notify_smtp_username,
        password=settings.notify_smtp_password,
        starttls=settings.notify_smtp_starttls,
        timeout_s=settings.notify_send_timeout_s,
    )


def start_worker(
    settings: Settings, engine: AsyncEngine, clock: Clock | None = None
) -> DeliveryWorker | None:
    """The started delivery worker, or None when `notify_worker` is off."""
    if not settings.notify_worker:
        return None
    worker = DeliveryWorker(
        engine,
        worker_settings(settings),
        now=(clock or SystemClock()).now,
        smtp=smtp_settings(settings),
    )
    worker.start()
    return worker
