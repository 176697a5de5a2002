"""Fuzz every input family against the hostile-input contract and print one row per family.

`.venv/bin/python bench/fuzz.py [--cases N] [--seed S] [--family PATTERN] [--json]` from the
repository root. Families: every registered codec, the SIA DC-09, Contact ID and GB/T 26875.3
stream framers, the envelope parser and the config, rules and scenario YAML loaders. What each
family may raise and how it is called is declared in `bench/fuzz_targets.py` (`ACCEPTED`,
`YAML_LOADERS`); mutations are in `bench/fuzz_mutations.py`.

Case `i` of family `f` is drawn from `random.Random(f"{seed}/{f}/{i}")`, so a run is deterministic
for its seed whatever the number of worker processes, and any case can be rebuilt alone. Cases run
in chunks on worker processes (one per core); inside a worker a CPU-time timer interrupts a case
after `WATCHDOG_S`, and the parent kills a worker stuck in one case for `STALL_S` of wall time (a
hang in C code) and resumes its chunk after that case. A case over `SLOW_S` of CPU is a hang.
After the run, the first case of every distinct failure is shrunk by delta debugging.

The exit status is 1 when any column other than `cases` is non-zero. `run(seconds)` gives the
figures the other benchmarks give (cases per second per family, and the failure totals).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from types import FrameType
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fuzz_targets import (
    SLOW_S,
    Case,
    CaseTimeout,
    Outcome,
    case_rng,
    check,
    crash_site,
    families,
    generate,
    shrink_case,
    warm_up,
)

WATCHDOG_S: Final = 2.0
"""CPU seconds after which a case is interrupted (it is already counted as a hang at `SLOW_S`)."""
STALL_S: Final = 20.0
"""Wall seconds in one case after which the worker is killed (a hang the timer cannot interrupt)."""
CHUNK: Final = 500
COLUMNS: Final = (
    "crashes",
    "hangs",
    "nonfinite",
    "bad_errors",
    "frames_lost",
    "chunking_dependent",
    "differs",
)


@dataclass
class Tally:
    """Counts of one family."""

    cases: int = 0
    crashes: int = 0
    hangs: int = 0
    nonfinite: int = 0
    bad_errors: int = 0
    frames_lost: int = 0
    chunking_dependent: int = 0
    differs: int = 0
    cpu_s: float = 0.0
    first: dict[str, int] = field(default_factory=dict)
    """Lowest case index of every distinct failure signature."""

    def add(self, index: int, outcome: Outcome, slow: bool) -> None:  # noqa: FBT001
        """Count one case."""
        self.cases += 1
        signature = ""
        if slow or outcome.kind == "hang":
            self.hangs += 1
            signature = f"hang: {outcome.signature or 'over 100 ms'}"
        elif outcome.kind == "crash":
            self.crashes += 1
        elif outcome.kind == "nonfinite":
            self.nonfinite += 1
        elif outcome.kind == "bad_error":
            self.bad_errors += 1
        elif outcome.kind == "differs":
            self.differs += 1
        elif outcome.kind == "lost":
            self.frames_lost += outcome.frames_lost
            self.chunking_dependent += outcome.chunking_dependent
        if outcome.failed or slow:
            key = signature or f"{outcome.kind}: {outcome.signature}"
            self.first[key] = min(index, self.first.get(key, index))

    def merge(self, other: Tally) -> None:
        """Add another tally of the same family."""
        for name in ("cases", *COLUMNS, "cpu_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, index in other.first.items():
            self.first[key] = min(index, self.first.get(key, index))

    @property
    def failing(self) -> bool:
        """Whether any column other than `cases` is non-zero."""
        return any(getattr(self, name) for name in COLUMNS)


def _on_timer(_signum: int, _frame: FrameType | None) -> None:
    raise CaseTimeout


def run_case(family: str, case: Case) -> tuple[Outcome, float]:
    """Check one case under the CPU-time watchdog; returns the outcome and the CPU seconds used."""
    signal.setitimer(signal.ITIMER_PROF, WATCHDOG_S)
    start = time.thread_time()
    try:
        outcome = check(family, case)
    except CaseTimeout as err:
        outcome = Outcome("hang", f"interrupted at {crash_site(err)}", crash_site(err))
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    return outcome, time.thread_time() - start


def run_cases(
    family: str, seed: int, start: int, stop: int, current: Synchronized[int] | None = None
) -> Tally:
    """Run cases `start..stop-1` of a family; `current` is set to each case index before it runs."""
    signal.signal(signal.SIGPROF, _on_timer)
    tally = Tally()
    for index in range(start, stop):
        if current is not None:
            current.value = index
        case = generate(family, case_rng(seed, family, index))
        outcome, cpu = run_case(family, case)
        tally.cpu_s += cpu
        tally.add(index, outcome, cpu > SLOW_S)
    return tally


def _worker(conn: Connection, current: Synchronized[int]) -> None:
    while True:
        task = conn.recv()
        if task is None:
            return
        family, seed, start, stop = task
        conn.send((family, run_cases(family, seed, start, stop, current)))


@dataclass
class _Slot:
    process: mp.process.BaseProcess
    conn: Connection
    current: Synchronized[int]
    task: tuple[str, int, int, int] | None = None
    since: float = 0.0
    index: int = -1


def _start(ctx: mp.context.ForkContext) -> _Slot:
    parent, child = ctx.Pipe()
    current: Synchronized[int] = ctx.Value("q", -1, lock=False)
    process = ctx.Process(target=_worker, args=(child, current), daemon=True)
    process.start()
    return _Slot(process, parent, current)


def _tasks(names: list[str], seed: int, cases: int) -> Iterator[tuple[str, int, int, int]]:
    for family in names:
        for start in range(0, cases, CHUNK):
            yield family, seed, start, min(cases, start + CHUNK)


def run_families(names: list[str], seed: int, cases: int, workers: int) -> dict[str, Tally]:
    """Run `cases` cases of every family on `workers` processes with the stall watchdog."""
    for family in names:  # load corpora, imports and caches before forking
        warm_up(family)
    ctx = mp.get_context("fork")
    tallies = {family: Tally() for family in names}
    pending = list(_tasks(names, seed, cases))
    slots = [_start(ctx) for _ in range(max(1, min(workers, len(pending))))]
    try:
        while pending or any(s.task for s in slots):
            for slot in slots:
                if slot.task is None and pending:
                    slot.task = pending.pop(0)
                    slot.conn.send(slot.task)
                    slot.since, slot.index = time.monotonic(), -1
            ready = wait([s.conn for s in slots if s.task], timeout=1.0)
            for slot in slots:
                if slot.conn in ready:
                    family, tally = slot.conn.recv()
                    tallies[family].merge(tally)
                    slot.task = None
            for position in range(len(slots)):
                _watch(position, slots, pending, tallies, ctx)
    finally:
        for slot in slots:
            slot.process.kill()
    return tallies


def _watch(
    position: int,
    slots: list[_Slot],
    pending: list[tuple[str, int, int, int]],
    tallies: dict[str, Tally],
    ctx: mp.context.ForkContext,
) -> None:
    """Kill a worker stuck in one case: count the case as a hang, queue the rest of its chunk."""
    slot = slots[position]
    if slot.task is None:
        return
    now = time.monotonic()
    if slot.current.value != slot.index:
        slot.index, slot.since = slot.current.value, now
        return
    if now - slot.since < STALL_S:
        return
    family, seed, first, stop = slot.task
    slot.process.kill()
    stuck = Tally(cases=1, hangs=1)
    stuck.first[f"hang: stalled over {STALL_S:.0f} s"] = slot.index
    tallies[family].merge(stuck)
    if slot.index + 1 < stop:
        pending.insert(0, (family, seed, slot.index + 1, stop))
    if first < slot.index:  # the results of the cases before it died with the worker
        pending.insert(0, (family, seed, first, slot.index))
    slots[position] = _start(ctx)


@dataclass(frozen=True, slots=True)
class Finding:
    """One distinct failure of a family with its first case and a shrunk reproducer."""

    family: str
    signature: str
    index: int
    where: str
    detail: str
    reproducer: str


def _shrink_one(args: tuple[str, str, int, int]) -> Finding:
    family, signature, seed, index = args
    signal.signal(signal.SIGPROF, _on_timer)
    case = generate(family, case_rng(seed, family, index))
    outcome, _ = run_case(family, case)
    if signature.startswith("hang") or not outcome.failed:
        return Finding(family, signature, index, outcome.where, outcome.detail, case.literal())
    small = shrink_case(family, case, outcome)
    final, _ = run_case(family, small)
    return Finding(
        family, signature, index, final.where, final.detail or outcome.detail, small.literal()
    )


def findings(tallies: dict[str, Tally], seed: int, workers: int) -> list[Finding]:
    """Shrink the first case of every distinct failure (on `workers` processes)."""
    jobs = [
        (family, signature, seed, index)
        for family, tally in tallies.items()
        for signature, index in sorted(tally.first.items())
    ]
    if not jobs:
        return []
    with mp.get_context("fork").Pool(max(1, workers)) as pool:
        return pool.map(_shrink_one, jobs, chunksize=1)


def table(tallies: dict[str, Tally]) -> str:
    """The per-family table."""
    width = max(len("family"), *map(len, tallies))
    head = f"{'family':<{width}}  {'cases':>7}  {'crashes':>7}  {'hangs':>5}  {'non-finite':>10}  {'bad errors':>10}  {'frames lost':>11}  {'chunking':>8}  {'differs':>7}  {'cases/s':>8}"
    lines = [head, "-" * len(head)]
    for family, t in tallies.items():
        rate = t.cases / t.cpu_s if t.cpu_s else 0.0
        lines.append(
            f"{family:<{width}}  {t.cases:>7}  {t.crashes:>7}  {t.hangs:>5}  {t.nonfinite:>10}  {t.bad_errors:>10}  {t.frames_lost:>11}  {t.chunking_dependent:>8}  {t.differs:>7}  {rate:>8,.0f}"
        )
    return "\n".join(lines)


def run(seconds: float) -> dict[str, float]:
    """Fuzz every family in this process for an equal share of `seconds`.

    Figures: `<family>.cases_per_s` (per CPU second) and the totals of every failure column.
    """
    names = families()
    for family in names:
        warm_up(family)
    share = seconds / len(names)
    figures: dict[str, float] = {}
    totals = Tally()
    for family in names:
        tally = Tally()
        deadline = time.monotonic() + share
        index = 0
        while time.monotonic() < deadline:
            tally.merge(run_cases(family, 0, index, index + 10))
            index += 10
        figures[f"{family}.cases_per_s"] = tally.cases / tally.cpu_s if tally.cpu_s else 0.0
        totals.merge(tally)
    figures |= {name: float(getattr(totals, name)) for name in ("cases", *COLUMNS)}
    return figures


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, fuzz, print the table (or JSON) and the findings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--family", action="append", help="fnmatch pattern or substring (repeatable)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of tables"
    )
    parser.add_argument(
        "--write-corpus", action="store_true", help="rebuild tests/fuzz/corpus and exit"
    )
    args = parser.parse_args(argv)
    if args.write_corpus:
        from bench.fuzz_targets import write_corpus  # noqa: PLC0415 - only for this command

        for name, count in write_corpus().items():
            print(f"{name}: {count}")
        return 0
    patterns = args.family or ["*"]
    names = [
        f
        for f in families()
        if any(
            fnmatch.fnmatchcase(f, p) or (p in f and not any(c in p for c in "*?["))
            for p in patterns
        )
    ]
    if not names:
        parser.error(f"no family matches {patterns}")
    started = time.monotonic()
    tallies = run_families(names, args.seed, args.cases, args.workers)
    found = findings(tallies, args.seed, args.workers)
    elapsed = time.monotonic() - started
    failing = any(t.failing for t in tallies.values())
    if args.json:
        doc = {
            "seed": args.seed,
            "cases_per_family": args.cases,
            "seconds": elapsed,
            "families": {
                f: {k: v for k, v in asdict(t).items() if k != "first"}
                | {"cases_per_s": t.cases / t.cpu_s if t.cpu_s else 0.0}
                for f, t in tallies.items()
            },
            "findings": [asdict(f) for f in found],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(table(tallies))
        print(
            f"\n{sum(t.cases for t in tallies.values()):,} cases in {elapsed:.1f} s (seed {args.seed})"
        )
        for f in found:
            print(
                f"\n[{f.family}] {f.signature}\n  case {f.index}: {f.detail}\n  reproducer: {f.reproducer[:600]}"
            )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
