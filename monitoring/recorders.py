"""Figures for ``GET /metrics``, kept in Redis so every web process and every shard adds to the same ones.

Writers (each one round trip, pipelined):
- the web processes: orders accepted, refused (by reason) and replayed at the door, whichever door
  (``monitoring.middleware`` for Django's order views, ``place_results_record`` for the API's fast
  lane and websocket order entry), websocket connections open (``marketdata.consumers``);
- each shard: per committed batch its size and how long matching and the commit took, as
  histogram buckets (``shard_batch_record``, called from the shard's publishing thread after the
  commit, so the commit path never waits on Redis for it).

The reader is ``monitoring.selectors.metrics_text``. Counters only ever go up (Prometheus takes rates);
the websocket gauge, like ``marketdata.presence``, stays too high by what a killed process held open.
"""

from __future__ import annotations

import logging
from bisect import bisect_left

from exchange_site import redis as redis_

log = logging.getLogger("monitoring")

# Upper bounds of the histogram buckets (Prometheus "le"); the last, +Inf, is implicit.
BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000)
SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
HISTOGRAMS = {"batch_size": BATCH_SIZE_BUCKETS, "match_seconds": SECONDS_BUCKETS, "commit_seconds": SECONDS_BUCKETS}


def orders_key() -> str:
    return redis_.key("metrics", "orders")


def shard_key(shard: int) -> str:
    return redis_.key("metrics", "shard", int(shard))


def websockets_key() -> str:
    return redis_.key("metrics", "websockets")


def ledger_check_key() -> str:
    """JSON ``{"ok", "problems", "at", "seconds"}`` of the last ``ledger_check`` run, written by its task."""
    return redis_.key("ledger_check", "last")


def orders_outcomes_record(*, accepted: int = 0, replayed: int = 0, refused: dict[str, int] | None = None) -> None:
    """What the door answered to order requests: counts of accepted, replayed and refused by error code."""
    pipe = redis_.client().pipeline(transaction=False)
    if accepted:
        pipe.hincrby(orders_key(), "accepted", accepted)
    if replayed:
        pipe.hincrby(orders_key(), "replayed", replayed)
    for reason, count in (refused or {}).items():
        pipe.hincrby(orders_key(), f"refused:{reason}", count)
    if len(pipe):
        pipe.execute()


def place_results_record(results) -> None:
    """The outcomes of one request's orders (``orders.services.PlaceResult``s), counted as the door answered them."""
    refused: dict[str, int] = {}
    accepted = replayed = 0
    for result in results:
        if result.error is not None:
            code = str(result.error.code)[:64]
            refused[code] = refused.get(code, 0) + 1
        elif result.status == 201:
            accepted += 1
        else:
            replayed += 1
    try:
        orders_outcomes_record(accepted=accepted, replayed=replayed, refused=refused)
    except Exception:  # noqa: BLE001 - a lost count must not cost the client its answer
        log.exception("cannot count an order request's outcome")


def _bucket(bounds, value) -> str:
    index = bisect_left(bounds, value)
    return "+Inf" if index == len(bounds) else repr(bounds[index])


def shard_batch_record(*, shard: int, size: int, trades: int, match_seconds: float, commit_seconds: float) -> None:
    """One committed batch of ``size`` commands: one pipelined round trip of HINCRBYs.

    Never raises: the batch is committed, and a lost figure must not stop matching.
    """
    try:
        _shard_batch_write(shard, size, trades, match_seconds, commit_seconds)
    except Exception:  # noqa: BLE001
        log.exception("shard %s: cannot record a batch's figures", shard)


def _shard_batch_write(shard, size, trades, match_seconds, commit_seconds) -> None:
    key = shard_key(shard)
    pipe = redis_.client().pipeline(transaction=False)
    for name, value in (("batch_size", size), ("match_seconds", match_seconds), ("commit_seconds", commit_seconds)):
        # Each bucket counts only its own values; the reader adds them up into Prometheus's cumulative ones.
        pipe.hincrby(key, f"{name}:{_bucket(HISTOGRAMS[name], value)}", 1)
        pipe.hincrbyfloat(key, f"{name}:sum", value)
    pipe.hincrby(key, "batches", 1)
    pipe.hincrby(key, "orders", size)
    pipe.hincrby(key, "trades", trades)
    pipe.execute()


def websocket_opened() -> bool:
    """Counts a connection in; False if it could not (then do not count it out either)."""
    try:
        redis_.client().incr(websockets_key())
    except Exception:  # noqa: BLE001 - a lost count must not cost the client its connection
        log.exception("cannot count a websocket connection")
        return False
    return True


def websocket_closed() -> None:
    try:
        redis_.client().decr(websockets_key())
    except Exception:  # noqa: BLE001
        log.exception("cannot count a websocket connection out")
