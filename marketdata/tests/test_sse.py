"""Depth over server-sent events from a real daphne process, fed by a real shard worker process."""

import json
import queue
import threading
import urllib.request
from decimal import Decimal

import pytest

from orders.services import order_cancel, order_place
from orders.tests.factories import MarketFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class SseReader:
    """Reads one event stream on a thread; each event lands in ``events`` as (type, id, data)."""

    def __init__(self, url: str, last_event_id: int | None = None):
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        fields: dict[str, str] = {}
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if not line:
                    if "data" in fields:
                        self.events.put((fields.get("event", "message"), int(fields["id"]), json.loads(fields["data"])))
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        except (OSError, ValueError, AttributeError):
            pass  # closed by the test (http.client drops its file under a reader that is still in it)

    def next(self, timeout: float = 30):
        return self.events.get(timeout=timeout)

    def close(self):
        self.response.close()


def apply(book: dict, kind: str, data: dict) -> None:
    for side in ("bids", "asks"):
        if kind == "snapshot":
            book[side] = {}
        for price, quantity in data[side]:
            if Decimal(quantity) == 0:
                book[side].pop(Decimal(price), None)
            else:
                book[side][Decimal(price)] = Decimal(quantity)


def rest_depth(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/v1/markets/BTC-USD/depth?limit=1000", timeout=30) as response:
        return json.load(response)


def follow_until(reader: SseReader, book: dict, sequence: int) -> list[tuple[str, int]]:
    """Applies events until the one with ``sequence``; returns (type, id) of each."""
    seen = []
    while not seen or seen[-1][1] < sequence:
        kind, event_id, data = reader.next()
        assert data["sequence"] == event_id
        apply(book, kind, data)
        seen.append((kind, event_id))
    return seen


def levels(book: dict, side: str) -> list[tuple[Decimal, Decimal]]:
    return sorted(book[side].items(), reverse=side == "bids")


def as_levels(rows) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in rows]


def test_depth_stream_snapshot_plus_updates_equals_rest_depth(live_server_url, shard_worker, funded):
    MarketFactory()
    traders = [funded(USD="100000", BTC="100") for _ in range(3)]
    stream_url = f"{live_server_url}/api/v1/markets/BTC-USD/depth/stream"
    reader = SseReader(stream_url)
    book: dict = {}
    kind, first_id, data = reader.next()
    assert kind == "snapshot"
    apply(book, kind, data)

    placed = []
    for n in range(40):
        side = "buy" if n % 2 else "sell"
        price = 100 + (n * 7) % 11 - 5 if side == "buy" else 100 + (n * 5) % 11 - 3
        order, _ = order_place(
            user=traders[n % 3], symbol="BTC-USD", side=side, price=str(price), quantity=f"0.{n % 9 + 1}"
        )
        placed.append((traders[n % 3], order.pk))
    for trader, order_id in placed[::5]:
        try:
            order_cancel(user=trader, order_id=order_id)
        except Exception:  # noqa: BLE001 - filled already
            pass
    shard_worker.wait_idle()

    rest = rest_depth(live_server_url)
    seen = follow_until(reader, book, rest["sequence"])
    assert {kind for kind, _ in seen} == {"update"}
    assert [event_id for _, event_id in seen] == list(range(first_id + 1, rest["sequence"] + 1))
    assert levels(book, "bids") == as_levels(rest["bids"])
    assert levels(book, "asks") == as_levels(rest["asks"])
    reader.close()

    # Reconnecting with the last id seen: nothing was missed, so no snapshot, only what comes next.
    current = SseReader(stream_url, last_event_id=rest["sequence"])
    order_place(user=traders[0], symbol="BTC-USD", side="buy", price="50", quantity="1")
    shard_worker.wait_idle()
    kind, event_id, data = current.next()
    assert (kind, event_id) == ("update", rest["sequence"] + 1)
    assert data["bids"] == [["50", "1"]]
    apply(book, kind, data)
    current.close()

    # Reconnecting with an older id: it missed something, so it starts from a fresh snapshot.
    stale = SseReader(stream_url, last_event_id=first_id)
    kind, event_id, data = stale.next()
    assert (kind, event_id) == ("snapshot", rest["sequence"] + 1)
    fresh: dict = {}
    apply(fresh, kind, data)
    assert fresh == book
    stale.close()


def test_depth_stream_of_an_unknown_market_is_a_404_in_the_error_format(live_server_url):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{live_server_url}/api/v1/markets/NOPE-USD/depth/stream", timeout=30)
    assert caught.value.code == 404
    assert json.load(caught.value)["error"]["code"] == "unknown_market"
