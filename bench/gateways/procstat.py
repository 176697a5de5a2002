"""CPU time and peak resident memory of a process (and its children), read from /proc.

`ProcSampler` reads in a background thread every `interval_s`: CPU is utime + stime of the process
and of its live children, plus what finished children left in cutime/cstime; peak RSS is the largest
VmHWM seen (the kernel's own high-water mark of the process), or the largest sampled sum of VmRSS
over the process and its children if that is larger.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

TICKS: Final = os.sysconf("SC_CLK_TCK")
PROC: Final = Path("/proc")


@dataclass(frozen=True)
class ProcUsage:
    """CPU seconds consumed and peak resident set size."""

    cpu_s: float
    peak_rss_bytes: int


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it follow the closing parenthesis.
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime + cutime + cstime of `pid` in seconds, None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def status_kb(pid: int, key: str) -> int | None:
    """A `kB` figure (VmHWM, VmRSS) from /proc/PID/status, None if missing."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def children(pid: int) -> list[int]:
    """Direct children of `pid`."""
    out = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


class ProcSampler:
    """Samples a process tree until `stop()`; `usage()` gives the figures since `start()`."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        """Prepare to sample `pid` (and its children)."""
        self.pid = pid
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"procstat-{pid}", daemon=True)
        self._cpu_start = 0.0
        self._cpu_last = 0.0
        self._child_cpu: dict[int, float] = {}
        self._peak_kb = 0

    def start(self) -> ProcSampler:
        """Take the starting CPU figure and begin sampling."""
        self._cpu_start = self._cpu_last = cpu_seconds(self.pid) or 0.0
        self._sample()
        self._thread.start()
        return self

    def _sample(self) -> None:
        own = cpu_seconds(self.pid)
        if own is None:
            return
        self._cpu_last = own
        rss = status_kb(self.pid, "VmRSS") or 0
        hwm = status_kb(self.pid, "VmHWM") or 0
        for child in children(self.pid):
            child_cpu = cpu_seconds(child)
            if child_cpu is not None:
                self._child_cpu[child] = child_cpu
            rss += status_kb(child, "VmRSS") or 0
        self._peak_kb = max(self._peak_kb, hwm, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def stop(self) -> ProcUsage:
        """Take a last sample, stop the thread and return the usage."""
        self._sample()
        self._stop.set()
        self._thread.join()
        return self.usage()

    def usage(self) -> ProcUsage:
        """CPU seconds since `start()` (children included) and the peak RSS seen."""
        cpu = self._cpu_last - self._cpu_start + sum(self._child_cpu.values())
        return ProcUsage(cpu, self._peak_kb * 1024)
