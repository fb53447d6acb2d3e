import socket
import subprocess
import time

import pytest
from django.conf import settings

from exchange_site.testing import BASE_DIR, PYTHON, free_port, subprocess_env


class FixProcess:
    """``manage.py run_fix`` as a real process on a free port, against this run's database and Redis."""

    def __init__(self):
        self.port = free_port()
        self.log_path = BASE_DIR / "artifacts" / f"fix-{settings.REDIS_PREFIX}-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "FixProcess":
        self.log_path.parent.mkdir(exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "run_fix", "--port", str(self.port)],
            env=subprocess_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=BASE_DIR,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"run_fix did not start listening; see {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return self.process.returncode if self.process else None


@pytest.fixture
def fix_acceptor(transactional_db):
    acceptor = FixProcess().start()
    yield acceptor
    assert acceptor.stop() == 0, acceptor.log_tail()
