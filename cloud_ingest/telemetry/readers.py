"""Where `GET /api/v1/telemetry` reads its buckets: `TelemetryReader` and its implementations.

- `SqlReader`: the `readings` table (`cloud_ingest.telemetry.query.buckets`), the default.
- `FluxReader`: InfluxDB 2, the documented target of the Influx store. One Flux script (built by
  the pure function `flux_query`) selects the device's `value` field of the metric's
  measurement, merges its series (`group()`, sorted by time: a device's tags, such as its
  location, may change over time) and yields `aggregateWindow` with `mean`, `min`, `max`, `count`
  and `last`, windows starting at multiples of the step since the epoch (`timeSrc: "_start"`),
  as the SQL buckets do. No InfluxDB 2 server can be installed where this project is tested, so
  this reader is tested on its query text and on parsing an annotated-CSV response written after
  InfluxDB's documented format, served from a loopback HTTP server; it has not run against a real
  InfluxDB 2.
- `PromqlReader`: VictoriaMetrics, which accepts the same line protocol writes and names a field
  `<measurement>_<field>` (`temperature_c_value`). It asks `/api/v1/query_range` for
  `sum(count_over_time)`, `sum(sum_over_time)` (the bucket's mean is their quotient, exact across
  a device's several series), `min(min_over_time)`, `max(max_over_time)` and, per series,
  `last_over_time` with `tlast_over_time` (the latest series wins). A bucket `[b, b + step)` is
  the rollup evaluated at `b + step` over `[step] offset 1ms`, i.e. `(b - 1 ms, b + step - 1 ms]`;
  a last bucket cut short by `to` is asked for separately with a shorter window. Tested against a
  real VictoriaMetrics server.

A reader that cannot reach its server raises `TelemetryUnavailableError` (the API answers `503`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.rest import ApiException
from sqlalchemy.ext.asyncio import AsyncEngine

from cloud_ingest.telemetry.query import Bucket, Window, buckets
from core.metrics import Metric

FLUX_FUNCTIONS: Final = ("mean", "min", "max", "count", "last")
"""The `aggregateWindow` functions of the Flux query, each yielded under its own name."""
_FLUX_STRING: Final = str.maketrans(
    {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "$": "\\$"}
)
_PROM_STRING: Final = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


class TelemetryUnavailableError(RuntimeError):
    """The telemetry store did not answer (or answered with an error)."""


class TelemetryReader(Protocol):
    """Reads a device's metric in buckets of a window."""

    async def buckets(self, device: str, metric: Metric, span: Window) -> list[Bucket]:
        """The buckets of `span` holding readings of `device`'s `metric`, oldest first."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class SqlReader:
    """The embedded store: the `readings` table of the ingest's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Read through `engine`."""
        self._engine = engine

    async def buckets(self, device: str, metric: Metric, span: Window) -> list[Bucket]:
        """The SQL buckets (`cloud_ingest.telemetry.query.buckets`)."""
        async with self._engine.connect() as conn:
            return await buckets(conn, device, metric.value, span)

    async def close(self) -> None:
        """Nothing to release (the engine belongs to the app)."""


# --- Flux (InfluxDB 2) ------------------------------------------------------------------------


def flux_string(text: str) -> str:
    """`text` as a Flux string literal."""
    return '"' + text.translate(_FLUX_STRING) + '"'


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def flux_query(bucket: str, device: str, metric: Metric, span: Window) -> str:
    """The Flux script of `span`'s buckets of `device`'s `metric` (one yield per function)."""
    head = (
        f"data = from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: {_rfc3339(span.start)}, stop: {_rfc3339(span.end)})\n"
        f"  |> filter(fn: (r) => r._measurement == {flux_string(metric.value)}"
        f' and r._field == "value" and r.device == {flux_string(device)})\n'
        "  |> group()\n"
        '  |> sort(columns: ["_time"])\n'
    )
    tails = [
        f"data |> aggregateWindow(every: {span.step_s}s, fn: {fn}, "
        f'timeSrc: "_start", createEmpty: false) |> yield(name: "{fn}")\n'
        for fn in FLUX_FUNCTIONS
    ]
    return head + "".join(tails)


def buckets_of_aggregates(found: Mapping[str, Mapping[int, float]]) -> list[Bucket]:
    """Buckets from `{function: {bucket start s: value}}` (functions of `FLUX_FUNCTIONS`).

    A bucket is kept when it has a positive count and every other aggregate.
    """
    counts = found.get("count", {})
    out: list[Bucket] = []
    for start in sorted(counts):
        n = round(counts[start])
        values = [found.get(fn, {}).get(start) for fn in ("mean", "min", "max", "last")]
        if n <= 0 or any(v is None for v in values):
            continue
        avg, low, high, last = (float(v) for v in values if v is not None)
        out.append(Bucket(start, avg, low, high, n, last))
    return out


class FluxReader:
    """InfluxDB 2 through its Flux query API (see the module docstring)."""

    def __init__(self, client: InfluxDBClientAsync, *, bucket: str, org: str = "") -> None:
        """Query `bucket` of `org` through `client` (which the reader does not close)."""
        self._query = client.query_api()
        self.bucket = bucket
        self.org = org

    async def buckets(self, device: str, metric: Metric, span: Window) -> list[Bucket]:
        """Run `flux_query` and fold its five results into buckets."""
        script = flux_query(self.bucket, device, metric, span)
        try:
            tables = await self._query.query(script, org=self.org or None)
        except ApiException as err:
            raise TelemetryUnavailableError(f"InfluxDB query failed: HTTP {err.status}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            raise TelemetryUnavailableError(
                f"InfluxDB query failed: {type(err).__name__}"
            ) from None
        found: dict[str, dict[int, float]] = {fn: {} for fn in FLUX_FUNCTIONS}
        for table in tables:
            for record in table.records:
                fn = str(record.values.get("result", ""))
                when = record.values.get("_time")
                value = record.values.get("_value")
                if fn in found and isinstance(when, datetime) and value is not None:
                    found[fn][int(when.timestamp())] = float(value)
        return buckets_of_aggregates(found)

    async def close(self) -> None:
        """Nothing to release (the client belongs to the app)."""


# --- PromQL / MetricsQL (VictoriaMetrics) -----------------------------------------------------


def prom_selector(device: str, metric: Metric) -> str:
    """The series selector of `device`'s `metric` (`<metric>_value{device="..."}`)."""
    name = f"{metric.value}_value".translate(_PROM_STRING)
    return f'{{__name__="{name}",device="{device.translate(_PROM_STRING)}"}}'


def prom_queries(device: str, metric: Metric, window_ms: int) -> dict[str, str]:
    """The rollups of one bucket of `window_ms` ending 1 ms before the evaluation time."""
    rollup = f"{prom_selector(device, metric)}[{window_ms}ms] offset 1ms"
    return {
        "count": f"sum(count_over_time({rollup}))",
        "sum": f"sum(sum_over_time({rollup}))",
        "min": f"min(min_over_time({rollup}))",
        "max": f"max(max_over_time({rollup}))",
        "last": f"last_over_time({rollup})",
        "tlast": f"tlast_over_time({rollup})",
    }


@dataclass(frozen=True, slots=True)
class _Evaluations:
    """`count` evaluations `step_ms` apart from `first_ms`, each over the `step_ms` before it."""

    first_ms: int
    count: int
    step_ms: int
    instant: bool = False
    """One evaluation, asked for as an instant query (its time need not be a step multiple)."""


@dataclass(frozen=True, slots=True)
class _Sample:
    labels: tuple[tuple[str, str], ...]
    at_ms: int
    value: float


def _samples(body: object) -> list[_Sample]:
    """The samples of a Prometheus `matrix` or `vector` answer."""
    if not isinstance(body, dict) or body.get("status") != "success":
        raise TelemetryUnavailableError(f"unexpected query answer: {str(body)[:200]}")
    out: list[_Sample] = []
    data: Any = body.get("data")
    for series in data["result"]:
        labels = tuple(sorted(series.get("metric", {}).items()))
        pairs = series["values"] if "values" in series else [series["value"]]
        out.extend(_Sample(labels, round(float(t) * 1000), float(v)) for t, v in pairs)
    return out


class PromqlReader:
    """VictoriaMetrics (or a Prometheus-compatible API) through `/api/v1/query_range`."""

    def __init__(self, url: str, *, token: str = "", timeout_s: float = 10.0) -> None:
        """Query the server at `url` (`http://host:8428`), with a bearer `token` if given."""
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def buckets(self, device: str, metric: Metric, span: Window) -> list[Bucket]:
        """Full buckets in one set of range queries, a last bucket cut short by `to` apart."""
        step_ms = span.step_s * 1000
        start_ms = round(span.start.timestamp() * 1000)
        end_ms = math.ceil(span.end.timestamp() * 1000)
        full = (end_ms - start_ms) // step_ms
        found: dict[str, dict[int, float]] = {fn: {} for fn in FLUX_FUNCTIONS}
        jobs = []
        if full:
            jobs.append(_Evaluations(start_ms + step_ms, full, step_ms))
        partial_start = start_ms + full * step_ms
        if partial_start < end_ms:
            jobs.append(_Evaluations(end_ms, 1, end_ms - partial_start, instant=True))
        await asyncio.gather(*(self._fold(device, metric, job, found) for job in jobs))
        return buckets_of_aggregates(found)

    async def _fold(
        self, device: str, metric: Metric, at: _Evaluations, found: dict[str, dict[int, float]]
    ) -> None:
        """Fold the buckets ending at the evaluations `at` into `found` (by bucket start, s)."""
        step_ms = at.step_ms
        queries = prom_queries(device, metric, step_ms)
        names = list(queries)
        answers = await asyncio.gather(*(self._query(queries[n], at) for n in names))
        by_name = dict(zip(names, answers, strict=True))

        def start_s(sample: _Sample) -> int:
            return (sample.at_ms - step_ms) // 1000

        counts = {start_s(s): s.value for s in by_name["count"]}
        for s in by_name["sum"]:
            n = counts.get(start_s(s))
            if n:
                found["mean"][start_s(s)] = s.value / n
        found["count"].update(counts)
        found["min"].update((start_s(s), s.value) for s in by_name["min"])
        found["max"].update((start_s(s), s.value) for s in by_name["max"])
        latest: dict[tuple[Any, int], float] = {
            (s.labels, s.at_ms): s.value for s in by_name["tlast"]
        }
        best: dict[int, tuple[float, float]] = {}
        for s in by_name["last"]:
            when = latest.get((s.labels, s.at_ms), -math.inf)
            bucket = start_s(s)
            if bucket not in best or when >= best[bucket][0]:
                best[bucket] = (when, s.value)
        found["last"].update((b, v) for b, (_, v) in best.items())

    async def _query(self, query: str, at: _Evaluations) -> list[_Sample]:
        """The samples of `query` evaluated at `at`."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        if at.instant:
            path = "/api/v1/query"
            form = {"query": query, "time": f"{at.first_ms / 1000:.3f}", "nocache": "1"}
        else:
            path = "/api/v1/query_range"
            last_ms = at.first_ms + (at.count - 1) * at.step_ms
            form = {
                "query": query,
                "start": f"{at.first_ms / 1000:.3f}",
                "end": f"{last_ms / 1000:.3f}",
                "step": f"{at.step_ms}ms",
                "nocache": "1",
            }
        try:
            async with self._session.post(self.url + path, data=form) as response:
                if response.status != 200:  # noqa: PLR2004
                    text = (await response.text())[:200]
                    raise TelemetryUnavailableError(f"query failed: HTTP {response.status}: {text}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            raise TelemetryUnavailableError(f"query failed: {type(err).__name__}: {err}") from None
        return _samples(body)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
