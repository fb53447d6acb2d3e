"""What the shard worker calls after each committed batch. (Contract; implemented in this app.)"""

from __future__ import annotations


def depth_reset(*, symbol: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """Replace the stored depth of a market (worker start-up); returns the new sequence."""
    raise NotImplementedError


def batch_publish(
    *,
    depth_changes: dict[str, dict[str, list[tuple[str, str]]]],
    trades: dict[str, list[dict]],
    orders: dict[int, list[dict]],
    fills: dict[int, list[dict]],
    balance_users: set[int],
) -> None:
    """Publish one settled batch: per market depth changes and trades, per user orders, fills, balances."""
    raise NotImplementedError
