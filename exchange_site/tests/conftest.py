import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from exchange_site.testing import BASE_DIR, PYTHON, free_port, subprocess_env
from marketdata.tests.conftest import browser_page, live_server_url  # noqa: F401 - shared fixtures


class Daphne:
    """One real daphne web process against this run's test database and Redis prefix."""

    def __init__(self, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (BASE_DIR / "artifacts").mkdir(exist_ok=True)
        self.log = open(BASE_DIR / "artifacts" / f"daphne-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop
        self.process = subprocess.Popen(
            [
                str(Path(PYTHON).with_name("daphne")),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "exchange_site.asgi:application",
            ],
            env=subprocess_env(ALLOWED_HOSTS="127.0.0.1,localhost,testserver", **env),
            cwd=BASE_DIR,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> "Daphne":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        raise RuntimeError(f"daphne on {self.port} did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture
def daphne_pair(transactional_db):
    """Two web processes sharing one small per-user limit: 6 requests per 10-second window."""
    pair = [Daphne(API_RATE_PER_USER="6/10s", API_RATE_PER_IP="6/10s") for _ in range(2)]
    try:
        yield [process.wait_ready() for process in pair]
    finally:
        for process in pair:
            process.stop()
