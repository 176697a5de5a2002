"""RawFrame → codec → Readings → rules → outbox, through one bounded queue with backpressure.

Sources `await pipeline.submit(frame)` (or `submit_many(frames)` for what they received at once):
when the queue is full they wait, which slows the serial reader, the MQTT message loop or the DC-09
ACK, so pressure goes back to the devices instead of memory growing. `submit_many` returns a future
that is done once those frames are stored, for sources that acknowledge their input only then.
`offer(frame)` is the non-waiting variant; a full queue then drops and counts.

One worker takes frames in small batches (lingering a few milliseconds to fill one), decodes each with its codec (pure), judges quality against
the metric catalog, adds the readings that device bindings derive from them (`core.derived`: a bin's
fill from its distance, a fence contact as an intrusion; this is the one place that happens), lets the
rule engine observe every reading, and writes the batch's readings and
alarm events to the outbox in one transaction. Frames that fail to decode go to the dead-letter table
with their raw bytes, and are counted by codec and reason; nothing stops the pipeline. A codec's
unforeseen failure (reason `codec_error`) is also logged with its traceback, once per codec and
exception type. Values a codec dropped from a frame that otherwise decoded (`DecodeIssue`
warnings: `non_finite`, `undefined_value`) are counted by codec and issue kind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from core.clock import Clock
from core.derived import Derivation, FlagMemory, derive
from core.envelope_json import sendable
from core.errors import EnvelopeError
from core.metrics import Metric, Quality, quality_of
from core.site import bound_device
from core.types import AlarmEvent, RawFrame, Reading
from edge_agent.dead_letter import DeadLetter, DeadLetterStore, FailureLog
from edge_agent.frame_queue import FrameQueue
from edge_agent.outbox.base import Outbox
from edge_agent.selfstats import SELF_CODEC, PipelineStats
from firmware_adapters.codec import Codec
from firmware_adapters.errors import DecodeError, DecodeIssue, DecodeReason, internal_error

_LOG = logging.getLogger(__name__)

UNKNOWN_CODEC = "unknown_codec"
"""Dead-letter reason of a frame naming a codec that is not registered."""
CODEC_CRASH = DecodeReason.CODEC_ERROR.value
"""Dead-letter reason of a codec that failed in a way it did not foresee (a codec bug)."""


class AlarmEngine(Protocol):
    """What the pipeline needs of the rule engine (`rules.engine.RuleEngine`)."""

    def observe(self, reading: Reading, now: datetime) -> list[AlarmEvent]:
        """Feed one reading; return the alarm events it caused."""
        ...

    def tick(self, now: datetime) -> list[AlarmEvent]:
        """Advance time-driven state; return the alarm events that caused."""
        ...


_Item = tuple[RawFrame, "asyncio.Future[None] | None"]
"""A queued frame and, for durable submits, the future resolved once it is stored."""

AlarmListener = Callable[[Sequence[AlarmEvent]], None]
"""Told about every batch of alarm events after the outbox stored them (local actions)."""


class Pipeline:
    """The frame queue and the worker that turns frames into stored readings and alarm events."""

    def __init__(
        self,
        *,
        gateway_id: str,
        codecs: Mapping[str, Codec],
        engine: AlarmEngine,
        outbox: Outbox,
        dead_letters: DeadLetterStore,
        clock: Clock,
        queue_size: int = 10_000,
        batch_size: int = 200,
        linger_s: float = 0.005,
        busy_batch_size: int = 4000,
        snapshot: Callable[[], str] | None = None,
        derivations: Mapping[str, tuple[Derivation, ...]] | None = None,
    ) -> None:
        """Wire the pipeline; nothing runs until `run()` is awaited.

        `batch_size` frames are decoded at a time (between them the worker yields to the event
        loop); when more than that are already waiting, up to `busy_batch_size` frames share one
        outbox transaction, so the number of disk flushes per second stays flat as load grows.
        `snapshot` returns the rule engine's state as text: it is stored in the transaction of
        every batch of alarm events (they carry its sequence numbers) and by `save_state`.
        `derivations` maps device ids to their derived readings (`set_derivations` replaces it).
        """
        self.gateway_id = gateway_id
        self.codecs = codecs
        self.engine = engine
        self.outbox = outbox
        self.dead_letters = dead_letters
        self.clock = clock
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.busy_batch_size = max(busy_batch_size, batch_size)
        self.stats = PipelineStats()
        self.listeners: list[AlarmListener] = []
        self._queue: FrameQueue[_Item] = FrameQueue(queue_size)
        self._lock = asyncio.Lock()
        self._snapshot = snapshot
        self._saved_state: str | None = None
        self._derivations: Mapping[str, tuple[Derivation, ...]] = {}
        self._flag_memory: FlagMemory = {}
        self._failures = FailureLog(_LOG)
        self.set_derivations(derivations or {})

    def set_derivations(self, derivations: Mapping[str, tuple[Derivation, ...]]) -> None:
        """Replace the per-device derivations (device bindings changed)."""
        self._derivations = {device: d for device, d in derivations.items() if d}

    async def submit(self, frame: RawFrame) -> None:
        """Queue a frame, waiting while the queue is full (backpressure)."""
        await self._queue.put_many(((frame, None),))
        self.stats.frames_in += 1

    async def submit_many(self, frames: Sequence[RawFrame]) -> asyncio.Future[None]:
        """Queue frames in order, waiting while the queue is full; return when they are queued.

        The future returned is done once every one of them is stored (its readings and alarm
        events committed to the outbox, or the frame dead-lettered), or failed if storing failed.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)
        if not frames:
            done.set_result(None)
            return done
        items: list[_Item] = [(frame, None) for frame in frames]
        items[-1] = (frames[-1], done)  # frames are stored in order: the last one done is all done
        await self._queue.put_many(items)
        self.stats.frames_in += len(items)
        return done

    async def submit_durable(self, frame: RawFrame) -> None:
        """Queue a frame and return only once its results are committed to the outbox.

        Sources of protocols that acknowledge to the device (DC-09 ACK, GB/T 26875.3 confirm) use
        this, so an acknowledged event survives `kill -9` or power loss.
        """
        await (await self.submit_many((frame,)))

    def offer(self, frame: RawFrame) -> bool:
        """Queue a frame if there is room; otherwise drop it, count it and return False."""
        if not self._queue.put_nowait((frame, None)):
            self.stats.frames_dropped += 1
            return False
        self.stats.frames_in += 1
        return True

    def retune(self, *, queue_size: int, batch_size: int, linger_s: float) -> None:
        """Change the queue bound and the batching while running (a pushed config)."""
        self._queue.resize(queue_size)
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.busy_batch_size = max(self.busy_batch_size, batch_size)

    @property
    def queued(self) -> int:
        """Frames waiting for the worker."""
        return len(self._queue)

    async def run(self) -> None:
        """Process frames forever, in batches of up to `batch_size` (`busy_batch_size` when busy).

        After the first frame of a batch the worker lingers up to `linger_s` for more, so a trickle
        of frames shares one outbox transaction (one disk flush) instead of paying one each. When a
        full batch is there at once, the worker is behind: it takes everything waiting, up to
        `busy_batch_size`, into the same transaction (what queued up during the previous flush).
        """
        queue = self._queue
        while True:
            await queue.wait_for(1)
            await queue.wait_for(self.batch_size, self.linger_s)
            await self._process_items(queue.take(self.busy_batch_size))

    async def drain(self) -> None:
        """Process every frame still queued (used on shutdown)."""
        while len(self._queue):
            await self._process_items(self._queue.take(self.busy_batch_size))

    async def _process_items(self, items: Sequence[_Item]) -> None:
        try:
            await self.process([frame for frame, _ in items])
        except BaseException as err:
            for _, done in items:
                if done is not None and not done.done():
                    done.set_exception(
                        err if isinstance(err, Exception) else asyncio.CancelledError()
                    )
            raise
        for _, done in items:
            if done is not None and not done.done():
                done.set_result(None)

    async def process(self, frames: Sequence[RawFrame]) -> None:
        """Decode frames, run rules, and store the results in one outbox transaction.

        Frames are decoded `batch_size` at a time, yielding to the event loop in between, so a
        large batch does not hold up the sources.
        """
        readings: list[Reading] = []
        events: list[AlarmEvent] = []
        letters: list[DeadLetter] = []
        observe = self.engine.observe
        step = self.batch_size
        for start in range(0, len(frames), step):
            if start:
                await asyncio.sleep(0)
            now = self.clock.now()
            for frame in frames[start : start + step]:
                for reading in self._decode(frame, letters):
                    readings.append(reading)
                    events.extend(observe(reading, now))
        await self._store(readings, events)
        if letters:
            self.dead_letters.add_many(letters)

    async def tick(self, now: datetime | None = None) -> list[AlarmEvent]:
        """Advance the rule engine's timers and store what that produced."""
        events = self.engine.tick(self.clock.now() if now is None else now)
        await self._store((), events)
        return events

    async def store_events(self, events: Sequence[AlarmEvent]) -> None:
        """Store alarm events produced outside the frame path (rule reloads)."""
        await self._store((), events)

    async def report_fault(self, device_id: str, faulty: bool) -> None:  # noqa: FBT001
        """Record that a device's link was lost or restored, as a `fault` reading of the device."""
        now = self.clock.now()
        reading = Reading(device_id, Metric.FAULT, faulty, now, codec_id=SELF_CODEC)
        await self._store([reading], self.engine.observe(reading, now))

    async def publish_stats(self) -> list[Reading]:
        """Store the self-statistics as readings of the gateway; return them."""
        readings = self.stats.readings(self.gateway_id, self.clock.now(), await self.outbox.stats())
        await self._store(readings, ())
        return readings

    async def save_state(self) -> None:
        """Store the rule engine's state if it changed since it was last stored (timers, windows)."""
        if self._snapshot is not None:
            await self._store((), (), with_state=True)

    async def _store(
        self,
        readings: Sequence[Reading],
        events: Sequence[AlarmEvent],
        *,
        with_state: bool = False,
    ) -> None:
        if not readings and not events and not with_state:
            return
        delay = 0.1
        async with self._lock:
            # The state goes with the events it numbered, in their transaction.
            state = None
            if self._snapshot is not None and (events or with_state):
                state = self._snapshot()
                if not readings and not events and state == self._saved_state:
                    return  # a state-only store of what is already stored
            while True:
                try:
                    await self.outbox.put(readings, events, state=state)
                    if state is not None:
                        self._saved_state = state
                    break
                except EnvelopeError:
                    # A record the envelope format refuses (a NaN from a derivation or a rule, an
                    # id over its limit): leave such readings out, repair such alarm events.
                    readings, events = self._sendable(readings, events)
                except (sqlite3.Error, OSError):
                    # Disk full or failing: hold the batch (the queue fills, sources wait) and retry.
                    self.stats.store_failures += 1
                    _LOG.exception("outbox write failed; retrying in %.1f s", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        if events:
            self.stats.alarms += len(events)
            for listener in self.listeners:
                listener(events)

    def _sendable(
        self, readings: Sequence[Reading], events: Sequence[AlarmEvent]
    ) -> tuple[list[Reading], list[AlarmEvent]]:
        """The records an envelope can carry; each refusal counted as `envelope_<code>`."""
        kept, fitted, refusals = sendable(readings, events)
        for refusal in refusals:
            self.stats.count_decode_error(refusal.source, f"envelope_{refusal.error.code}")
        if refusals:
            first = refusals[0]
            _LOG.warning(
                "%d records refused by the envelope format (%d left out), first from %s: %s",
                len(refusals),
                sum(r.dropped for r in refusals),
                first.source,
                first.error,
            )
        return kept, fitted

    def _decode(self, frame: RawFrame, letters: list[DeadLetter]) -> list[Reading]:
        codec = self.codecs.get(frame.codec_id)
        if codec is None:
            self._dead(frame, UNKNOWN_CODEC, f"no codec {frame.codec_id!r}", letters)
            return []
        try:
            result = codec.decode(frame)
        except DecodeError as err:
            if err.reason is DecodeReason.CODEC_ERROR:
                self._failures.report(frame.codec_id, f"on a frame from {frame.source_id}", err)
            self._dead(frame, err.reason.value, err.detail, letters)
            return []
        except Exception as err:  # noqa: BLE001 - a codec bug must not stop the gateway
            # `Codec.decode` is guarded; this catches decoders that bypass the guard.
            error = internal_error(frame.codec_id, err, frame.payload)
            error.__cause__ = err
            self._failures.report(frame.codec_id, f"on a frame from {frame.source_id}", error)
            self._dead(frame, CODEC_CRASH, error.detail, letters)
            return []
        if result.warnings:
            self._count_issues(frame.codec_id, result.warnings)
        readings = [_judged(reading) for reading in result.readings]
        if not self._derivations:
            return readings
        out: list[Reading] = []
        device: str | None = None
        plan: tuple[Derivation, ...] | None = None
        for reading in readings:
            out.append(reading)
            if reading.device_id != device:  # a frame's readings are mostly of one device
                device = reading.device_id
                plan = self._derivations.get(bound_device(device))
            if plan is not None:
                out.extend(_judged(each) for each in derive(reading, plan, self._flag_memory))
        return out

    def _count_issues(self, codec_id: str, warnings: Sequence[str]) -> None:
        for warning in warnings:
            if isinstance(warning, DecodeIssue):
                self.stats.count_decode_error(codec_id, warning.kind.value)

    def dead_letter(self, frame: RawFrame, reason: str, detail: str) -> None:
        """Count and store at once input a source could not turn into a decodable frame.

        Sources reach it through `SourceContext.dead_letter` (a ChirpStack event that is not an
        event, a framer or reply builder that failed); `frame` carries the raw bytes.
        """
        letters: list[DeadLetter] = []
        self._dead(frame, reason, detail, letters)
        self.dead_letters.add_many(letters)

    def _dead(self, frame: RawFrame, reason: str, detail: str, letters: list[DeadLetter]) -> None:
        self.stats.count_decode_error(frame.codec_id, reason)
        letters.append(
            DeadLetter(
                received_at=frame.received_at,
                source_id=frame.source_id,
                device_id=frame.device_id,
                codec_id=frame.codec_id,
                reason=reason,
                detail=detail,
                raw_hex=frame.payload.hex(),
            )
        )


def _judged(reading: Reading) -> Reading:
    """Return the reading with its quality judged against the catalog (codec flags are kept)."""
    if reading.quality is not Quality.GOOD:
        return reading
    quality = quality_of(reading.metric, reading.value)
    return reading if quality is Quality.GOOD else dataclasses.replace(reading, quality=quality)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a failure as seen: a source that does not wait for its frames need not look."""
    if not future.cancelled():
        future.exception()
