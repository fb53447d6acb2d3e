"""Helpers for tests that start real processes (daphne, shard workers) against the test database."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)
PYTHON = sys.executable


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that must use this test run's database and Redis prefix."""
    db = connection.settings_dict
    url = f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_VERSION"}
    env.update(
        {
            "DATABASE_URL": url,
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "REDIS_PREFIX": settings.REDIS_PREFIX,
            "DJANGO_SETTINGS_MODULE": "exchange_site.settings",
            "PYTHONUNBUFFERED": "1",
            # The child is not under pytest, so it would default to requiring a live shard.
            "SHARD_ALIVE_REQUIRED": "true" if settings.SHARD_ALIVE_REQUIRED else "false",
            **extra,
        }
    )
    return env


class ShardProcess:
    """A real matching shard worker process (the same command as the Procfile) for this test run."""

    def __init__(self, shard: int = 0, *, name: str = "", env: dict[str, str] | None = None):
        self.shard = shard
        self.name = name  # tells two processes of one shard apart (node name, log file)
        self.env = env or {}  # e.g. DATABASE_URL through a TcpProxy
        self.process: subprocess.Popen | None = None
        self.log_path = BASE_DIR / "artifacts" / f"shard{shard}{name}-{settings.REDIS_PREFIX}.log"

    def command(self) -> list[str]:
        prefix = settings.REDIS_PREFIX
        return [
            str(Path(PYTHON).with_name("celery")),
            "-A",
            "exchange_site",
            "worker",
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--shard",
            str(self.shard),
            "-n",
            f"shard{self.shard}{self.name}-{prefix}@%h",
            "-Q",
            f"{prefix}.shard{self.shard}.control",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ]

    def start(self, timeout: float = 60, *, standby: bool = False) -> ShardProcess:
        """Start and wait until this process is the active shard (or, ``standby``, waits on its lock)."""
        self.log_path.parent.mkdir(exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            self.command(), env=subprocess_env(**self.env), stdout=log, stderr=subprocess.STDOUT, cwd=BASE_DIR
        )
        self.wait_state("standby" if standby else "ready", timeout=timeout)
        return self

    def wait_state(self, state: str = "ready", timeout: float = 60) -> None:
        """Until this process says it is the active shard ("ready") or a waiting one ("standby")."""
        from exchange_site import redis as redis_

        key = redis_.key("shard", self.shard, state)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if redis_.client().get(key) == str(self.process.pid).encode():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"shard worker did not become {state}; see {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine dies."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait_idle(self, timeout: float = 60) -> None:
        """Until every accepted order and cancel request has been settled."""
        from orders.models import Order

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = (
                Order.objects.filter(status=Order.Status.PENDING).exists()
                or Order.objects.filter(status__in=Order.LIVE_STATUSES, cancel_requested_at__isnull=False).exists()
            )
            if not busy:
                return
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"shard worker exited:\n{self.log_tail()}")
            time.sleep(0.05)
        raise TimeoutError(f"orders still unsettled after {timeout}s:\n{self.log_tail()}")


class TcpProxy:
    """A TCP relay between a child process and a service (MariaDB, Redis) that a test can cut.

    ``cut()`` closes every relayed connection and refuses new ones, as a server that went down;
    ``restore()`` accepts again. Runs in threads of the test process.
    """

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.open = threading.Event()
        self.open.set()
        self.closed = False
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()  # down: the connection is refused at once
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                self._close(end)

    def _close(self, end: socket.socket) -> None:
        with self.lock:
            self.sockets.discard(end)
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        end.close()

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            ends = list(self.sockets)
        for end in ends:
            self._close(end)

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def database_url(self) -> str:
        """This run's test database, through the proxy (for ShardProcess(env=...))."""
        db = connection.settings_dict
        return f"mysql://{db['USER']}:{db['PASSWORD']}@127.0.0.1:{self.port}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private redis-server on a free port, for tests that lose Redis for real (FLUSHALL, kill).

    The shared Redis serves other test runs at the same time: a test must never flush it.
    """

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.directory = tempfile.mkdtemp(prefix="test-redis-")

    def start(self, timeout: float = 20) -> RedisServer:
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", self.directory, "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def flush(self) -> None:
        """Every key gone: queues, depth, presence counters, the channel layer's groups."""
        import redis

        redis.Redis.from_url(self.url).flushall()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


class WebTier:
    """Several daphne processes accepting on ONE listening socket, as the web role runs in production.

    The test creates the socket and passes its descriptor to each process (``daphne --fd N``); the
    kernel hands each new connection to one of them. A process killed and started again keeps the
    same address, since the socket stays open in this process meanwhile.
    """

    def __init__(self, processes: int = 2, **env: str):
        self.count = processes
        self.env = env
        self.sock: socket.socket | None = None
        self.processes: list[subprocess.Popen | None] = [None] * processes
        self.url = ""

    def start(self) -> WebTier:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.sock.set_inheritable(True)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        for index in range(self.count):
            self.spawn(index)
        return self

    def log_path(self, index: int) -> Path:
        return BASE_DIR / "artifacts" / f"web{index}-{settings.REDIS_PREFIX}.log"

    def spawn(self, index: int, timeout: float = 60) -> None:
        """Start process ``index`` and wait until it accepts on the shared socket."""
        fd = self.sock.fileno()
        path = self.log_path(index)
        path.parent.mkdir(exist_ok=True)
        start = path.stat().st_size if path.exists() else 0
        log = open(path, "ab")  # noqa: SIM115 - the process owns it
        env = subprocess_env(ALLOWED_HOSTS="127.0.0.1,localhost,testserver", CSRF_TRUSTED_ORIGINS=self.url, **self.env)
        self.processes[index] = process = subprocess.Popen(
            [str(Path(PYTHON).with_name("daphne")), "--fd", str(fd), "exchange_site.asgi:application"],
            pass_fds=(fd,),
            env=env,
            cwd=BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(path, "rb") as handle:
                handle.seek(start)
                if b"Listening on TCP address" in handle.read():
                    return
            if process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"web process {index} did not start; see {path}")

    def alive(self) -> list[int]:
        return [i for i, process in enumerate(self.processes) if process is not None and process.poll() is None]

    def kill(self, index: int) -> None:
        """SIGKILL: requests in flight on that process get a reset connection, nothing else."""
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)

    def restart(self, index: int) -> None:
        self.kill(index)
        self.spawn(index)

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in self.processes:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self.sock is not None:
            self.sock.close()


class HttpClient:
    """One HTTP connection of one API client (requests keeps it alive), for tests against real servers."""

    def __init__(self, base_url: str, key: str | None = None):
        import requests

        self.base_url = base_url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Token {key}"

    def request(self, method: str, path: str, **kwargs):
        return self.session.request(method, self.base_url + path, timeout=60, **kwargs)

    def post(self, path: str, body: dict):
        return self.request("POST", path, json=body)

    def get(self, path: str, **params):
        return self.request("GET", path, params=params)

    def delete(self, path: str):
        return self.request("DELETE", path)

    def close(self) -> None:
        self.session.close()
