"""The `make run` stack under supervisord (deploy/supervise) survives SIGKILLs of its matching shard.

The test starts the project's own supervisor config against this run's database, Redis prefix and a
port of its own, trades over HTTP, and kills the active shard process five times under load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Q, Sum

from accounts.services import token_create
from exchange_site import redis as redis_
from exchange_site.testing import BASE_DIR, PYTHON, free_port, subprocess_env
from ledger.models import Transfer
from orders.models import Order, Trade
from orders.selectors import exchange_problems
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KILLS = 5


class Stack:
    """deploy/supervise web shards: the web processes on one port, shard 0 and its standby."""

    def __init__(self, tmp_path, roles=("web", "shards"), **env):
        self.port = free_port()
        self.tmp_path = tmp_path
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = BASE_DIR / "artifacts" / f"supervisor-{self.port}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = subprocess_env(
            WEB_PORT=str(self.port),
            WEB_PROCESSES="2",
            SUPERVISOR_DIR=str(tmp_path),
            ALLOWED_HOSTS="127.0.0.1",
            CELERY_BEAT_SCHEDULE_FILENAME=str(tmp_path / "beat"),
            **env,
        )
        # Its own process group: the test can clean up everything it started, and nothing else.
        self.process = subprocess.Popen(
            [str(BASE_DIR / "deploy" / "supervise"), *roles],
            env=env,
            cwd=BASE_DIR,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"supervisord exited:\n{self.log_tail()}")
            if self.shard_pid() and get(self.url + "/healthz")[0] == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not come up:\n{self.log_tail()}")

    def shard_pid(self) -> int | None:
        pid = redis_.client().get(redis_.key("shard", 0, "ready"))
        return int(pid) if pid else None

    def pid_of(self, program: str) -> int:
        """The pid supervisord has for a program (0 while it is not running)."""
        result = subprocess.run(
            [str(Path(PYTHON).with_name("supervisorctl")), "-c", str(BASE_DIR / "deploy" / "supervisord.conf")]
            + ["pid", program],
            env={**os.environ, "SUPERVISOR_DIR": str(self.tmp_path)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        return int(result.stdout.strip()) if result.stdout.strip().isdigit() else 0

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # supervisord stops every program, then itself
            try:
                self.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def post_order(url: str, token: str, body: dict) -> tuple[int, dict | None]:
    request = urllib.request.Request(
        url + "/api/v1/orders",
        method="POST",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


class Load:
    """Clients placing crossing limit orders over HTTP until stopped; keeps every answer."""

    def __init__(self, url: str, tokens: list[str], clients: int = 3):
        self.url, self.tokens = url, tokens
        self.stop_event = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.accepted: list[int] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(clients)]

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def run(self, n: int) -> None:
        i = 0
        while not self.stop_event.is_set():
            i += 1
            side = "buy" if (i + n) % 2 else "sell"
            # Buys at 100-103 meet sells at 99-102: most orders trade, some rest.
            price = 100 + (i * 7 + n) % 4 - (1 if side == "sell" else 0)
            body = {"symbol": "BTC-USD", "side": side, "price": str(price), "quantity": "0.02"}
            status, order = post_order(self.url, self.tokens[(i + n) % len(self.tokens)], body)
            with self.lock:
                self.statuses[status] += 1
                if status == 201:
                    self.accepted.append(order["id"])

    def settled_count(self) -> int:
        return Order.objects.exclude(status=Order.Status.PENDING).count()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(what)


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until supervisord reaps it: as dead as it gets.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] == "Z"


def standby_waiting() -> bool:
    """A second shard process is blocked on shard 0's lock, ready to take over the moment it is free."""
    name = f"{connection.settings_dict['NAME']}:shard:0"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User lock' AND INFO LIKE %s",
            [f"%{name}%"],
        )
        return cursor.fetchone()[0] > 0


def test_sigkill_of_the_active_shard_under_load_loses_nothing_and_the_site_keeps_answering(tmp_path, funded):
    MarketFactory()
    tokens = [token_create(user=funded(USD="10000000", BTC="100000"))[1] for _ in range(4)]
    stack = Stack(tmp_path)
    load = None
    try:
        stack.wait_ready()
        load = Load(stack.url, tokens).start()
        wait_for(lambda: load.settled_count() > 20, 60, "trading did not start")
        takeovers, live_checks = [], []
        for _ in range(KILLS):
            # Kill when the standby waits on the lock (the case it exists for); a kill while the
            # previous victim is still starting again measures a supervisor restart instead.
            try:
                wait_for(standby_waiting, 45, "no standby")
                standby = True
            except TimeoutError:
                standby = False
            pid = stack.shard_pid()
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_for(lambda pid=pid: process_gone(pid), 10, "the killed shard did not die")
            settled = load.settled_count()
            # Takeover: the next batch settled by whichever process now holds the shard.
            wait_for(lambda settled=settled: load.settled_count() > settled, 60, "no batch settled after the kill")
            takeovers.append((time.monotonic() - killed_at, standby))
            new_pid = wait_for(
                lambda pid=pid: (stack.shard_pid() or pid) != pid and stack.shard_pid(), 10, "no new pid"
            )
            assert new_pid != pid
            live_checks.append(exchange_problems())
            time.sleep(0.5)  # some trading between kills
        load.stop()
        wait_for(
            lambda: (
                not Order.objects.filter(
                    Q(status=Order.Status.PENDING)
                    | Q(status__in=Order.LIVE_STATUSES, cancel_requested_at__isnull=False)
                ).exists()
            ),
            60,
            "accepted orders left unsettled",
        )
        # A web process dies: the others accept on the same socket, and supervisord starts it again.
        web_pid = stack.pid_of("web:web-0")
        os.kill(web_pid, signal.SIGKILL)
        wait_for(lambda: process_gone(web_pid), 10, "the killed web process did not die")
        answers = [get(stack.url + "/healthz")[0] for _ in range(20)]
        restarted = wait_for(lambda: stack.pid_of("web:web-0") not in (0, web_pid), 60, "web-0 not restarted")
        assert answers == [200] * 20
        assert restarted
        print(
            "\ntakeover after SIGKILL (kill -> next settled batch): "
            + ", ".join(f"{seconds:.2f}s ({'standby' if standby else 'restart'})" for seconds, standby in takeovers)
            + f"; {sum(load.statuses.values())} requests, answers {dict(load.statuses)}"
        )
    finally:
        if load is not None:
            load.stop()
        stack.stop()

    # The website answered every request, and every order it accepted is settled.
    assert set(load.statuses) == {201}, load.statuses
    assert len(load.accepted) == len(set(load.accepted)) > 100
    statuses = dict(Order.objects.filter(pk__in=load.accepted).values_list("pk", "status"))
    assert len(statuses) == len(load.accepted)
    assert Order.Status.PENDING not in statuses.values()
    # No trade or transfer twice: each order's fills add up to its filled quantity.
    references = list(Transfer.objects.values_list("reference", flat=True))
    assert len(references) == len(set(references))
    for order_id, filled in Order.objects.values_list("pk", "filled_quantity"):
        traded = Trade.objects.filter(Q(maker_order_id=order_id) | Q(taker_order_id=order_id)).aggregate(
            total=Sum("quantity")
        )["total"] or Decimal(0)
        assert traded == filled, f"order {order_id}: trades add up to {traded}, filled {filled}"
    assert Trade.objects.count() > 50
    # ledger_check was clean while the shard was being killed, and is after.
    assert live_checks == [[]] * KILLS
    assert exchange_problems() == []
    # A waiting standby takes over at once; without one, supervisord's restart does, in the time a
    # celery worker takes to start (seconds on a quiet machine, far more on a crowded one).
    assert all(seconds < 3 for seconds, standby in takeovers if standby), takeovers
    assert all(seconds < 60 for seconds, standby in takeovers), takeovers


def test_beat_and_worker_run_ledger_check_and_record_it_in_redis(tmp_path, funded):
    funded(USD="10")
    key = redis_.key("ledger_check", "last")
    stack = Stack(tmp_path, roles=("worker", "beat"), LEDGER_CHECK_SECONDS="1")
    try:
        raw = wait_for(lambda: redis_.client().get(key), 120, f"no ledger_check result:\n{stack.log_tail()}")
    finally:
        stack.stop()
    result = json.loads(raw)
    assert result["ok"] is True and result["problems"] == 0
    assert "ledger_check: OK" in stack.log_path.read_text()
