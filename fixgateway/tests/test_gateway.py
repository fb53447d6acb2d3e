"""The FIX acceptor as a real process, with a real shard process, driven by a simplefix client."""

from decimal import Decimal

import pytest

from accounts.services import token_create
from fixgateway.models import FixMessage, FixSession
from orders.models import Order
from orders.tests.factories import MarketFactory

from .client import FixClient, tag

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def trader(funded, **balances):
    user = funded(**balances)
    _, key = token_create(user=user)
    return user, key


def new_order(client, cl_ord_id, side, price, quantity, *, tif="1", extra=()):
    fields = [(11, cl_ord_id), (55, "BTC-USD"), (54, side), (40, "2"), (44, price), (38, quantity), (59, tif)]
    client.send("D", fields + list(extra))


def assert_journal_matches(client: FixClient, username: str) -> None:
    """The journal holds exactly what the client sent and saw, with the same sequence numbers."""
    journal = FixMessage.objects.filter(session__sender_comp_id=username)
    inbound = [(m.seq_num, m.msg_type) for m in journal.filter(direction="in")]
    outbound = [(m.seq_num, m.msg_type) for m in journal.filter(direction="out")]
    assert inbound == client.sent
    assert outbound == [(int(tag(m, 34)), tag(m, 35)) for m in client.received]
    assert [m.raw.encode("latin-1") for m in journal.filter(direction="out")] == [
        m.encode(raw=True) for m in client.received
    ]


def test_two_sessions_trade_cancel_and_reject_with_execution_reports(shard_worker, fix_acceptor, funded):
    MarketFactory()
    seller, seller_key = trader(funded, BTC="2")
    buyer, buyer_key = trader(funded, USD="1000")
    a = FixClient(fix_acceptor.port, sender=seller.username, token=seller_key)
    b = FixClient(fix_acceptor.port, sender=buyer.username, token=buyer_key)
    assert tag(a.logon(), 35) == "A" and tag(b.logon(), 35) == "A"

    new_order(a, "A1", "2", "100", "0.5")
    ack = a.expect("8", t11="A1", t150="0")
    assert (tag(ack, 39), tag(ack, 14), tag(ack, 151)) == ("0", "0", "0.5")
    seller_order = int(tag(ack, 37))
    assert Order.objects.get(pk=seller_order).client_order_id == "A1"

    new_order(b, "B1", "1", "101", "0.3")
    assert tag(b.expect("8", t11="B1", t150="0"), 39) == "0"
    taker = b.expect("8", t11="B1", t150="F")
    assert [tag(taker, t) for t in (39, 14, 151, 6, 31, 32)] == ["2", "0.3", "0", "100", "100", "0.3"]
    maker = a.expect("8", t11="A1", t150="F")
    assert [tag(maker, t) for t in (39, 14, 151, 6, 31, 32)] == ["1", "0.3", "0.2", "100", "100", "0.3"]
    assert tag(maker, 17) != tag(taker, 17)

    b.send("D", [(11, "B-market"), (55, "BTC-USD"), (54, "1"), (40, "1"), (38, "0.1")])
    b.expect("8", t11="B-market", t150="0")
    market = b.expect("8", t11="B-market", t150="F")
    assert [tag(market, t) for t in (39, 14, 6, 59)] == ["2", "0.1", "100", "3"]
    maker = a.expect("8", t11="A1", t150="F")
    assert [tag(maker, t) for t in (39, 14, 151, 6, 32)] == ["1", "0.4", "0.1", "100", "0.1"]

    a.send("F", [(11, "A1-cancel"), (41, "A1"), (55, "BTC-USD"), (54, "2")])
    assert tag(a.expect("8", t11="A1-cancel", t150="6"), 41) == "A1"
    canceled = a.expect("8", t11="A1-cancel", t150="4")
    assert [tag(canceled, t) for t in (37, 41, 39, 14, 151)] == [str(seller_order), "A1", "4", "0.4", "0"]

    new_order(b, "B2", "1", "100.005", "0.1")
    rejected = b.expect("8", t11="B2")
    assert (tag(rejected, 150), tag(rejected, 39), tag(rejected, 37)) == ("8", "8", "NONE")
    assert "tick size" in tag(rejected, 58)
    assert not Order.objects.filter(client_order_id="B2").exists()

    b.send("F", [(11, "B-cancel"), (41, "NOPE"), (55, "BTC-USD"), (54, "1")])
    cancel_reject = b.expect("9", t11="B-cancel")
    assert [tag(cancel_reject, t) for t in (102, 434)] == ["1", "1"]

    new_order(b, "B1", "1", "101", "0.3")  # the same ClOrdID again: nothing new is placed
    assert tag(b.expect("8", t11="B1", t150="I"), 39) == "2"
    assert Order.objects.filter(user=buyer).count() == 2

    for client in (a, b):
        client.send("5", [])
        client.expect("5")
        assert client.closed()
    shard_worker.wait_idle()
    assert Order.objects.get(pk=seller_order).status == Order.Status.CANCELED
    assert Order.objects.get(user=buyer, client_order_id="B1").filled_quantity == Decimal("0.3")
    assert_journal_matches(a, seller.username)
    assert_journal_matches(b, buyer.username)


def test_sequence_numbers_persist_and_gaps_are_resent_or_filled(fix_acceptor, funded):
    user, key = trader(funded)
    client = FixClient(fix_acceptor.port, sender=user.username, token=key)
    assert tag(client.logon(), 34) == "1"
    client.send("1", [(112, "ping-1")])
    assert tag(client.expect("0"), 112) == "ping-1"
    client.send("5", [])
    client.expect("5")
    assert client.closed()

    # The client lost its messages 4 and 5: logging on with 6 makes the acceptor ask for them.
    first = FixClient(fix_acceptor.port, sender=user.username, token=key, next_out=6)
    logon = first.logon()
    assert tag(logon, 34) == "4"  # the acceptor's numbers continue too
    resend = first.expect("2")
    assert [tag(resend, t) for t in (34, 7, 16)] == ["5", "4", "0"]
    first.send("4", [(123, "Y"), (36, "7")], seq=4, poss_dup=True)

    # The client asks for everything again: one gap fill answers, with a reused number.
    first.next_out = 7
    first.send("2", [(7, "1"), (16, "0")])
    fill = first.expect("4")
    assert [tag(fill, t) for t in (34, 43, 123, 36)] == ["1", "Y", "Y", "6"]
    first.send("2", [(7, "2"), (16, "3")])  # a bounded range ends where it was asked to
    bounded = first.expect("4")
    assert [tag(bounded, t) for t in (34, 36)] == ["2", "4"]
    first.send("1", [(112, "ping-2")])
    assert tag(first.expect("0", t112="ping-2"), 34) == "6"

    # A number already used, without PossDupFlag, ends the session.
    first.send("0", [], seq=3)
    logout = first.expect("5")
    assert "MsgSeqNum too low, expecting 10 but received 3" in tag(logout, 58)
    assert first.closed()

    session = FixSession.objects.get(sender_comp_id=user.username)
    assert (session.next_in_seq, session.next_out_seq) == (10, 8)
    inbound = list(FixMessage.objects.filter(session=session, direction="in").values_list("seq_num", "note"))
    assert inbound[-1] == (3, "MsgSeqNum too low")
    assert (6, "beyond gap: awaiting resend") in inbound
    outbound = list(FixMessage.objects.filter(session=session, direction="out").values_list("seq_num", "msg_type"))
    assert outbound == [(1, "A"), (2, "0"), (3, "5"), (4, "A"), (5, "2"), (1, "4"), (2, "4"), (6, "0"), (7, "5")]


def test_heartbeats_and_a_silent_client_is_tested_then_logged_out(fix_acceptor, funded):
    user, key = trader(funded)
    client = FixClient(fix_acceptor.port, sender=user.username, token=key)
    client.logon(heartbeat=1)
    client.expect("0", timeout=10)  # the acceptor's own heartbeat when it has nothing to say
    probe = client.expect("1", timeout=10)  # the client said nothing for too long
    client.send("0", [(112, tag(probe, 112))])
    client.expect("1", timeout=10)  # silent again: probed again, and this time no answer
    assert "heartbeat timeout" in tag(client.expect("5", timeout=10), 58)
    assert client.closed()


def test_logon_refused_without_a_token_of_the_user(fix_acceptor, funded):
    user, _ = trader(funded)
    other, other_key = trader(funded)
    client = FixClient(fix_acceptor.port, sender=user.username, token=other_key)
    reply = client.logon()
    assert tag(reply, 35) == "5" and "API token" in tag(reply, 58)
    assert client.closed()
    assert not FixSession.objects.exists()
    refused = FixMessage.objects.filter(sender_comp_id=user.username, note="logon refused")
    assert sorted(refused.values_list("direction", "msg_type")) == [("in", "A"), ("out", "5")]

    first = FixClient(fix_acceptor.port, sender=other.username, token=other_key)
    assert tag(first.logon(), 35) == "A"
    second = FixClient(fix_acceptor.port, sender=other.username, token=other_key)
    assert "already logged on" in tag(second.logon(), 58)
    first.send("1", [(112, "still-here")])
    assert tag(first.expect("0"), 112) == "still-here"  # the first connection is undisturbed


def test_gtd_order_carries_its_expire_time_or_is_refused_with_a_reason(fix_acceptor, funded):
    from fixgateway.server import _accepts_expire_at

    MarketFactory()
    user, key = trader(funded, USD="100")
    client = FixClient(fix_acceptor.port, sender=user.username, token=key)
    client.logon()
    new_order(client, "G1", "1", "10", "1", tif="6", extra=[(126, "20300101-00:00:00")])
    report = client.expect("8", t11="G1")
    if _accepts_expire_at():
        assert tag(report, 150) == "0"
        assert Order.objects.get(user=user).expire_at.isoformat() == "2030-01-01T00:00:00+00:00"
    else:
        assert tag(report, 150) == "8" and "GTD" in tag(report, 58)
        assert not Order.objects.filter(user=user).exists()
