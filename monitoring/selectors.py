"""``GET /metrics``: the figures of ``monitoring.recorders`` (Redis) and the shard queues, in Prometheus text format."""

from __future__ import annotations

import json

from django.utils.dateparse import parse_datetime
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from exchange_site import redis as redis_
from matching.queue import queue_key
from orders.models import Market

from .recorders import HISTOGRAMS, ledger_check_key, orders_key, shard_key, websockets_key

HELP = {
    "batch_size": "Commands per batch the shard matched and committed.",
    "match_seconds": "Seconds the shard spent matching a batch (reading its orders, the engine, preparing the rows).",
    "commit_seconds": "Seconds the batch's settlement transaction took, commit included.",
}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _histogram(name: str, shards: dict[int, dict[str, str]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(f"exchange_shard_{name}", HELP[name], labels=["shard"])
    for shard, fields in sorted(shards.items()):
        running, buckets = 0, []
        for bound in (*map(repr, HISTOGRAMS[name]), "+Inf"):
            running += int(fields.get(f"{name}:{bound}", 0))
            buckets.append((bound, running))
        family.add_metric([str(shard)], buckets, float(fields.get(f"{name}:sum", 0)))
    return family


class ExchangeCollector:
    """Reads everything at scrape time: a few Redis round trips and one small query."""

    def collect(self):
        client = redis_.client()
        shard_ids = sorted(set(Market.objects.values_list("shard", flat=True).distinct()))
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(orders_key())
        pipe.get(websockets_key())
        pipe.get(ledger_check_key())
        for shard in shard_ids:
            pipe.hgetall(shard_key(shard))
            pipe.llen(queue_key(shard))
        orders, websockets, ledger, *per_shard = pipe.execute()
        orders = {_text(k): int(v) for k, v in orders.items()}
        shards = {shard: {_text(k): _text(v) for k, v in per_shard[2 * n].items()} for n, shard in enumerate(shard_ids)}
        depths = {shard: int(per_shard[2 * n + 1]) for n, shard in enumerate(shard_ids)}

        yield CounterMetricFamily(
            "exchange_orders_accepted", "Orders accepted at the door (201).", value=orders.get("accepted", 0)
        )
        yield CounterMetricFamily(
            "exchange_orders_replayed",
            "Order requests answered with an existing order (client_order_id sent again).",
            value=orders.get("replayed", 0),
        )
        refused = CounterMetricFamily(
            "exchange_orders_refused", "Orders refused at the door, by error code.", labels=["reason"]
        )
        for field, count in sorted(orders.items()):
            if field.startswith("refused:"):
                refused.add_metric([field.removeprefix("refused:")], count)
        yield refused

        for name in HISTOGRAMS:
            yield _histogram(name, shards)
        for name, help_text in (
            ("orders", "Commands (placements and cancels) the shard processed."),
            ("trades", "Trades the shard settled."),
        ):
            family = CounterMetricFamily(f"exchange_shard_{name}_processed", help_text, labels=["shard"])
            for shard, fields in sorted(shards.items()):
                family.add_metric([str(shard)], int(fields.get(name, 0)))
            yield family
        depth = GaugeMetricFamily(
            "exchange_shard_queue_depth", "Commands waiting in the shard's queue.", labels=["shard"]
        )
        for shard, length in sorted(depths.items()):
            depth.add_metric([str(shard)], length)
        yield depth

        yield GaugeMetricFamily(
            "exchange_websocket_connections",
            "Websocket connections open on the web processes.",
            value=int(websockets or 0),
        )
        yield from _ledger_check(ledger)


def _ledger_check(raw) -> list:
    """The last ledger_check run; nothing is reported until one ran."""
    if not raw:
        return []
    try:
        last = json.loads(raw)
        problems = last.get("problems") or 0
        # A count, or the list of problem lines ledger_check printed.
        problems = len(problems) if isinstance(problems, list) else int(problems)
        ok, seconds = bool(last["ok"]), float(last.get("seconds") or 0)
    except (ValueError, KeyError, TypeError):
        return []
    families = [
        GaugeMetricFamily("exchange_ledger_check_ok", "1 when the last ledger_check found no problem.", value=int(ok)),
        GaugeMetricFamily("exchange_ledger_check_problems", "Problems the last ledger_check found.", value=problems),
        GaugeMetricFamily("exchange_ledger_check_seconds", "How long the last ledger_check took.", value=seconds),
    ]
    at = _unix_seconds(last.get("at"))
    if at is not None:
        families.append(
            GaugeMetricFamily("exchange_ledger_check_timestamp_seconds", "When the last ledger_check ran.", value=at)
        )
    return families


def _unix_seconds(at) -> float | None:
    """``at`` as Unix seconds: the task may write a number or an ISO 8601 text."""
    if isinstance(at, (int, float)):
        return float(at)
    moment = parse_datetime(at) if isinstance(at, str) else None
    return moment.timestamp() if moment is not None and moment.tzinfo is not None else None


def metrics_text() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExchangeCollector())
    return generate_latest(registry)
