"""A seeded random stream through the real API, two web processes and the shard, with SIGKILLs and a
Redis flush, checked against the reference model and the ledger (see stream.py).

Bounded for `make test` (``--stream-orders``, 4,000 by default: about 15 s of streaming with four
faults); `make soak` runs it long.
"""

import json

import pytest

from exchange_site.testing import BASE_DIR

from .stream import stream_run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_seeded_random_stream_with_crashes_matches_the_reference_model(
    private_redis, shard_worker, web_tier, request
):
    option = request.config.getoption
    orders = option("stream_orders")
    figures = stream_run(
        url=web_tier.url,
        shard=shard_worker,
        web=web_tier,
        redis_server=private_redis,
        seed=option("stream_seed"),
        orders=orders,
        markets=option("stream_markets"),
        users=option("stream_users"),
        kills=option("stream_kills") if option("stream_kills") is not None else max(4, orders // 2000),
        seconds=option("stream_seconds"),
        progress=lambda line: print(line, flush=True),
    )
    report = json.dumps({**figures, "problems": figures["problems"][:50]}, indent=2)
    (BASE_DIR / "artifacts").mkdir(exist_ok=True)
    (BASE_DIR / "artifacts" / f"stream-seed{figures['seed']}.json").write_text(report)
    print("\n" + report)
    assert figures["problems"] == []
    assert figures["orders_accepted"] > figures["orders_sent"] // 2
    assert figures["trades"] > 0
    assert sum(figures["kills"].values()) > 0
