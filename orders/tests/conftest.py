"""Fixtures of the order tests: a market and a funded trader on it."""

import pytest

from .factories import MarketFactory


@pytest.fixture
def market(db):
    return MarketFactory()


@pytest.fixture
def trader(funded, market):
    return funded(USD="1000", BTC="2")
