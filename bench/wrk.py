"""wrk, the HTTP load generator: installed from Debian when missing (we run as root on a
Debian box; elsewhere the HTTP figures are skipped with the reason), and run with
wrk_requests.lua, which sends requests listed in a file and prints its figures as JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk_requests.lua")
APT_TIMEOUT_S = 300


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_wrk() -> tuple[str | None, str]:
    """(path to wrk, "") or (None, why not)."""
    found = shutil.which("wrk")
    if found:
        return found, ""
    if not shutil.which("apt-get"):
        return None, "wrk is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, "wrk is not installed (apt-get install wrk needs root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    for step in (install, ["apt-get", "update", "-q"], install):
        log(f"bench: {' '.join(step)}")
        try:
            subprocess.run(step, env=env, timeout=APT_TIMEOUT_S, check=False, capture_output=True)
        except (OSError, subprocess.TimeoutExpired) as failed:
            return None, f"could not install wrk: {failed}"
        if shutil.which("wrk"):
            return shutil.which("wrk"), ""
    return None, "apt-get install -y wrk did not install wrk"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    repeats: int
    socket_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors + self.timeouts

    def summary(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "p50_ms": round(self.p50_ms, 2),
            "p90_ms": round(self.p90_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
            "errors": self.errors,
            "repeats": self.repeats,
        }


def write_requests(path: Path, lines: list[tuple[str, str, str | None, str | None]]) -> Path:
    """(method, path, bearer token or None, JSON body or None) per request."""
    with path.open("w") as f:
        for method, target, token, body in lines:
            f.write(f"{method}\t{target}\t{token or '-'}\t{body or '-'}\n")
    return path


def run(
    wrk: str,
    base_url: str,
    requests_file: Path,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
) -> WrkResult:
    """One wrk run; `threads` wrk threads share `connections` (one leaves a core to the
    server on a small box)."""
    command = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(SCRIPT), base_url, "--", str(requests_file), str(threads),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures: {out.stdout[-500:]} {out.stderr[-500:]}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        non_2xx=data["non_2xx"],
        repeats=data["repeats"],
        socket_errors=data["socket_errors"],
        timeouts=data["timeouts"],
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )
