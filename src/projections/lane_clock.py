"""Where a rebuild lane's time goes, for its report (`ledger rebuild` prints it)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager


def server_cpu(pid: int) -> float | None:
    """CPU seconds a server backend has spent, when the server runs on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LaneClock:
    """Where a lane's time goes: wall and CPU seconds (this process's) by activity."""

    def __init__(self) -> None:
        self.began = (time.perf_counter(), time.process_time())
        self.spent: dict[str, list[float]] = {}
        self.current = ""
        self.since = self.began

    def start(self, activity: str) -> None:
        self.current, self.since = activity, (time.perf_counter(), time.process_time())

    def stop(self) -> None:
        wall, cpu = time.perf_counter() - self.since[0], time.process_time() - self.since[1]
        slot = self.spent.setdefault(self.current, [0.0, 0.0])
        slot[0] += wall
        slot[1] += cpu

    @contextmanager
    def __call__(self, activity: str) -> Iterator[None]:
        self.start(activity)
        try:
            yield
        finally:
            self.stop()

    def report(self) -> dict[str, list[float]]:
        total = [time.perf_counter() - self.began[0], time.process_time() - self.began[1]]
        return {**self.spent, "total": total}
