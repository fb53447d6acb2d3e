"""A deliberately naive order book with the engine's documented semantics: the reference model.

It keeps all resting orders in one flat list and re-sorts the opposite side by (price, arrival
seq) on every command. FOK is modelled independently of the engine's pre-check: it runs the order
as an IOC on a deep copy of the model and keeps the result only if the order filled.

The engine's property tests (test_engine_properties.py) and the random stream through the real
API and shard (stream.py) both check against it.
"""

from __future__ import annotations

import copy

from matching.engine import BUY, CANCELED, EXPIRED, FILLED, OPEN, PARTIALLY_FILLED, REJECTED, SELL, OrderUpdate, Trade


class _ModelOrder:
    def __init__(self, order_id, owner, side, price, rem, filled, spent, seq, stp):
        self.order_id = order_id
        self.owner = owner
        self.side = side
        self.price = price
        self.rem = rem
        self.filled = filled
        self.spent = spent
        self.seq = seq
        self.stp = stp


class RefBook:
    """Deliberately naive order book with the documented semantics."""

    def __init__(self):
        self.orders: list[_ModelOrder] = []
        self.seq = 0

    # queries
    def _side(self, side):
        if side == BUY:
            return sorted((o for o in self.orders if o.side == BUY), key=lambda o: (-o.price, o.seq))
        return sorted((o for o in self.orders if o.side == SELL), key=lambda o: (o.price, o.seq))

    def resting_orders(self):
        return [(o.order_id, o.owner, o.side, o.price, o.rem) for o in self._side(BUY) + self._side(SELL)]

    def depth(self):
        out = []
        for side in (BUY, SELL):
            levels: list[list[int]] = []
            for o in self._side(side):
                if levels and levels[-1][0] == o.price:
                    levels[-1][1] += o.rem
                else:
                    levels.append([o.price, o.rem])
            out.append([tuple(lv) for lv in levels])
        return tuple(out)

    def _find(self, order_id):
        for o in self.orders:
            if o.order_id == order_id:
                return o
        return None

    # commands
    def restore(self, *, order_id, owner, side, price, remaining, filled=0, spent=0, stp="cancel_newest"):
        self.seq += 1
        self.orders.append(_ModelOrder(order_id, owner, side, price, remaining, filled, spent, self.seq, stp))

    def cancel(self, *, order_id):
        o = self._find(order_id)
        if o is None:
            return [], [OrderUpdate(order_id, -1, REJECTED, 0, 0, 0, "unknown_order")]
        self.orders.remove(o)
        return [], [OrderUpdate(order_id, o.owner, CANCELED, o.filled, 0, o.spent, "canceled_by_user")]

    def place(
        self,
        *,
        order_id,
        owner,
        side,
        price,
        quantity,
        quote_budget=None,
        tif="GTC",
        post_only=False,
        stp="cancel_newest",
        market=False,
    ):
        assert self._find(order_id) is None
        opp = self._side(SELL if side == BUY else BUY)
        if post_only and not market and opp:
            best = opp[0].price
            if (side == BUY and price >= best) or (side == SELL and price <= best):
                return [], [OrderUpdate(order_id, owner, REJECTED, 0, 0, 0, "post_only_would_cross")]
        if tif == "FOK":
            trial = copy.deepcopy(self)
            trades, updates = trial._execute(order_id, owner, side, price, quantity, quote_budget, "IOC", stp, market)
            if updates[-1].status != FILLED:
                return [], [OrderUpdate(order_id, owner, EXPIRED, 0, 0, 0, "fok_not_fillable")]
            self.orders, self.seq = trial.orders, trial.seq
            return trades, updates
        trades, updates = self._execute(order_id, owner, side, price, quantity, quote_budget, tif, stp, market)
        return trades, updates

    def _execute(self, order_id, owner, side, price, quantity, budget, tif, stp, market):
        trades, updates = [], []
        remaining = quantity
        filled = spent = 0
        self_trade = budget_stop = False
        for m in self._side(SELL if side == BUY else BUY):
            if remaining is not None and remaining == 0:
                break
            if price is not None and ((side == BUY and m.price > price) or (side == SELL and m.price < price)):
                break
            if budget is not None and (budget - spent) // m.price == 0:
                budget_stop = True
                break
            if m.owner == owner and stp != "none":
                if stp in ("cancel_oldest", "cancel_both"):
                    self.orders.remove(m)
                    updates.append(OrderUpdate(m.order_id, m.owner, CANCELED, m.filled, 0, m.spent, "self_trade"))
                if stp == "cancel_oldest":
                    continue
                self_trade = True
                break
            f = m.rem
            if remaining is not None:
                f = min(f, remaining)
            if budget is not None:
                f = min(f, (budget - spent) // m.price)
            m.rem -= f
            m.filled += f
            m.spent += f * m.price
            trades.append(Trade(m.order_id, order_id, m.owner, owner, side, m.price, f))
            if m.rem == 0:
                self.orders.remove(m)
                updates.append(OrderUpdate(m.order_id, m.owner, FILLED, m.filled, 0, m.spent))
            else:
                updates.append(OrderUpdate(m.order_id, m.owner, PARTIALLY_FILLED, m.filled, m.rem, m.spent))
            filled += f
            spent += f * m.price
            if remaining is not None:
                remaining -= f
            if m.rem:
                # the maker survives: either the order is complete or the
                # budget cannot buy another lot at this price
                budget_stop = remaining is None or remaining > 0
                break
        full = remaining is not None and remaining == 0
        if self_trade:
            upd = OrderUpdate(order_id, owner, EXPIRED, filled, 0, spent, "self_trade")
        elif full:
            upd = OrderUpdate(order_id, owner, FILLED, filled, 0, spent)
        elif market:
            if quantity is None and budget_stop and filled:
                upd = OrderUpdate(order_id, owner, FILLED, filled, 0, spent)
            else:
                upd = OrderUpdate(
                    order_id, owner, EXPIRED, filled, 0, spent, "ioc_remainder" if filled else "no_liquidity"
                )
        elif tif == "GTC":
            self.seq += 1
            self.orders.append(_ModelOrder(order_id, owner, side, price, remaining, filled, spent, self.seq, stp))
            upd = OrderUpdate(order_id, owner, PARTIALLY_FILLED if filled else OPEN, filled, remaining, spent)
        else:
            upd = OrderUpdate(order_id, owner, EXPIRED, filled, 0, spent, "ioc_remainder")
        updates.append(upd)
        return trades, updates
