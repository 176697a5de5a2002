"""The InfluxDB v2 telemetry sink: readings as line protocol through `InfluxDBClientAsync`.

`InfluxTelemetry` implements `TelemetrySink`. Each reading becomes one point:

- measurement: the metric's catalog name (`temperature_c`);
- tags: `gateway`, `device`, `kind` and `location` (the device's kind and site path from the
  `devices` table), `quality` (`good`, `out_of_range`, `suspect`), `codec` (the codec id) and
  `derived_from` (a catalog name, only on derived readings). A tag whose value is empty is left
  out, as line protocol requires. Every tag has a bounded set of values (devices, sites, three
  qualities, the codecs and metrics the fleet runs), so a series is a device's metric at one place
  with one codec and quality;
- field `value`: a float. A boolean is written as `1.0` (true) or `0.0` (false), as the SQL
  `readings.value` column holds it, so mean/min/max/count work on every metric alike and a reader
  serves a boolean's `last` as `last != 0`;
- time: the reading's time in microseconds (`precision=us`).

The device's kind and location are read through the batch's own connection (the service has
registered new devices in the same transaction before calling the sink) and cached per process
for `device_ttl_s` (60 s), so a changed location shows up within a minute.

Idempotency: a point is identified by its measurement, tag set and time, and InfluxDB keeps one
point per identity, so writing a redelivered batch again overwrites what the first attempt wrote.
VictoriaMetrics keeps duplicate samples unless it runs with `-dedup.minScrapeInterval=1ms`, which
gives it the same property; run it so when it is the store. A device whose location changed
between a failed attempt and its redelivery gets the redelivered points in its new series.

Writes go out in chunks of `chunk_lines` lines (5,000), a few requests at a time; a chunk answered
with a 5xx or 429, or lost to a connection error or timeout, is retried with exponential backoff
up to `attempts` times in all; then (or at once on another 4xx) `InfluxWriteError` is raised, so
the batch is rolled back and the broker redelivers it. `InfluxCounters` counts points written,
requests, retries, failures and seconds spent writing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, cast

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api_async import WriteApiAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_ingest.infra.schema import devices
from core.metrics import Metric, Quality
from core.types import Envelope

log = logging.getLogger(__name__)

CHUNK_LINES: Final = 5_000
"""Lines per write request."""
CONCURRENCY: Final = 4
"""Write requests of one batch in flight at once."""
DEVICE_TTL_S: Final = 60.0
"""How long a device's kind and location are cached."""
_IN_CHUNK: Final = 500
_MICROSECONDS: Final = cast("WritePrecision", WritePrecision.US)
_TOO_MANY_REQUESTS: Final = 429
_SERVER_ERROR: Final = 500

_TAG_ESCAPES: Final = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\", "\n": r"\ ", "\r": r"\ "}
)
"""Line protocol escapes of a tag key or value (a newline cannot be written: it becomes a space)."""
_MEASUREMENT: Final = {m: m.value.translate(_TAG_ESCAPES) for m in Metric}
_DERIVED: Final = {m: f",derived_from={m.value.translate(_TAG_ESCAPES)}" for m in Metric}
_QUALITY: Final = {q: f",quality={q.value}" for q in Quality}


class InfluxWriteError(RuntimeError):
    """A chunk of points could not be written (after the retries, or refused by the server)."""


@dataclass(slots=True)
class InfluxCounters:
    """What the sink has done since the process started."""

    points_written: int = 0
    write_requests: int = 0
    """Requests that succeeded."""
    write_retries: int = 0
    """Requests repeated after a 5xx, 429, connection error or timeout."""
    write_failures: int = 0
    """Chunks given up on (each made a batch roll back)."""
    write_seconds: float = 0.0
    """Time spent in `write` (building and sending), failed writes included."""


def escape_tag(text: str) -> str:
    """`text` escaped as a line protocol tag value."""
    return text.translate(_TAG_ESCAPES)


class InfluxTelemetry:
    """Writes readings to an InfluxDB v2 bucket (see the module docstring).

    Args:
        client: the async client (the sink does not close it).
        bucket: the bucket written to.
        org: the organisation (InfluxDB 2 needs it; VictoriaMetrics ignores it).
        chunk_lines: lines per request.
        attempts: tries per chunk before giving up (at least 1).
        backoff_s: the first retry's delay; each further retry doubles it (with jitter).
        backoff_max_s: the longest delay between tries.
        device_ttl_s: how long a device's kind and location are cached.
        clock: monotonic seconds (for the cache's expiry).
    """

    def __init__(
        self,
        client: InfluxDBClientAsync,
        *,
        bucket: str,
        org: str = "",
        chunk_lines: int = CHUNK_LINES,
        attempts: int = 4,
        backoff_s: float = 0.2,
        backoff_max_s: float = 5.0,
        device_ttl_s: float = DEVICE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if chunk_lines < 1 or attempts < 1:
            raise ValueError("chunk_lines and attempts must be at least 1")
        self._write_api: WriteApiAsync = client.write_api()
        self.bucket = bucket
        self.org = org
        self.chunk_lines = chunk_lines
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.device_ttl_s = device_ttl_s
        self._clock = clock
        self._devices: dict[str, tuple[float, str]] = {}
        """device id -> (expiry, its `kind` and `location` tags as line protocol)."""
        self._codecs: dict[str, str] = {"": ""}
        self.counters = InfluxCounters()

    async def write(self, conn: AsyncConnection, envelopes: Sequence[Envelope]) -> int:
        """Write every reading of `envelopes`; return how many, or raise `InfluxWriteError`."""
        started = time.perf_counter()
        try:
            ids = {r.device_id for e in envelopes for r in e.readings}
            tags = await self._device_tags(conn, ids)
            lines = self.lines(envelopes, tags)
            if lines:
                await self._send(lines)
            self.counters.points_written += len(lines)
            return len(lines)
        finally:
            self.counters.write_seconds += time.perf_counter() - started

    def lines(self, envelopes: Iterable[Envelope], device_tags: dict[str, str]) -> list[str]:
        """The line protocol of the readings of `envelopes`, one line per reading.

        `device_tags` maps a device id to its `kind`/`location` tags (`,kind=...,location=...`,
        or less); a device missing from it gets neither.
        """
        measurement, derived_tag, quality_tag = _MEASUREMENT, _DERIVED, _QUALITY
        codec_tag = self._codecs
        out: list[str] = []
        append = out.append
        for envelope in envelopes:
            gateway = ",gateway=" + escape_tag(envelope.gateway_id) if envelope.gateway_id else ""
            series: dict[str, str] = {}  # device id -> its device, gateway, kind, location tags
            for r in envelope.readings:
                codec = codec_tag.get(r.codec_id)
                if codec is None:
                    codec = codec_tag[r.codec_id] = ",codec=" + escape_tag(r.codec_id)
                device = r.device_id
                tags = series.get(device)
                if tags is None:
                    tags = series[device] = (
                        f",device={escape_tag(device)}{gateway}{device_tags.get(device, '')}"
                    )
                value = r.value
                ts = r.ts
                if ts.tzinfo is None:
                    raise ValueError(f"naive reading time {ts!r}: times must carry an offset")
                append(
                    f"{measurement[r.metric]}{codec}"
                    f"{'' if r.derived_from is None else derived_tag[r.derived_from]}"
                    f"{tags}{quality_tag[r.quality]} value="
                    f"{('1' if value else '0') if value.__class__ is bool else repr(float(value))}"
                    f" {round(ts.timestamp() * 1_000_000)}"
                )
        return out

    async def _device_tags(self, conn: AsyncConnection, ids: set[str]) -> dict[str, str]:
        """`kind`/`location` tags of the devices `ids`, from the cache or the `devices` table."""
        now = self._clock()
        cache = self._devices
        found: dict[str, str] = {}
        missing: list[str] = []
        for device in ids:
            hit = cache.get(device)
            if hit is not None and hit[0] > now:
                found[device] = hit[1]
            else:
                missing.append(device)
        if not missing:
            return found
        missing.sort()
        expiry = now + self.device_ttl_s
        t = devices.c
        for start in range(0, len(missing), _IN_CHUNK):
            chunk = missing[start : start + _IN_CHUNK]
            query = select(t.id, t.kind, t.location).where(t.id.in_(chunk))
            for device, kind, location in await conn.execute(query):
                tags = (f",kind={escape_tag(kind)}" if kind else "") + (
                    f",location={escape_tag(location)}" if location else ""
                )
                found[device] = tags
                cache[device] = (expiry, tags)
        return found

    async def _send(self, lines: list[str]) -> None:
        """Write `lines` in chunks, `CONCURRENCY` requests at a time."""
        size = self.chunk_lines
        bodies = ["\n".join(lines[i : i + size]).encode() for i in range(0, len(lines), size)]
        if len(bodies) == 1:
            await self._write_chunk(bodies[0])
            return
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(body: bytes) -> None:
            async with gate:
                await self._write_chunk(body)

        try:
            async with asyncio.TaskGroup() as group:
                for body in bodies:
                    group.create_task(one(body))
        except* InfluxWriteError as failed:
            raise failed.exceptions[0] from None

    async def _write_chunk(self, body: bytes) -> None:
        """One request, retried on 5xx/429/connection errors; `InfluxWriteError` when given up."""
        c = self.counters
        for attempt in range(1, self.attempts + 1):
            try:
                await self._write_api.write(
                    bucket=self.bucket, org=self.org, record=body, write_precision=_MICROSECONDS
                )
            except ApiException as err:
                status = err.status or 0
                retry = status >= _SERVER_ERROR or status == _TOO_MANY_REQUESTS
                reason = f"HTTP {status}: {str(err.body or err.reason)[:200]}"
                if not retry:
                    c.write_failures += 1
                    raise InfluxWriteError(f"InfluxDB refused the write: {reason}") from None
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                reason = f"{type(err).__name__}: {err}"
            else:
                c.write_requests += 1
                return
            if attempt == self.attempts:
                c.write_failures += 1
                raise InfluxWriteError(
                    f"InfluxDB write failed after {self.attempts} attempts: {reason}"
                )
            c.write_retries += 1
            delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
            delay *= 0.5 + random.random() / 2  # noqa: S311 - jitter, not cryptography
            log.warning(
                "InfluxDB write attempt %d failed (%s); retry in %.2f s", attempt, reason, delay
            )
            await asyncio.sleep(delay)
