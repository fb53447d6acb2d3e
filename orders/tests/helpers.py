"""What the order API tests read and send: an authenticated client, the shard queue, a balance."""

from rest_framework.test import APIClient

from accounts.services import token_create
from exchange_site import redis as redis_
from ledger.selectors import balances_for_user
from matching.queue import queue_key


def api(user) -> APIClient:
    client = APIClient()
    _, key = token_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def queued(shard=0) -> list[bytes]:
    return redis_.client().lrange(queue_key(shard), 0, -1)


def balance(user, asset):
    return next((row["available"], row["locked"]) for row in balances_for_user(user=user) if row["asset"] == asset)
