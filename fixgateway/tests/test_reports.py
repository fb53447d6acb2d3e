"""How one published order object and its fills of a batch become ExecutionReports."""

from fixgateway.reports import reports_for_event


def order(**changes):
    base = {
        "id": 7,
        "client_order_id": "C7",
        "symbol": "BTC-USD",
        "side": "buy",
        "type": "limit",
        "price": "101",
        "quantity": "1",
        "quote_quantity": None,
        "time_in_force": "IOC",
        "status": "open",
        "filled_quantity": "0",
        "remaining_quantity": "1",
        "average_price": None,
        "reject_reason": None,
    }
    return {**base, **changes}


def fill(fill_id, price, quantity):
    return {"id": fill_id, "order_id": 7, "price": price, "quantity": quantity}


def fields(report) -> dict:
    return dict(report)


def test_fills_of_one_batch_report_running_totals_then_the_ioc_remainder_expires():
    event = order(status="expired", filled_quantity="0.6", remaining_quantity="0", average_price="100.5")
    reports = [fields(r) for r in reports_for_event(event, [fill(11, "100", "0.3"), fill(13, "101", "0.3")])]
    assert [(r[150], r[39], r[14], r[151], r[6], r[31], r[32]) for r in reports[:2]] == [
        ("F", "1", "0.3", "0.7", "100", "100", "0.3"),
        ("F", "1", "0.6", "0", "100.5", "101", "0.3"),
    ]
    assert (reports[2][150], reports[2][39], reports[2][14], reports[2][151]) == ("C", "C", "0.6", "0")
    assert len({r[17] for r in reports}) == 3


def test_a_later_fill_continues_from_what_earlier_batches_filled():
    event = order(status="filled", filled_quantity="1", remaining_quantity="0", average_price="100.4")
    (report,) = [fields(r) for r in reports_for_event(event, [fill(21, "101", "0.4")])]
    assert (report[150], report[39], report[14], report[151], report[6]) == ("F", "2", "1", "0", "100.4")


def test_opening_alone_reports_nothing_and_a_requested_cancel_uses_the_cancel_clordid():
    assert reports_for_event(order(status="open"), []) == []
    (report,) = [fields(r) for r in reports_for_event(order(status="canceled"), [], cancel_cl_ord_id="X1")]
    assert (report[150], report[39], report[11], report[41]) == ("4", "4", "X1", "C7")
