"""A rebuild lane in a process of its own: `python -m projections.lane_process`.

Not multiprocessing's spawn: a spawned child imports the parent's `__main__` again before
it runs anything, and under `make bench` or the CLI that is the whole application (1.3 s of
CPU a lane on a 2-core box, on the rebuild's clock). This child imports only the lane.

The lane comes in as one JSON line on stdin, and stdin stays open: when it closes, the
parent is gone (even killed), and so the lane stops too. Progress and the final report go
out as JSON lines on the process's original stdout; anything else the lane prints goes to
stderr.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from projections.rebuild_lane import Lane


class LaneProcess:
    """One lane's child process; `on_line` gets each JSON line it writes, on a thread."""

    def __init__(self, lane: Lane, on_line: Callable[[Any], None]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "projections.lane_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(dataclasses.asdict(lane)) + "\n")
        self.proc.stdin.flush()  # and left open: see the module's docstring
        self.thread = threading.Thread(
            target=self._pump, args=(self.proc.stdout, on_line), daemon=True
        )
        self.thread.start()

    @staticmethod
    def _pump(out: IO[str], on_line: Callable[[Any], None]) -> None:
        for line in out:
            on_line(json.loads(line))

    def alive(self) -> bool:
        return self.proc.poll() is None or self.thread.is_alive()

    def finish(self) -> int:
        self.thread.join()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        return self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()


class _Reports:
    """What run_lane puts its progress into (from its one thread): JSON lines on the
    parent's pipe."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def put(self, item: Any) -> None:
        self.out.write(json.dumps(item) + "\n")
        self.out.flush()


def _stop_with_parent() -> None:
    sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
    os._exit(1)


def main() -> None:
    from projections.rebuild_lane import run_lane

    fields = json.loads(sys.stdin.readline())
    lane = Lane(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints go to stderr, not into the reports
    threading.Thread(target=_stop_with_parent, daemon=True).start()
    reports = _Reports(out)
    reports.put([lane.index, None, run_lane(lane, reports)])
    out.close()


if __name__ == "__main__":
    main()
