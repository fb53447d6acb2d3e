"""`celery -A exchange_site worker --shard K`: a Celery worker that is matching shard K.

Celery gives the shard process its lifecycle (start-up, warm shutdown on SIGTERM, logging, remote
control); the matching loop itself reads its Redis queue in batches in a thread of its own,
because one Celery task per order tops out near a thousand messages a second.

Start the same command twice for a standby: the second process waits on the shard's lock and
takes over within about a second when the first dies or loses its lock (matching/worker.py).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from celery import bootsteps
from click import Option

log = logging.getLogger("matching.shard")

SHARD_OPTION = Option(["--shard"], type=int, default=None, help="Run this worker as matching shard K.")


class ShardStep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Pool"}

    def __init__(self, parent, shard=None, **options):
        super().__init__(parent, **options)
        self.shard = shard
        self.stop_event = threading.Event()
        self.thread = None

    def start(self, parent):
        if self.shard is None:
            return
        self.thread = threading.Thread(target=self._run, name=f"shard-{self.shard}", daemon=True)
        self.thread.start()

    def _run(self):
        from .worker import ShardWorker

        try:
            ShardWorker(self.shard, pipelined=True).run(self.stop_event)
        except BaseException:
            log.exception("shard %s stopped on an error; stopping the worker so its supervisor restarts it", self.shard)
            os.kill(os.getpid(), signal.SIGTERM)

    def stop(self, parent):
        if self.thread is not None:
            self.stop_event.set()
            self.thread.join(timeout=30)


def install(app) -> None:
    app.user_options["worker"].add(SHARD_OPTION)
    app.steps["worker"].add(ShardStep)
