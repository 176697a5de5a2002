"""Prometheus metrics of one app, read from the ingest's and the consumer's counters at scrape time.

No global metric objects: each app has its own `CollectorRegistry` holding one `IngestCollector`,
so several apps in one process (tests, two ingest instances) never share or collide.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from cloud_ingest.ingest.consumer import ConsumerStats
from cloud_ingest.ingest.counters import IngestCounters
from cloud_ingest.telemetry.influx import InfluxCounters

PREFIX = "steward_ingest"


class IngestCollector(Collector):
    """Reads the counters through the given callables at each scrape (any may return `None`)."""

    def __init__(
        self,
        counters: Callable[[], IngestCounters | None],
        consumer: Callable[[], ConsumerStats | None],
        influx: Callable[[], InfluxCounters | None] | None = None,
        workers: Mapping[str, Callable[[], object | None]] | None = None,
    ) -> None:
        """Read counters through the callables at each scrape.

        `workers` maps a name to a callable giving a dataclass of counters (or `None`): each
        integer field becomes `steward_ingest_<name>_<field>_total`.
        """
        self._counters = counters
        self._consumer = consumer
        self._influx = influx
        self._workers = dict(workers or {})

    def collect(self) -> Iterator[Metric]:
        """The metrics now."""
        counters = self._counters()
        if counters is not None:
            yield from _ingest_metrics(counters)
        stats = self._consumer()
        if stats is not None:
            yield from _consumer_metrics(stats)
        influx = None if self._influx is None else self._influx()
        if influx is not None:
            yield from influx_metrics(influx)
        for name, read in self._workers.items():
            found = read()
            if found is not None:
                yield from _worker_counters(name, found)


def _worker_counters(name: str, counters: object) -> Iterator[Metric]:
    """Each integer field of the dataclass `counters` as a counter named after it."""
    for f in dataclasses.fields(counters):  # type: ignore[arg-type]
        value = getattr(counters, f.name)
        if isinstance(value, int) and not isinstance(value, bool):
            words = f.name.replace("_", " ")
            yield _counter(f"{name}_{f.name}", f"{name.replace('_', ' ')}: {words}.", value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


def _ingest_metrics(c: IngestCounters) -> Iterator[Metric]:
    yield _counter("messages", "Messages settled (stored, duplicate or rejected).", c.messages)
    yield _counter("batches", "Batches committed.", c.batches)
    yield _counter("envelopes", "Envelopes stored.", c.envelopes)
    yield _counter("readings", "Readings stored.", c.readings)
    yield _counter("alarm_events", "Alarm events stored.", c.alarm_events)
    yield _counter(
        "alarm_events_replayed", "Alarm events already stored (same seq).", c.alarm_events_replayed
    )
    yield _counter("alarm_instances_changed", "Alarm instances changed.", c.alarm_instances_changed)
    yield _counter("duplicates", "Envelopes whose batch id was already stored.", c.duplicates)
    yield _counter("status_updates", "Gateway status messages applied.", c.status_updates)
    yield _counter(
        "outdated_statuses",
        "Gateway statuses older than the one applied (a returning process's backlog).",
        c.outdated_statuses,
    )
    yield _counter("storage_failures", "Batches that could not be stored.", c.storage_failures)
    rejections = CounterMetricFamily(
        f"{PREFIX}_rejections", "Messages rejected, by reason.", labels=["reason"]
    )
    for reason, count in sorted(c.rejections.items()):
        rejections.add_metric([reason], count)
    yield rejections
    yield SummaryMetricFamily(
        f"{PREFIX}_write_seconds",
        "Time in the database transaction of committed batches.",
        count_value=c.batches,
        sum_value=c.write_seconds_total,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_write_seconds_max", "Longest batch transaction.", value=c.write_seconds_max
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_write_seconds_last", "Latest batch transaction.", value=c.write_seconds_last
    )


def _consumer_metrics(s: ConsumerStats) -> Iterator[Metric]:
    prefix = "consumer"
    yield _counter(f"{prefix}_received", "Messages delivered by the broker.", s.messages_received)
    yield _counter(f"{prefix}_acks", "Messages acknowledged to the broker.", s.acks)
    yield _counter(
        f"{prefix}_handler_failures", "Batches whose storage failed (retried).", s.handler_failures
    )
    yield _counter(f"{prefix}_abandoned", "Messages left to redelivery.", s.abandoned)
    yield _counter(f"{prefix}_reconnects", "Connections after the first.", s.reconnects)
    yield GaugeMetricFamily(
        f"{PREFIX}_{prefix}_connected", "1 while connected to the broker.", value=int(s.connected)
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_{prefix}_unacked", "Messages received and not yet acknowledged.", value=s.unacked
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_{prefix}_lag_seconds",
        "Age of the oldest unacknowledged message.",
        value=s.lag_s,
    )


def influx_metrics(c: InfluxCounters) -> Iterator[Metric]:
    """The Influx telemetry sink's counters (`steward_ingest_influx_*`)."""
    yield _counter("influx_points_written", "Points written to InfluxDB.", c.points_written)
    yield _counter(
        "influx_write_requests", "InfluxDB write requests that succeeded.", c.write_requests
    )
    yield _counter("influx_write_retries", "InfluxDB write requests retried.", c.write_retries)
    yield _counter(
        "influx_write_failures",
        "InfluxDB writes given up on (batch rolled back).",
        c.write_failures,
    )
    yield _counter(
        "influx_write_seconds", "Time spent building and writing points.", c.write_seconds
    )


def registry_for(collector: IngestCollector) -> CollectorRegistry:
    """A registry of its own holding `collector` (no process-wide default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`."""
    return generate_latest(registry)
