"""Order requests arriving together at one web process, placed together: one transaction for many users.

A transaction costs the same eight round trips to MariaDB (autocommit off, a read, three inserts, one
update, commit, autocommit on) for one order or for a hundred, and most of a single order's time
was spent on them. So the order door (the API's fast lane, orders/fast_lane.py) hands each request
to ``PlacementGroups.place``: when fewer than ``lanes`` groups are being placed, a group starts at
once with whatever waits; otherwise the request waits for the next group, which takes everything
that arrived meanwhile (up to ``max_orders``). A lone request is placed at once, as before; under
load the groups grow by themselves. Each request keeps its own answer: its own user, rate-limit
count, refusals and order rows (``orders_place_many``).

Threads: ``place`` and ``_start`` run on the event loop; ``_group_place`` runs the whole group on
one order-door thread (orders/db_threads.py). ``waiting`` and ``in_flight`` are touched only by the
event loop.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from accounts.services import user_for_token
from exchange_site.throttling import windows_allow
from monitoring.recorders import place_results_record

from .db_threads import db_thread_run
from .services import PlaceResult, orders_place_many


@dataclass(slots=True)
class Job:
    """One HTTP request's orders: the caller's API key, its raw order requests, and where the answer goes."""

    key: str
    requests: list
    future: asyncio.Future


class PlacementGroups:
    def __init__(self, *, lanes: int = 2, max_orders: int = 250):
        self.lanes = lanes
        self.max_orders = max_orders
        self.waiting: list[Job] = []
        self.in_flight = 0
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references to running tasks

    async def place(self, *, key: str, requests: list) -> list[PlaceResult] | None:
        """The results of ``requests`` for the holder of API key ``key``; None when the key is unknown or
        over its rate limit (the caller lets Django answer that)."""
        job = Job(key=key, requests=requests, future=asyncio.get_running_loop().create_future())
        self.waiting.append(job)
        if self.in_flight < self.lanes:
            self._start()
        return await job.future

    def _start(self) -> None:
        group, size = [], 0
        while self.waiting and (not group or size + len(self.waiting[0].requests) <= self.max_orders):
            job = self.waiting.pop(0)
            group.append(job)
            size += len(job.requests)
        self.in_flight += 1
        task = asyncio.ensure_future(self._run(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, group: list[Job]) -> None:
        try:
            answers = await db_thread_run(_group_place, [(job.key, job.requests) for job in group])
        except BaseException as exc:  # noqa: BLE001 - every waiting request gets the failure
            for job in group:
                if not job.future.done():
                    job.future.set_exception(exc)
        else:
            for job, answer in zip(group, answers, strict=True):
                job.future.set_result(answer)
        finally:
            self.in_flight -= 1
            if self.waiting and self.in_flight < self.lanes:
                self._start()


def _group_place(jobs: list[tuple[str, list]]) -> list[list[PlaceResult] | None]:
    """On an order-door thread: authenticate and count each job, then place every admitted one at once."""
    users = [user_for_token(key=key) for key, _ in jobs]
    allowed = windows_allow("user", [str(user.pk) if user is not None else None for user in users])
    admitted = [
        number for number, (user, (ok, _)) in enumerate(zip(users, allowed, strict=True)) if user is not None and ok
    ]
    answers: list[list[PlaceResult] | None] = [None] * len(jobs)
    if not admitted:
        return answers
    results = orders_place_many(entries=[(users[number], jobs[number][1]) for number in admitted])
    for number, result in zip(admitted, results, strict=True):
        answers[number] = result
    place_results_record([result for entry in results for result in entry])
    return answers


# Weak: a loop that has finished (a test's asyncio.run) takes its groups with it.
_groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PlacementGroups] = weakref.WeakKeyDictionary()


def placement_groups() -> PlacementGroups:
    """The running event loop's groups (one loop per web process; a test may run several)."""
    loop = asyncio.get_running_loop()
    groups = _groups.get(loop)
    if groups is None:
        groups = _groups[loop] = PlacementGroups()
    return groups
