"""Operators halt, resume and edit markets: through the services, refused when wrong, always audited."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.services import token_create
from audit.models import AuditEntry
from exchange_site.errors import RuleViolation
from orders.models import Market, Order
from orders.services import market_update, order_place

from .factories import MarketFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(db):
    return MarketFactory()


def api(user) -> APIClient:
    client = APIClient()
    _, key = token_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


BUY = {"symbol": "BTC-USD", "side": "buy", "price": "100", "quantity": "0.1"}


def test_haltmarket_refuses_new_orders_with_409_keeps_cancels_and_is_audited(market, funded):
    trader = funded(USD="1000")
    client = api(trader)
    resting = client.post("/api/v1/orders", BUY, format="json").json()

    call_command("haltmarket", "btc-usd", "--reason", "price feed stale")

    assert Market.objects.get(pk=market.pk).status == Market.Status.HALTED
    refused = client.post("/api/v1/orders", BUY, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "market_halted"
    assert client.delete(f"/api/v1/orders/{resting['id']}").status_code == 202
    entry = AuditEntry.objects.get(action="market_halt")
    assert (entry.actor_label, entry.target, entry.reason) == (
        "manage.py haltmarket",
        "market:BTC-USD",
        "price feed stale",
    )


def test_resumemarket_lets_orders_in_again_and_is_audited(market, funded):
    trader = funded(USD="1000")
    call_command("haltmarket", "BTC-USD", "--reason", "maintenance")
    call_command("resumemarket", "BTC-USD")
    assert api(trader).post("/api/v1/orders", BUY, format="json").status_code == 201
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_label")) == [
        ("market_halt", "manage.py haltmarket"),
        ("market_resume", "manage.py resumemarket"),
    ]


def test_halting_needs_a_reason_and_a_halted_market_is_not_halted_twice(market):
    with pytest.raises(CommandError):
        call_command("haltmarket", "BTC-USD", "--reason", "  ")
    call_command("haltmarket", "BTC-USD", "--reason", "incident 42")
    with pytest.raises(CommandError, match="already halted"):
        call_command("haltmarket", "BTC-USD", "--reason", "again")
    with pytest.raises(CommandError, match="No market"):
        call_command("resumemarket", "ETH-USD")
    assert AuditEntry.objects.filter(action="market_halt").count() == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"maker_fee": "1"}, "invalid_fee"),
        ({"taker_fee": "-0.001"}, "invalid"),
        ({"taker_fee": "0.0000001"}, "invalid"),
        ({"min_notional": "-1"}, "invalid"),
        ({"protection_pct": "0"}, "invalid"),
        ({"protection_pct": "75"}, "invalid"),
        ({"tick_size": "0.1"}, "field_not_editable"),
        ({"lot_size": "1"}, "field_not_editable"),
        ({"shard": 3}, "field_not_editable"),
        ({"status": "halted"}, "field_not_editable"),
    ],
)
def test_market_update_refuses_what_would_break_a_live_market(market, user, fields, code):
    before = Market.objects.filter(pk=market.pk).values().get()
    with pytest.raises(RuleViolation) as caught:
        market_update(market=market, actor=user, **fields)
    assert caught.value.code == code
    assert Market.objects.filter(pk=market.pk).values().get() == before
    assert not AuditEntry.objects.exists()


def test_market_update_changes_fees_and_records_old_and_new(market, user):
    market_update(market=market, actor=user, maker_fee="0", taker_fee="0.0015", min_notional="5")
    market.refresh_from_db()
    assert (market.maker_fee, market.taker_fee, market.min_notional) == (Decimal(0), Decimal("0.0015"), Decimal(5))
    entry = AuditEntry.objects.get(action="market_update")
    assert entry.actor == user
    assert set(entry.details) == {"maker_fee", "taker_fee", "min_notional"}
    assert Decimal(entry.details["taker_fee"][0]) == Decimal("0.002")
    assert Decimal(entry.details["taker_fee"][1]) == Decimal("0.0015")


def test_new_minimum_applies_to_the_next_order(market, funded, user):
    market_update(market=market, actor=user, min_notional="50")
    with pytest.raises(RuleViolation) as caught:
        order_place(user=funded(USD="1000"), symbol="BTC-USD", side="buy", price="100", quantity="0.1")
    assert caught.value.code == "below_min_notional"
    assert not Order.objects.exists()


def change_url(market) -> str:
    return f"/admin/orders/market/{market.pk}/change/"


def admin_post(admin_client, market, **changes):
    data = {
        "min_notional": str(market.min_notional),
        "maker_fee": str(market.maker_fee),
        "taker_fee": str(market.taker_fee),
        "protection_pct": str(market.protection_pct),
        **changes,
    }
    return admin_client.post(change_url(market), data)


def test_admin_edits_go_through_the_service_and_are_audited(admin_client, market):
    response = admin_post(admin_client, market, taker_fee="0.003", tick_size="5", shard="2")
    assert response.status_code == 302, response.content
    market.refresh_from_db()
    assert market.taker_fee == Decimal("0.003")
    # Increments and the shard are read-only in the form: posting them changes nothing.
    assert (market.tick_size, market.shard) == (Decimal("0.01"), 0)
    entry = AuditEntry.objects.get(action="market_update")
    assert entry.actor.username == "admin" and list(entry.details) == ["taker_fee"]


def test_admin_shows_a_refused_edit_on_the_form_and_changes_nothing(admin_client, market):
    response = admin_post(admin_client, market, maker_fee="1.5")
    assert response.status_code == 200
    assert "Fees are rates below 1" in response.content.decode() or "Must be below 1" in response.content.decode()
    market.refresh_from_db()
    assert market.maker_fee == Decimal("0.001")
    assert not AuditEntry.objects.exists()


def test_admin_halt_asks_for_a_reason_then_halts_and_audits(admin_client, market):
    changelist = "/admin/orders/market/"
    asked = admin_client.post(changelist, {"action": "halt", "_selected_action": [market.pk]})
    assert asked.status_code == 200 and "reason" in asked.content.decode()
    assert Market.objects.get(pk=market.pk).status == Market.Status.OPEN

    done = admin_client.post(
        changelist, {"action": "halt", "_selected_action": [market.pk], "apply": "1", "reason": "exchange incident"}
    )
    assert done.status_code == 302
    assert Market.objects.get(pk=market.pk).status == Market.Status.HALTED
    assert AuditEntry.objects.get(action="market_halt").reason == "exchange incident"

    admin_client.post(changelist, {"action": "resume", "_selected_action": [market.pk]})
    assert Market.objects.get(pk=market.pk).status == Market.Status.OPEN
    assert AuditEntry.objects.filter(action="market_resume").count() == 1


def test_admin_creates_markets_through_market_create(admin_client, db):
    data = {
        "symbol": "eth-usd",
        "tick_size": "0.01",
        "lot_size": "0.0001",
        "min_notional": "1",
        "maker_fee": "0.001",
        "taker_fee": "0.002",
        "shard": "0",
    }
    assert admin_client.post("/admin/orders/market/add/", data).status_code == 302
    market = Market.objects.get(symbol="ETH-USD")
    assert (market.base.code, market.quote.code) == ("ETH", "USD")
    assert AuditEntry.objects.get(action="market_create").target == "market:ETH-USD"
    bad = admin_client.post("/admin/orders/market/add/", {**data, "symbol": "ETHUSD"})
    assert bad.status_code == 200 and "BASE-QUOTE" in bad.content.decode()
