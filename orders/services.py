"""Markets, and placing and canceling orders. The rules of what an order may be live here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from functools import partial

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.services import audit_record
from exchange_site.db import retry_on_deadlock
from exchange_site.errors import NotFound, RuleViolation
from exchange_site.local_cache import VersionedCache
from ledger.amounts import amount_parse
from ledger.models import Asset
from ledger.services import FundsMoved, InsufficientFunds, asset_get_or_create, hold_accounts_read, holds_post
from matching.queue import CANCEL, PLACE, commands_push, market_status_changed, shard_alive, top_of_book_get

from . import journal
from .models import Market, Order
from .selectors import order_for_client_id


def _decimal(value, field: str, *, allow_zero: bool = False) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RuleViolation(
            "invalid", f"{field} must be a decimal number.", fields={field: ["Not a number."]}
        ) from None
    if not number.is_finite() or number < 0 or (number == 0 and not allow_zero):
        raise RuleViolation("invalid", f"{field} must be positive.", fields={field: ["Must be positive."]})
    return number


def market_create(
    *,
    symbol: str,
    tick_size,
    lot_size,
    min_notional=Decimal(0),
    maker_fee=Decimal("0.001"),
    taker_fee=Decimal("0.002"),
    shard: int = 0,
    actor=None,
) -> Market:
    """A new market (its assets created as needed); audited when an operator (``actor``) creates it."""
    symbol = (symbol or "").strip().upper()
    base_code, sep, quote_code = symbol.partition("-")
    if not sep or not base_code or not quote_code or base_code == quote_code:
        raise RuleViolation(
            "invalid_symbol", "A symbol is BASE-QUOTE, like BTC-USD.", fields={"symbol": ["Use BASE-QUOTE."]}
        )
    tick = _decimal(tick_size, "tick_size")
    lot = _decimal(lot_size, "lot_size")
    maker = _decimal(maker_fee, "maker_fee", allow_zero=True)
    taker = _decimal(taker_fee, "taker_fee", allow_zero=True)
    if maker >= 1 or taker >= 1:
        raise RuleViolation("invalid_fee", "Fees are rates below 1 (0.001 is 0.1%).")
    base = asset_get_or_create(code=base_code)
    quote = asset_get_or_create(code=quote_code)
    unit = Decimal(1).scaleb(-quote.precision)
    # Every trade's notional (a multiple of tick x lot) must be exactly representable in the quote asset.
    if (tick * lot) % unit or lot % Decimal(1).scaleb(-base.precision):
        raise RuleViolation(
            "invalid_increments",
            f"tick_size x lot_size must be a multiple of {unit} {quote.code}, and lot_size of the {base.code} precision.",
        )
    with transaction.atomic():
        market, created = Market.objects.get_or_create(
            symbol=symbol,
            defaults={
                "base": base,
                "quote": quote,
                "tick_size": tick,
                "lot_size": lot,
                "min_notional": _decimal(min_notional, "min_notional", allow_zero=True),
                "maker_fee": maker,
                "taker_fee": taker,
                "shard": shard,
            },
        )
        if not created:
            raise RuleViolation("market_exists", f"Market {symbol} already exists.", status_code=409)
        if actor is not None:
            audit_record(
                actor=actor,
                action="market_create",
                target=f"market:{symbol}",
                details={"tick_size": str(tick), "lot_size": str(lot), "shard": shard},
            )
    return market


def market_set_status(*, market: Market, status: str) -> Market:
    if status not in Market.Status.values:
        raise RuleViolation("invalid_status", f"Market status is one of {', '.join(Market.Status.values)}.")
    Market.objects.filter(pk=market.pk).update(status=status)
    # The shard applies it in queue order, between the orders accepted before and after.
    transaction.on_commit(partial(market_status_changed, shard=market.shard, market_id=market.pk), robust=True)
    markets_changed()  # every process's market memo: a halt refuses orders at once
    market.status = status
    return market


def _market_locked(market: Market) -> Market:
    return Market.objects.select_for_update().get(pk=market.pk)


def market_halt(*, market: Market, reason: str, actor) -> Market:
    """Stop trading: new orders are refused (409 market_halted), the shard matches nothing; cancels still work."""
    reason = (reason or "").strip()
    if not reason:
        raise RuleViolation("reason_required", "Say why the market is halted.", fields={"reason": ["Required."]})
    # Not durable: the admin calls this inside a transaction of its own.
    with transaction.atomic():
        market = _market_locked(market)
        if market.status == Market.Status.HALTED:
            raise RuleViolation("market_already_halted", f"{market.symbol} is already halted.", status_code=409)
        market_set_status(market=market, status=Market.Status.HALTED)
        audit_record(actor=actor, action="market_halt", target=f"market:{market.symbol}", reason=reason)
    return market


def market_resume(*, market: Market, actor, reason: str = "") -> Market:
    """Trading goes on: orders are accepted and matched again."""
    with transaction.atomic():
        market = _market_locked(market)
        if market.status == Market.Status.OPEN:
            raise RuleViolation("market_not_halted", f"{market.symbol} is not halted.", status_code=409)
        market_set_status(market=market, status=Market.Status.OPEN)
        audit_record(actor=actor, action="market_resume", target=f"market:{market.symbol}", reason=reason)
    return market


# What an operator may change on a live market. Symbol, assets, tick and lot sizes and the shard
# are fixed once the market exists (resting orders and the shard's books are built on them); the
# status changes through market_halt / market_resume.
MARKET_EDITABLE = ("min_notional", "maker_fee", "taker_fee", "protection_pct")


def _places(value: Decimal, field: str, places: int) -> Decimal:
    if value != value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR):
        raise RuleViolation(
            "invalid", f"{field} has at most {places} decimal places.", fields={field: ["Too many decimal places."]}
        )
    return value


def market_fields_clean(**fields) -> dict[str, Decimal]:
    """The given market fields, validated: the rules of market_update, for forms that check before saving."""
    cleaned: dict[str, Decimal] = {}
    for name, value in fields.items():
        if name not in MARKET_EDITABLE:
            raise RuleViolation(
                "field_not_editable",
                f"{name} cannot be changed on an existing market"
                + (" (halt or resume it instead)." if name == "status" else "."),
                fields={name: ["Not editable."]},
            )
        number = _decimal(value, name, allow_zero=name != "protection_pct")
        if name in ("maker_fee", "taker_fee"):
            if number >= 1:
                raise RuleViolation(
                    "invalid_fee", "Fees are rates below 1 (0.001 is 0.1%).", fields={name: ["Must be below 1."]}
                )
            number = _places(number, name, 6)
        elif name == "protection_pct":
            # A market order may trade up to this far from the best price: beyond 50% it protects nothing.
            if number > 50:
                raise RuleViolation(
                    "invalid",
                    "protection_pct is a percentage above 0, at most 50.",
                    fields={name: ["Above 0, at most 50."]},
                )
            number = _places(number, name, 2)
        else:
            number = _places(number, name, 18)
        cleaned[name] = number
    return cleaned


def market_update(*, market: Market, actor, **fields) -> Market:
    """Change a market's fees, minimum notional or protection; audited with the old and new values."""
    cleaned = market_fields_clean(**fields)
    with transaction.atomic():
        market = _market_locked(market)
        changes = {
            name: [str(getattr(market, name)), str(value)]
            for name, value in cleaned.items()
            if getattr(market, name) != value
        }
        if not changes:
            return market
        for name in changes:
            setattr(market, name, cleaned[name])
        market.save(update_fields=list(changes))
        audit_record(actor=actor, action="market_update", target=f"market:{market.symbol}", details=changes)
    return market


# --- placing and canceling -------------------------------------------------------------------
#
# Threads: web request threads, the API's database threads (orders/db_threads.py) and websocket
# consumers call these services at once. What they share: the market memo below and the ledger's
# account-id memo, both safe to share (see exchange_site/local_cache.py and ledger/services.py).
# Everything else is per call.

_markets = VersionedCache("markets", ttl=30.0)


def _market_load(symbol: str) -> Market | None:
    return Market.objects.select_related("base", "quote").filter(symbol=symbol).first()


def market_lookup(*, symbol: str) -> Market | None:
    """The market of a symbol (any status), from the per-process memo; None if there is none."""
    if not isinstance(symbol, str) or not symbol or len(symbol) > 32:
        return None
    return _markets.get(symbol.upper(), _market_load)


def market_for_trading(*, symbol: str) -> Market:
    """The one place a market is checked as tradeable: it exists and it is open."""
    market = market_lookup(symbol=symbol)
    if market is None:
        raise RuleViolation("unknown_market", f"Unknown market {symbol!r}.", fields={"symbol": ["Unknown market."]})
    if market.status != Market.Status.OPEN:
        raise RuleViolation(
            "market_halted",
            f"Trading in {market.symbol} is halted.",
            fields={"symbol": ["Market halted."]},
            status_code=409,
        )
    if settings.SHARD_ALIVE_REQUIRED:
        try:
            alive = shard_alive(market.shard)
        except Exception:  # noqa: BLE001 - Redis down: the shard's database sweep still brings the order
            alive = True
        if not alive:
            raise RuleViolation(
                "market_unavailable",
                f"Matching for {market.symbol} is unavailable; try again shortly.",
                status_code=503,
            )
    return market


def markets_changed() -> None:
    """Every process forgets its market memo (on commit): call after any change to a market row."""
    _markets.invalidate()


def _market_saved(sender, **kwargs) -> None:
    markets_changed()


post_save.connect(_market_saved, sender=Market, dispatch_uid="orders.market_saved")
post_delete.connect(_market_saved, sender=Market, dispatch_uid="orders.market_deleted")


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def _invalid(field: str, message: str, detail: str) -> RuleViolation:
    return RuleViolation("invalid", message, fields={field: [detail]})


@dataclass(slots=True)
class OrderRequest:
    """An order request checked for shape (types, choices, amounts), before any market rule."""

    symbol: str
    side: str
    type: str
    price: Decimal | None
    quantity: Decimal | None
    quote_quantity: Decimal | None
    time_in_force: str
    post_only: bool
    stp: str
    client_order_id: str | None
    expire_at: datetime | None

    def same_as(self, order: Order) -> bool:
        """Whether ``order`` is what this request asks for (a client_order_id replay)."""
        return (
            self.symbol == order.market.symbol
            and (self.side, self.type, self.time_in_force, self.post_only, self.stp)
            == (order.side, order.type, order.time_in_force, order.post_only, order.stp)
            and (self.price, self.quantity, self.quote_quantity, self.expire_at)
            == (order.price, order.quantity, order.quote_quantity, order.expire_at)
        )


_TRUE = frozenset([True, "true", "True", "1", 1])
_FALSE = frozenset([False, "false", "False", "0", 0])


def _choice(raw: dict, field: str, choices, default=None) -> str:
    value = raw.get(field, default)
    if not isinstance(value, str) or value not in choices:
        raise _invalid(field, f"{field} is one of {', '.join(choices)}.", f"Must be one of {', '.join(choices)}.")
    return value


def _optional_amount(raw: dict, field: str) -> Decimal | None:
    value = raw.get(field)
    if value is None or value == "":
        return None
    return amount_parse(value, field=field)


def _expire_at(raw: dict) -> datetime | None:
    value = raw.get("expire_at")
    if value is None or value == "":
        return None
    try:
        moment = parse_datetime(value) if type(value) is str and len(value) <= 40 else None
    except ValueError:  # well formed but impossible, such as month 13
        moment = None
    if moment is None:
        raise _invalid("expire_at", "expire_at is an ISO 8601 time.", "An ISO 8601 time, e.g. 2030-01-01T00:00:00Z.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)  # the API's times are UTC
    # Stored to the microsecond, as the database keeps it, so a replay compares equal.
    return moment.astimezone(UTC)


def order_request_parse(raw) -> OrderRequest:
    """Check an order request's shape: JSON types, choices, strict amount strings. No market rule yet."""
    if not isinstance(raw, dict):
        raise RuleViolation("invalid", "An order is a JSON object.")
    symbol = raw.get("symbol")
    if type(symbol) is not str or not symbol or len(symbol) > 32:
        raise _invalid("symbol", "symbol is a market symbol such as BTC-USD.", "A market symbol.")
    side = _choice(raw, "side", Order.Side.values)
    order_type = _choice(raw, "type", Order.Type.values, Order.Type.LIMIT)
    time_in_force = _choice(raw, "time_in_force", Order.TimeInForce.values, Order.TimeInForce.GTC)
    stp = _choice(raw, "stp", Order.Stp.values, Order.Stp.CANCEL_NEWEST)
    post_only = raw.get("post_only", False)
    if post_only not in _TRUE and post_only not in _FALSE:
        raise _invalid("post_only", "post_only is true or false.", "Must be true or false.")
    post_only = post_only in _TRUE and post_only is not False
    client_order_id = raw.get("client_order_id")
    if client_order_id is not None and type(client_order_id) is not str:
        raise _invalid("client_order_id", "client_order_id is a string.", "Must be a string.")
    client_order_id = (client_order_id or "").strip() or None
    if client_order_id is not None and len(client_order_id) > 36:
        raise _invalid("client_order_id", "client_order_id has at most 36 characters.", "Too long.")
    request = OrderRequest(
        symbol=symbol.upper(),
        side=side,
        type=order_type,
        price=_optional_amount(raw, "price"),
        quantity=_optional_amount(raw, "quantity"),
        quote_quantity=_optional_amount(raw, "quote_quantity"),
        time_in_force=time_in_force,
        post_only=post_only,
        stp=stp,
        client_order_id=client_order_id,
        expire_at=_expire_at(raw),
    )
    _request_rules(request)
    return request


def _request_rules(request: OrderRequest) -> None:
    """The rules that need no market: which fields go with which order type."""
    if request.type == Order.Type.LIMIT:
        if request.price is None:
            raise _invalid("price", "A limit order needs a price.", "Required for limit orders.")
        if request.quantity is None:
            raise _invalid("quantity", "A limit order needs a quantity.", "Required.")
        if request.quote_quantity is not None:
            raise _invalid("quote_quantity", "quote_quantity is for market buys only.", "Market buys only.")
    else:
        if request.price is not None:
            raise _invalid("price", "A market order takes no price.", "Not allowed for market orders.")
        if request.post_only:
            raise _invalid("post_only", "A market order cannot be post-only.", "Not allowed for market orders.")
        if (request.quantity is None) == (request.quote_quantity is None):
            raise _invalid(
                "quantity",
                "A market order gives either quantity or quote_quantity.",
                "Give quantity or quote_quantity.",
            )
        if request.quote_quantity is not None and request.side == Order.Side.SELL:
            raise _invalid("quote_quantity", "quote_quantity is for market buys only.", "Market buys only.")
        if request.time_in_force == Order.TimeInForce.GTD:
            raise _invalid("time_in_force", "A market order never rests, so it cannot be GTD.", "Not GTD.")
        if request.time_in_force == Order.TimeInForce.GTC:
            request.time_in_force = Order.TimeInForce.IOC  # a market order never rests
    if request.time_in_force == Order.TimeInForce.GTD:
        if request.expire_at is None:
            raise _invalid("expire_at", "A GTD order needs expire_at.", "Required for GTD orders.")
        if request.expire_at <= timezone.now():
            raise _invalid("expire_at", "expire_at must be in the future.", "Must be in the future.")
    elif request.expire_at is not None:
        raise _invalid("expire_at", "expire_at is for GTD orders only.", 'Only with time_in_force "GTD".')


@dataclass(slots=True)
class _Draft:
    """An order that passed every rule but the funds check, and what it must hold."""

    request: OrderRequest
    market: Market
    hold_asset: Asset
    hold: Decimal
    protection_price: Decimal | None


_HOLD_LIMIT = Decimal(10) ** 18  # the amount columns' integer digits


def _draft(request: OrderRequest, market: Market) -> _Draft:
    """Apply the market's rules (tick, lot, engine units, min notional, protection) to a shaped request."""
    # Exact arithmetic: amounts carry up to 36 digits, the default context rounds at 28.
    with localcontext(prec=80):
        return _draft_exact(request, market)


def _draft_exact(request: OrderRequest, market: Market) -> _Draft:
    price, quantity, quote_quantity, side = request.price, request.quantity, request.quote_quantity, request.side
    if quantity is not None and quantity % market.lot_size:
        lot = market.lot_size.normalize()
        raise RuleViolation(
            "invalid_quantity",
            f"quantity must be a multiple of the lot size {lot}.",
            fields={"quantity": [f"Must be a multiple of {lot}."]},
        )
    if price is not None and price % market.tick_size:
        tick = market.tick_size.normalize()
        raise RuleViolation(
            "invalid_price",
            f"price must be a multiple of the tick size {tick}.",
            fields={"price": [f"Must be a multiple of {tick}."]},
        )
    protection_price = None
    if request.type == Order.Type.LIMIT:
        notional = price * quantity
        hold = notional if side == Order.Side.BUY else quantity
    elif side == Order.Side.BUY:
        if quote_quantity is not None:
            _quote_budget_check(quote_quantity, market)
        best_ask = _best(market, "ask")
        protection_price = _ceil_to(best_ask * (1 + market.protection_pct / 100), market.tick_size)
        notional = quote_quantity if quote_quantity is not None else best_ask * quantity
        hold = quote_quantity if quote_quantity is not None else protection_price * quantity
    else:
        best_bid = _best(market, "bid")
        protection_price = max(
            _floor_to(best_bid * (1 - market.protection_pct / 100), market.tick_size), market.tick_size
        )
        notional = best_bid * quantity
        hold = quantity
    if notional < market.min_notional:
        minimum = f"{market.min_notional.normalize()} {market.quote.code}"
        raise RuleViolation(
            "below_min_notional",
            f"The order is worth less than the minimum {minimum}.",
            fields={"quantity": [f"Order value must be at least {minimum}."]},
        )
    if hold >= _HOLD_LIMIT:
        raise _invalid("quantity", "The order is too large.", "Too large.")
    hold_asset = market.quote if side == Order.Side.BUY else market.base
    return _Draft(request=request, market=market, hold_asset=hold_asset, hold=hold, protection_price=protection_price)


def _quote_budget_check(quote_quantity: Decimal, market: Market) -> None:
    places = market.quote.precision
    if quote_quantity != quote_quantity.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR):
        raise _invalid("quote_quantity", f"quote_quantity has at most {places} decimal places.", "Too many digits.")
    # The engine counts a quote budget in units of tick x lot (the smallest notional): less is nothing.
    unit = market.tick_size * market.lot_size
    if quote_quantity < unit:
        raise RuleViolation(
            "quote_quantity_too_small",
            f"quote_quantity must be at least one tick x lot ({unit.normalize()} {market.quote.code}).",
            fields={"quote_quantity": [f"At least {unit.normalize()}."]},
        )


def _best(market: Market, side: str) -> Decimal:
    best_bid, best_ask = top_of_book_get(symbol=market.symbol)
    price = best_ask if side == "ask" else best_bid
    if not price:
        who = "selling" if side == "ask" else "buying"
        raise RuleViolation("no_liquidity", f"No one is {who} {market.symbol} right now.")
    return Decimal(price)


@dataclass(slots=True)
class PlaceResult:
    """One request's outcome: 201 placed, 200 an earlier order with this client_order_id, or a 4xx error."""

    status: int
    order: Order | None = None
    error: RuleViolation | None = None


def _replayed(request: OrderRequest, order: Order) -> PlaceResult:
    if request.same_as(order):
        return PlaceResult(status=200, order=order)
    return PlaceResult(
        status=409,
        error=RuleViolation(
            "client_order_id_reused",
            f"client_order_id {request.client_order_id!r} was used for a different order ({order.pk}).",
            fields={"client_order_id": ["Already used for a different order."]},
            status_code=409,
        ),
    )


def _failed(error: RuleViolation) -> PlaceResult:
    return PlaceResult(status=error.status_code, error=error)


def orders_place(*, user, requests: Sequence) -> list[PlaceResult]:
    """Place one user's order requests (raw dicts as a client sent them), each standing alone.

    Returns one PlaceResult per request, in order. See ``orders_place_many``.
    """
    return orders_place_many(entries=[(user, requests)])[0]


def orders_place_many(*, entries: Sequence[tuple[object, Sequence]]) -> list[list[PlaceResult]]:
    """Place several users' order requests at once: ``entries`` = [(user, requests)], answered per entry.

    Every request is checked in Python; those that pass are placed together in ONE transaction:
    every user's accounts locked by one SELECT ... FOR UPDATE, the orders that fit each user's
    funds (in request order) inserted with their hold transfers and "accepted" events, queued on
    commit. The order door groups concurrent requests this way (orders/placement_groups.py).
    """
    for attempt in range(3):
        try:
            return _orders_place_many(entries)
        except IntegrityError:
            # A client_order_id raced in from another request: the next round finds the order that won.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@dataclass(slots=True)
class _Entry:
    """One user's requests on their way through placement: answers so far, drafts, later repeats."""

    user: object
    requests: Sequence
    results: list
    drafts: dict[int, _Draft]
    repeats: list[int]
    still_pending: list[Order]  # replayed orders the shard has not taken yet


def _orders_place_many(entries: Sequence[tuple[object, Sequence]], *, requeue: bool = True) -> list[list[PlaceResult]]:
    first_of_id: set[tuple[int, str]] = set()
    prepared = [_entry_prepare(user, requests, first_of_id) for user, requests in entries]
    still_pending = [order for entry in prepared for order in entry.still_pending]
    if still_pending and requeue:
        # A replay is how a client retries after a lost answer, and the process that committed the
        # order may have died before its queue push: queue it again now, ahead of whatever the
        # client sends next, instead of leaving it to the shard's sweep, which would match it behind
        # orders accepted after it. A second command for an order already matched is a no-op.
        transaction.on_commit(partial(_commands_push, kind=PLACE, orders=still_pending), robust=True)
    placed = _drafts_place(entries=[(entry.user, entry.drafts) for entry in prepared])
    for entry, outcomes in zip(prepared, placed, strict=True):
        for index, outcome in outcomes.items():
            entry.results[index] = (
                PlaceResult(status=201, order=outcome) if isinstance(outcome, Order) else _failed(outcome)
            )
        if entry.repeats:
            # A client_order_id seen earlier in the same set: answered as a replay of the first, which
            # this call has just placed and queued (nothing to queue again).
            again = _orders_place_many([(entry.user, [entry.requests[i] for i in entry.repeats])], requeue=False)[0]
            for index, result in zip(entry.repeats, again, strict=True):
                entry.results[index] = result
    return [entry.results for entry in prepared]


def _entry_prepare(user, requests: Sequence, first_of_id: set[tuple[int, str]]) -> _Entry:
    """Parse and check one user's requests: replays answered, the rest drafted or refused."""
    entry = _Entry(
        user=user, requests=requests, results=[None] * len(requests), drafts={}, repeats=[], still_pending=[]
    )
    parsed: dict[int, OrderRequest] = {}
    for index, raw in enumerate(requests):
        try:
            parsed[index] = order_request_parse(raw)
        except RuleViolation as error:
            entry.results[index] = _failed(error)
    client_ids = {request.client_order_id for request in parsed.values() if request.client_order_id}
    existing = _orders_by_client_id(user=user, client_order_ids=client_ids) if client_ids else {}
    for index, request in parsed.items():
        client_order_id = request.client_order_id
        if client_order_id in existing:
            result = entry.results[index] = _replayed(request, existing[client_order_id])
            if result.status == 200 and result.order.status == Order.Status.PENDING:
                entry.still_pending.append(result.order)
            continue
        if client_order_id is not None:
            if (user.pk, client_order_id) in first_of_id:
                entry.repeats.append(index)  # answered after the first one is placed (or refused)
                continue
            first_of_id.add((user.pk, client_order_id))
        try:
            entry.drafts[index] = _draft(request, market_for_trading(symbol=request.symbol))
        except RuleViolation as error:
            entry.results[index] = _failed(error)
    return entry


def _orders_by_client_id(*, user, client_order_ids) -> dict[str, Order]:
    orders = Order.objects.filter(user=user, client_order_id__in=client_order_ids).select_related("market")
    return {order.client_order_id: order for order in orders}


_ORDER_COLUMNS = (
    "user_id, market_id, client_order_id, side, type, price, quantity, quote_quantity, protection_price, "
    "time_in_force, post_only, stp, status, filled_quantity, filled_quote, hold_remaining, reject_reason, "
    "expire_at, created_at, updated_at"
)
_ORDER_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending', 0, 0, %s, '', %s, %s, %s)"
_EVENT_COLUMNS = "order_id, type, at, filled_quantity, filled_quote, remaining_quantity, price, quantity, reason"


def _naive(moment: datetime | None) -> datetime | None:
    """A time as raw SQL parameters need it: MariaDB stores naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment is not None else None


def _drafts_place(*, entries: list[tuple[object, dict[int, _Draft]]]) -> list[dict[int, Order | RuleViolation]]:
    """Hold and insert the drafts that fit their users' funds, in order, in one durable transaction.

    ``entries`` = [(user, {request index: draft})]; returns {request index: order or error} per entry.
    The balances are read without a lock and the accounts locked only by the hold's UPDATE, two
    statements before the commit: the shard's settlement waits on those rows, so they stay locked
    for as short a time as possible. When a balance moved between the read and the UPDATE, the
    transaction is rolled back and the drafts placed again with the accounts locked first.
    """
    wanted = {(user.pk, draft.hold_asset.id): draft.hold_asset for user, drafts in entries for draft in drafts.values()}
    if not wanted:
        return [{} for _ in entries]
    try:
        return _drafts_hold(entries=entries, wanted=wanted, lock_first=False)
    except FundsMoved:
        return _drafts_hold(entries=entries, wanted=wanted, lock_first=True)


@retry_on_deadlock
def _drafts_hold(*, entries, wanted: dict, lock_first: bool) -> list[dict[int, Order | RuleViolation]]:
    outcomes: list[dict[int, Order | RuleViolation]] = [{} for _ in entries]
    with transaction.atomic(durable=True):
        pairs = [(user_id, asset) for (user_id, _), asset in wanted.items()]
        accounts = hold_accounts_read(wanted=pairs, lock=lock_first)
        left = {key: account.available for key, account in accounts.items()}
        fits: list[tuple[int, int, object, _Draft]] = []  # (entry number, request index, user, draft)
        for number, (user, drafts) in enumerate(entries):
            for index, draft in drafts.items():
                key = (user.pk, draft.hold_asset.id)
                if left[key] >= draft.hold:
                    left[key] -= draft.hold
                    fits.append((number, index, user, draft))
                else:
                    outcomes[number][index] = InsufficientFunds(draft.hold_asset.code)
        if not fits:
            return outcomes
        now = timezone.now()
        orders = _orders_insert(fits=[(user, draft) for _, _, user, draft in fits], now=now)
        journal.orders_accepted_insert(orders=orders, now=now)
        holds_post(
            accounts=accounts,
            holds=[
                ((user.pk, draft.hold_asset.id), draft.hold, f"order:{order.pk}:hold")
                for order, (_, _, user, draft) in zip(orders, fits, strict=True)
            ],
        )
        transaction.on_commit(partial(_commands_push, kind=PLACE, orders=orders), robust=True)
    for order, (number, index, _, _) in zip(orders, fits, strict=True):
        outcomes[number][index] = order
    return outcomes


def _orders_insert(*, fits: list[tuple[object, _Draft]], now: datetime) -> list[Order]:
    stamp = _naive(now)
    params: list = []
    for user, draft in fits:
        request = draft.request
        params += [
            user.pk,
            draft.market.pk,
            request.client_order_id,
            request.side,
            request.type,
            request.price,
            request.quantity,
            request.quote_quantity,
            draft.protection_price,
            request.time_in_force,
            request.post_only,
            request.stp,
            draft.hold,
            _naive(request.expire_at),
            stamp,
            stamp,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Order._meta.db_table} ({_ORDER_COLUMNS}) VALUES {', '.join([_ORDER_ROW] * len(fits))} "
            "RETURNING id",
            params,
        )
        ids = [row[0] for row in cursor.fetchall()]
    orders = []
    for order_id, (user, draft) in zip(ids, fits, strict=True):
        request = draft.request
        order = Order(
            id=order_id,
            user_id=user.pk,
            client_order_id=request.client_order_id,
            side=request.side,
            type=request.type,
            price=request.price,
            quantity=request.quantity,
            quote_quantity=request.quote_quantity,
            protection_price=draft.protection_price,
            time_in_force=request.time_in_force,
            post_only=request.post_only,
            stp=request.stp,
            status=Order.Status.PENDING,
            hold_remaining=draft.hold,
            expire_at=request.expire_at,
            created_at=now,
            updated_at=now,
        )
        order.market = draft.market
        order._state.adding = False
        orders.append(order)
    return orders


def _commands_push(*, kind: str, orders: Sequence[Order]) -> None:
    commands_push(commands=[(order.market.shard, kind, order.pk) for order in orders])


def order_place(
    *,
    user,
    symbol: str,
    side: str,
    type: str = Order.Type.LIMIT,
    quantity=None,
    price=None,
    quote_quantity=None,
    time_in_force: str = Order.TimeInForce.GTC,
    post_only: bool = False,
    stp: str = Order.Stp.CANCEL_NEWEST,
    client_order_id: str | None = None,
    expire_at=None,
) -> tuple[Order, bool]:
    """Place one order (``orders_place`` with a batch of one). Returns (order, created); raises RuleViolation.

    The same ``client_order_id`` with the same fields returns the existing order and places nothing.
    Python callers may give amounts as Decimal (or int) and ``expire_at`` as an aware datetime.
    """
    request = {
        "symbol": symbol,
        "side": side,
        "type": type,
        "quantity": _as_text(quantity),
        "price": _as_text(price),
        "quote_quantity": _as_text(quote_quantity),
        "time_in_force": time_in_force,
        "post_only": post_only,
        "stp": stp,
        "client_order_id": client_order_id,
        "expire_at": expire_at.isoformat() if isinstance(expire_at, datetime) else expire_at,
    }
    result = orders_place(user=user, requests=[request])[0]
    if result.error is not None:
        raise result.error
    return result.order, result.status == 201


def _as_text(value):
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


@retry_on_deadlock
def order_cancel(*, user, order_id: int) -> Order:
    """Ask the engine to cancel; the request travels the same queue as new orders, behind them."""
    with transaction.atomic(durable=True):
        # Only the order row is locked: joined to its market, the query would lock the market row too
        # (MariaDB has no FOR UPDATE OF), and every settlement inserting that market's trades waits on it.
        order = Order.objects.select_for_update().filter(user=user, pk=order_id).first()
        if order is None:
            raise NotFound("No such order.", code="order_not_found")
        if order.status in Order.FINAL_STATUSES:
            raise RuleViolation("order_not_open", f"The order is already {order.status}.", status_code=400)
        if order.cancel_requested_at is None:
            order.cancel_requested_at = timezone.now()
            order.save(update_fields=["cancel_requested_at", "updated_at"])
            journal.cancels_requested_insert(
                rows=[(order.pk, order.filled_quantity, order.filled_quote, order.quantity)],
                at=order.cancel_requested_at,
            )
        # Asked again while still live: a retry after a lost answer, whose first push may have died
        # with its process. Queued again, so the engine sees the cancel before what the client sends
        # next; the engine ignores a cancel of an order it has already ended.
        transaction.on_commit(partial(_commands_push, kind=CANCEL, orders=[order]), robust=True)
    return order


@retry_on_deadlock
def orders_cancel_all(*, user, symbol: str | None = None) -> int:
    """Ask the engine to cancel every live order of the user (of one market, or all): one transaction,
    set-based. Returns how many orders were newly asked to cancel."""
    market = None
    if symbol:
        market = market_lookup(symbol=symbol)
        if market is None:
            raise RuleViolation("unknown_market", f"Unknown market {symbol!r}.", fields={"symbol": ["Unknown market."]})
    statuses = ", ".join(f"'{status}'" for status in Order.LIVE_STATUSES)
    where = f"user_id = %s AND status IN ({statuses})"
    params: list = [user.pk]
    if market is not None:
        where += " AND market_id = %s"
        params.append(market.pk)
    table = Order._meta.db_table
    with transaction.atomic(durable=True):
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, market_id, filled_quantity, filled_quote, quantity, cancel_requested_at FROM {table} "
                f"WHERE {where} ORDER BY id FOR UPDATE",
                params,
            )
            rows = cursor.fetchall()
            if not rows:
                return 0
            new = [row for row in rows if row[5] is None]
            now = timezone.now()
            if new:
                cursor.execute(
                    f"UPDATE {table} SET cancel_requested_at = %s, updated_at = %s "
                    f"WHERE id IN ({', '.join(str(int(row[0])) for row in new)})",
                    [_naive(now), _naive(now)],
                )
        if new:
            journal.cancels_requested_insert(rows=[(row[0], row[2], row[3], row[4]) for row in new], at=now)
        shards = dict(Market.objects.filter(pk__in={row[1] for row in rows}).values_list("pk", "shard"))
        # Every live order's cancel is queued, those asked before too: this may be the retry of a
        # cancel-all whose process died between its commit and its queue push (see order_cancel).
        transaction.on_commit(
            partial(_cancel_commands_push, commands=[(shards[row[1]], row[0]) for row in rows]), robust=True
        )
    return len(new)


def _cancel_commands_push(*, commands: Sequence[tuple[int, int]]) -> None:
    commands_push(commands=[(shard, CANCEL, order_id) for shard, order_id in commands])


def order_cancel_by_client_id(*, user, client_order_id: str) -> Order:
    order = order_for_client_id(user=user, client_order_id=client_order_id)
    return order_cancel(user=user, order_id=order.pk)
