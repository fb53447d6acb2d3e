"""Which users have a live private stream, so the shard worker renders and sends only their events.

A websocket that subscribes to a user's private channels counts itself in (one Redis counter per
user) before it joins the user's group, and out after it leaves. The shard worker asks once per
batch which of the batch's users count above zero and builds order, fill and balance events only
for those: a batch touches every user with an order in it, most of them bots on the REST API.

A server process that dies without counting out leaves a counter too high, which costs only events
nobody receives; a flushed Redis forgets the counters as it forgets the channel layer's groups.
"""

from __future__ import annotations

from exchange_site import redis as redis_


def presence_key(user_id: int) -> str:
    return redis_.key("stream", "user", int(user_id))


def stream_opened(*, user_id: int) -> None:
    redis_.client().incr(presence_key(user_id))


def stream_closed(*, user_id: int) -> None:
    redis_.client().decr(presence_key(user_id))


def users_streaming(*, user_ids) -> set[int]:
    """Those of ``user_ids`` with at least one private stream open: one round trip."""
    ids = sorted({int(user_id) for user_id in user_ids})
    if not ids:
        return set()
    counts = redis_.client().mget([presence_key(user_id) for user_id in ids])
    return {user_id for user_id, count in zip(ids, counts, strict=True) if count is not None and int(count) > 0}
