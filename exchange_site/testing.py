"""Helpers for tests that start real processes (daphne, shard workers) against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
        DATABASE_URL=url,
        REDIS_PREFIX=settings.REDIS_PREFIX,
        DJANGO_SETTINGS_MODULE="exchange_site.settings",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


class ShardProcess:
    """A real matching shard worker process (the same command as the Procfile) for this test run."""

    def __init__(self, shard: int = 0):
        self.shard = shard
        self.process: subprocess.Popen | None = None
        self.log_path = BASE_DIR / "artifacts" / f"shard{shard}-{settings.REDIS_PREFIX}.log"

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
            f"shard{self.shard}-{prefix}@%h",
            "-Q",
            f"{prefix}.shard{self.shard}.control",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ]

    def start(self, timeout: float = 60) -> ShardProcess:
        from exchange_site import redis as redis_

        ready = redis_.key("shard", self.shard, "ready")
        redis_.client().delete(ready)
        self.log_path.parent.mkdir(exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            self.command(), env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT, cwd=BASE_DIR
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if redis_.client().get(ready):
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"shard worker did not become ready; see {self.log_path}:\n{self.log_tail()}")

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
