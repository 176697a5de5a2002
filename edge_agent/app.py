"""The Agent: builds sources → pipeline → rules → outbox → uplink from the config and runs them.

Every long-running part is a named task in one `asyncio.TaskGroup`. Sources run under a supervisor
that restarts them with backoff if they ever fail. A 1 s tick drives the rule engine's timers. Its
state is stored in the outbox: in the transaction of every batch of alarm events (whose sequence
numbers it holds, so a crash never keeps one without the other) and at each tick when it changed,
so PENDING timers survive a restart. SIGTERM/SIGINT start a clean stop: sources stop, queued frames are processed, the rule state
is saved, the uplink flushes what it can within `drain_timeout_s`, and the process exits 0. systemd is
told READY=1, WATCHDOG=1 (from the event loop, so a stuck loop gets restarted) and STOPPING=1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from core.clock import Clock, ScaledClock, SystemClock, wall_interval
from core.types import AlarmEvent, AlarmState
from edge_agent.bindings import Bindings, BindingsHolder
from edge_agent.config import EdgeConfig, load_rules, state_path
from edge_agent.dead_letter import DeadLetterStore
from edge_agent.local_actions import LocalActions
from edge_agent.outbox.base import OutboxLimits
from edge_agent.outbox.sqlite import SqliteOutbox
from edge_agent.pipeline import Pipeline
from edge_agent.pushed_config import PUSHED_CONFIG_FILE, PushedConfigStore
from edge_agent.remote_config import RemoteConfigHandler, restore_pushed
from edge_agent.sd_notify import SdNotifier
from edge_agent.source_factory import build_sources
from edge_agent.sources.base import Backoff, Source, SourceContext
from edge_agent.uplink import Uplink
from edge_agent.uplink_settings import UplinkSettings
from firmware_adapters.registry import CODECS
from rules.engine import RuleEngine
from rules.errors import SnapshotError
from rules.spec import RuleSet

if TYPE_CHECKING:
    from collections.abc import Sequence

_LOG = logging.getLogger(__name__)
RULE_TICK_S: Final = 1.0
"""How often the rule engine's timers advance, in the clock's seconds (on a simulated clock, at
most every `core.clock.MIN_WALL_INTERVAL_S` of real time)."""
HOUSEKEEPING_S: Final = 3600.0
LEGACY_RULE_STATE_FILE: Final = "rule-state.json"
"""Where the rule state was kept before it moved into the outbox; read once, then removed."""
DEAD_LETTER_FILE: Final = "dead-letters.sqlite3"


class Agent:
    """The gateway daemon; `await agent.run()` until `stop()` (or SIGTERM) and returns an exit code."""

    def __init__(
        self,
        config: EdgeConfig,
        config_path: Path,
        *,
        clock: Clock | None = None,
        notifier: SdNotifier | None = None,
        drain_timeout_s: float = 10.0,
    ) -> None:
        """Keep the validated config; everything is built in `run()`."""
        self.config = config
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.notifier = notifier or SdNotifier()
        self.drain_timeout_s = drain_timeout_s
        self.state_dir = Path(config.state_dir)
        self.site = config.gateway.site_id or config.gateway.id
        self.bindings = BindingsHolder(Bindings.build(config.devices))
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()
        self.sources: list[Source] = []
        self.actions: LocalActions | None = None
        self._group: asyncio.TaskGroup | None = None
        self._source_tasks: list[asyncio.Task[None]] = []
        self._actions_task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Begin a clean shutdown."""
        self._stop.set()

    async def run(self) -> int:
        """Build everything, run until stopped, shut down cleanly; return the exit code."""
        _log_clock(self.clock)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        base = self.config
        store = PushedConfigStore(self.state_dir / PUSHED_CONFIG_FILE)
        cfg, pushed_rules, pushed = restore_pushed(store, base, self.config_path, self.clock.now())
        self.config = cfg
        self.bindings.replace(Bindings.build(cfg.devices))
        ruleset = pushed_rules or load_rules(cfg, self.config_path)
        outbox = await SqliteOutbox.create(
            state_path(cfg, cfg.outbox.path),
            OutboxLimits(max_records=cfg.outbox.max_records, max_bytes=cfg.outbox.max_bytes),
        )
        engine = self._restore_engine(ruleset, await outbox.saved_state())
        self.engine = engine
        dead = DeadLetterStore(
            self.state_dir / DEAD_LETTER_FILE,
            ttl=timedelta(days=cfg.pipeline.dead_letter_ttl_days),
        )
        self.pipeline = pipeline = Pipeline(
            gateway_id=cfg.gateway.id,
            codecs=CODECS,
            engine=engine,
            outbox=outbox,
            dead_letters=dead,
            clock=self.clock,
            queue_size=cfg.pipeline.queue_size,
            batch_size=cfg.pipeline.batch_size,
            linger_s=cfg.pipeline.linger_s,
            snapshot=self._snapshot_text,
            derivations=self.bindings.current.derivations(),
        )
        pipeline.listeners.append(self._on_alarms)
        self.dead_letters = dead
        self.outbox = outbox
        self.remote = RemoteConfigHandler(
            config=cfg,
            base_config=base,
            config_path=self.config_path,
            engine=engine,
            bindings=self.bindings,
            pipeline=pipeline,
            clock=self.clock,
            reconfigure=self.reconfigure,
            store=store,
            applied=pushed,
        )
        self.uplink = uplink = Uplink(
            UplinkSettings.from_config(cfg.uplink, self.config_path.parent),
            outbox,
            gateway_id=cfg.gateway.id,
            on_config=self.remote,
            clock=self.clock,
        )
        self._ctx = SourceContext(
            pipeline.submit,
            pipeline.report_fault,
            pipeline.stats,
            self.clock,
            submit_durable=pipeline.submit_durable,
            submit_many=pipeline.submit_many,
            dead_letter=pipeline.dead_letter,
        )
        try:
            await pipeline.save_state()
            (self.state_dir / LEGACY_RULE_STATE_FILE).unlink(missing_ok=True)
            await self._run_tasks(pipeline, uplink)
        finally:
            await pipeline.save_state()
            await outbox.close()
            dead.close()
        return 0

    async def _run_tasks(self, pipeline: Pipeline, uplink: Uplink) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                core_tasks = [
                    group.create_task(pipeline.run(), name="pipeline"),
                    group.create_task(self._tick_loop(), name="rule-tick"),
                    group.create_task(self._stats_loop(), name="self-stats"),
                    group.create_task(self._housekeeping_loop(), name="housekeeping"),
                ]
                if self.notifier.watchdog_interval_s:
                    core_tasks.append(group.create_task(self._watchdog_loop(), name="watchdog"))
                self._start_actions(self.config)
                uplink_task = group.create_task(uplink.run(), name="uplink")
                self._start_sources(self.config)
                self.notifier.ready(
                    f"{len(self.sources)} sources, {len(self.engine.rules.rules)} rules"
                )
                self.ready.set()
                await self._stop.wait()
                _LOG.info("stopping: draining")
                self.notifier.stopping()
                await _cancel(self._source_tasks)
                await pipeline.drain()
                await pipeline.tick()
                await pipeline.save_state()
                if self.actions is not None:
                    await self.actions.flush(2.0)
                await uplink.drain(self.drain_timeout_s)
                # A frozen broker may hold a publish past the deadline: what is unsent stays queued.
                _done, pending = await asyncio.wait([uplink_task], timeout=self.drain_timeout_s)
                actions_task = [] if self._actions_task is None else [self._actions_task]
                await _cancel([*core_tasks, *actions_task, *pending])
        finally:
            self._group = None
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    # --- what a pushed config may change while running -----------------------------------------

    def _start_sources(self, config: EdgeConfig) -> None:
        if self._group is None:
            return
        self.sources = build_sources(config, self._ctx, self.bindings)
        self._source_tasks = [
            self._group.create_task(_supervise(s.name, s.run), name=f"source-{s.name}")
            for s in self.sources
        ]

    def _start_actions(self, config: EdgeConfig, unsent: Sequence[tuple[str, bytes]] = ()) -> None:
        self.actions = None
        self._actions_task = None
        if self._group is None or not config.actions or config.sources.mqtt is None:
            return
        self.actions = actions = LocalActions(
            config.actions,
            config.sources.mqtt,
            self.bindings,
            client_id=f"steward-{config.gateway.id}-actions",
        )
        # What the replaced actions had not sent yet (a siren's OFF) goes first; then outputs
        # held on by alarms FIRING now are switched on again (idempotent).
        actions.send_first(unsent)
        actions.seed(
            (f"{self.site}/{inst.subject}/{inst.rule_id}", inst.subject, inst.severity)
            for inst in self.engine.active_instances()
            if inst.state is AlarmState.FIRING and inst.severity is not None
        )
        self._actions_task = self._group.create_task(actions.run(), name="local-actions")

    def _on_alarms(self, events: Sequence[AlarmEvent]) -> None:
        if self.actions is not None:
            self.actions.on_alarms(events)

    async def reconfigure(self, old: EdgeConfig, new: EdgeConfig) -> list[str]:
        """Apply a validated pushed config's sources, actions, pipeline and outbox limits."""
        changed: list[str] = []
        if old.sources != new.sources or _polling(old) != _polling(new):
            await _cancel(self._source_tasks)
            self._start_sources(new)
            changed.append("sources")
        if old.actions != new.actions or old.sources.mqtt != new.sources.mqtt:
            if self._actions_task is not None:
                await _cancel([self._actions_task])
            self._start_actions(new, [] if self.actions is None else self.actions.unsent())
            if old.actions != new.actions:
                changed.append("actions")
        if old.pipeline != new.pipeline:
            p = new.pipeline
            self.pipeline.retune(
                queue_size=p.queue_size, batch_size=p.batch_size, linger_s=p.linger_s
            )
            self.dead_letters.ttl = timedelta(days=p.dead_letter_ttl_days)
            changed.append("pipeline")
        if old.outbox != new.outbox:
            self.outbox.set_limits(
                OutboxLimits(max_records=new.outbox.max_records, max_bytes=new.outbox.max_bytes)
            )
            changed.append("outbox")
        self.config = new
        return changed

    # --- loops ---------------------------------------------------------------------------------

    # Intervals of the world (rule ticks, statistics, dead-letter expiry) are in the clock's
    # seconds; on a simulated clock they pass `speed` times faster. Timeouts, backoff, keepalive,
    # batching and the watchdog stay on real time.

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(wall_interval(self.clock, RULE_TICK_S))
            await self.pipeline.tick()
            await self.pipeline.save_state()

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(wall_interval(self.clock, self.config.pipeline.stats_interval_s))
            await self.pipeline.publish_stats()

    async def _housekeeping_loop(self) -> None:
        while True:
            self.pipeline.dead_letters.expire(self.clock.now())
            await asyncio.sleep(wall_interval(self.clock, HOUSEKEEPING_S))

    async def _watchdog_loop(self) -> None:
        interval = self.notifier.watchdog_interval_s or 1.0
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    # --- rule state ----------------------------------------------------------------------------

    def _restore_engine(self, ruleset: RuleSet, saved: str | None) -> RuleEngine:
        """The engine as the outbox last stored it (or as an older release's file left it)."""
        devices = self.bindings.current.infos()
        origin = "the outbox"
        if saved is None:
            legacy = self.state_dir / LEGACY_RULE_STATE_FILE
            try:
                saved, origin = legacy.read_text(encoding="utf-8"), str(legacy)
            except FileNotFoundError:
                _LOG.info("no rule state yet: starting fresh")
                return RuleEngine(ruleset, devices, site=self.site)
            except OSError as err:
                _LOG.warning("rule state %s not restored: %s", legacy, err)
                return RuleEngine(ruleset, devices, site=self.site)
        try:
            engine = RuleEngine.restore(json.loads(saved), ruleset, devices, site=self.site)
        except (ValueError, SnapshotError) as err:
            _LOG.warning("rule state from %s not restored: %s", origin, err)
            return RuleEngine(ruleset, devices, site=self.site)
        _LOG.info("rule state restored from %s", origin)
        return engine

    def _snapshot_text(self) -> str:
        return json.dumps(self.engine.snapshot(), separators=(",", ":"), sort_keys=True)


def _log_clock(clock: Clock) -> None:
    if isinstance(clock, ScaledClock):
        _LOG.info(
            "running on a simulated clock %s: %gx real time, now %s; rule ticks every %.3f s",
            clock.spec,
            clock.speed,
            clock.now().isoformat(),
            wall_interval(clock, RULE_TICK_S),
        )
    elif isinstance(clock, SystemClock):
        _LOG.info("clock: system (wall time)")
    else:
        _LOG.info("clock: %s", type(clock).__name__)


def _polling(config: EdgeConfig) -> dict[str, object]:
    """What the Modbus pollers are built from, per device."""
    return {d.id: (d.codec, d.modbus) for d in config.devices if d.modbus is not None}


async def _supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a source forever; if it fails, log, back off and start it again."""
    backoff = Backoff(first=1.0, maximum=60.0)
    while True:
        try:
            await run()
        except Exception:  # noqa: BLE001 - a failed source is restarted, never fatal
            _LOG.exception("source %s failed; restarting", name)
            await asyncio.sleep(backoff.next_delay())
        else:
            return


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
