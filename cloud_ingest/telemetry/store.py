"""The telemetry store of the settings: the ingest's sink, the API's reader, and their shutdown.

`open_store(settings, engine)` builds, for `telemetry_store: sql`, the `SqlTelemetry` sink and the
`SqlReader`; for `telemetry_store: influx`, an `InfluxDBClientAsync` of `influx_url`, the
`InfluxTelemetry` sink writing `influx_bucket`, and the reader of `influx_query` (`FluxReader` on
InfluxDB 2, `PromqlReader` on VictoriaMetrics). `TelemetryStore.close()` releases the clients.
"""

from __future__ import annotations

from dataclasses import dataclass

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.infra.config import Settings
from cloud_ingest.telemetry.influx import InfluxTelemetry
from cloud_ingest.telemetry.readers import FluxReader, PromqlReader, SqlReader, TelemetryReader
from cloud_ingest.telemetry.sink import SqlTelemetry, TelemetrySink

INFLUX_TIMEOUT_MS = 10_000
"""Time limit of one InfluxDB request."""


@dataclass(frozen=True, slots=True)
class TelemetryStore:
    """The sink the ingest writes through and the reader the API reads through."""

    sink: TelemetrySink
    reader: TelemetryReader
    client: InfluxDBClientAsync | None = None
    """The InfluxDB client, when the store is InfluxDB."""

    @property
    def influx(self) -> InfluxTelemetry | None:
        """The Influx sink (for its counters), when the store is InfluxDB."""
        return self.sink if isinstance(self.sink, InfluxTelemetry) else None

    async def ping(self) -> bool:
        """Whether the InfluxDB server answers (always true for the SQL store)."""
        if self.client is None:
            return True
        return bool(await self.client.ping())

    async def close(self) -> None:
        """Close the reader and the InfluxDB client."""
        try:
            await self.reader.close()
        finally:
            if self.client is not None:
                await self.client.close()  # type: ignore[no-untyped-call]


def open_store(settings: Settings, engine: AsyncEngine) -> TelemetryStore:
    """The store `settings` configure (must run in the event loop: the clients bind to it)."""
    if settings.telemetry_store == "sql":
        return TelemetryStore(SqlTelemetry(engine), SqlReader(engine))
    url, bucket = settings.influx_url, settings.influx_bucket
    if not url or not bucket:
        raise ValueError("telemetry_store 'influx' needs influx_url and influx_bucket")
    token = settings.influx_token_value()
    org = settings.influx_org
    client = InfluxDBClientAsync(url, token=token, org=org, timeout=INFLUX_TIMEOUT_MS)
    sink = InfluxTelemetry(client, bucket=bucket, org=org)
    reader: TelemetryReader
    if settings.influx_query == "flux":
        reader = FluxReader(client, bucket=bucket, org=org)
    else:
        reader = PromqlReader(url, token=token, timeout_s=INFLUX_TIMEOUT_MS / 1000)
    return TelemetryStore(sink, reader, client)
