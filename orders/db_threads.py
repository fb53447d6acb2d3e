"""A small fixed pool of threads for the order door's database work, each keeping its MariaDB connection.

Threads: under daphne every sync request runs in a thread of its own (asgiref's ThreadSensitiveContext),
so a connection per thread is either opened and closed per request (CONN_MAX_AGE=0) or piles up with
the threads. The order views and the websocket order entry hand their work to these
``ORDER_DB_THREADS`` threads instead: the request thread (or the event loop) waits on a future, one pool
thread runs the whole DRF view or service with its own persistent connection, and nothing else is
shared between them. A connection idle for a while is pinged before use and replaced when broken.
With ``ORDER_DB_THREADS=0`` (tests: their database lives in the test's own connection) work runs inline.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

IDLE_PING_SECONDS = 30.0

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()


def _executor() -> ThreadPoolExecutor | None:
    global _pool
    size = getattr(settings, "ORDER_DB_THREADS", 0)
    if size <= 0:
        return None
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="order-db")
    return _pool


def _run(func, args, kwargs):
    last = getattr(_local, "last_used", 0.0)
    if connection.connection is not None and time.monotonic() - last > IDLE_PING_SECONDS and not connection.is_usable():
        connection.close()
    try:
        return func(*args, **kwargs)
    except (OperationalError, InterfaceError):
        connection.close()  # the next call reconnects
        raise
    finally:
        _local.last_used = time.monotonic()


def db_thread_call(func, *args, **kwargs):
    """``func(*args, **kwargs)`` on a pool thread; this thread waits for it."""
    pool = _executor()
    if pool is None:
        return func(*args, **kwargs)
    return pool.submit(_run, func, args, kwargs).result()


async def db_thread_run(func, *args, **kwargs):
    """``func(*args, **kwargs)`` on a pool thread, awaited from the event loop."""
    pool = _executor()
    if pool is None:
        from asgiref.sync import sync_to_async

        return await sync_to_async(func, thread_sensitive=True)(*args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, _run, func, args, kwargs)


def db_thread_view(view):
    """A Django view (a DRF ``as_view()``) run, and its response rendered, on a pool thread."""

    def run(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if hasattr(response, "render") and not getattr(response, "is_rendered", True):
            response.render()
        return response

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        return db_thread_call(run, request, *args, **kwargs)

    return wrapper
