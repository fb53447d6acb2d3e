import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import TOTP

from accounts.tests.factories import UserFactory
from audit.models import AuditEntry
from exchange_site import redis as redis_
from funding.models import FundingRequest
from funding.services import deposit_request, withdrawal_request
from funding.tests.factories import TOTPDeviceFactory, operator_create, otp_login
from ledger.models import Transfer
from ledger.selectors import balance_of

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/funding/fundingrequest/"


def totp_now(device) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def test_the_admin_requires_a_verified_device(client):
    staff = get_user_model().objects.create_superuser("root", "r@example.com", "root-pass-123")
    client.force_login(staff)
    assert client.get("/admin/").status_code == 302  # signed in, but not verified: back to the login page
    device = TOTPDeviceFactory(user=staff)
    client.logout()
    wrong = client.post("/admin/login/", {"username": "root", "password": "root-pass-123", "otp_token": "000000"})
    assert wrong.status_code == 200 and client.get("/admin/").status_code == 302
    # A wrong token throttles the device for a second (django-otp); the operator waits that out.
    device.refresh_from_db()
    device.throttle_reset()
    right = client.post(
        "/admin/login/?next=/admin/",
        {
            "username": "root",
            "password": "root-pass-123",
            "otp_device": device.persistent_id,
            "otp_token": totp_now(device),
        },
    )
    assert right.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_operators_approve_and_reject_in_bulk_each_audited(client, funded):
    operator = operator_create()
    otp_login(client, operator)
    traders = [funded(USD="100") for _ in range(3)]
    withdrawals = [withdrawal_request(user=t, asset="USD", amount="40", destination="acct")[0] for t in traders]
    deposit, _ = deposit_request(user=traders[0], asset="USD", amount="5")
    approve = [withdrawals[0].pk, withdrawals[1].pk, deposit.pk]
    response = client.post(CHANGELIST, {"action": "approve_selected", "_selected_action": approve})
    assert response.status_code == 302
    assert balance_of(user=traders[0], asset_code="USD") == Decimal("65")  # 60 + the confirmed 5
    assert balance_of(user=traders[1], asset_code="USD", kind="locked") == 0
    # Reject asks for a reason first, then releases the hold.
    form = client.post(CHANGELIST, {"action": "reject_selected", "_selected_action": [withdrawals[2].pk]})
    assert form.status_code == 200 and b"reason" in form.content
    assert FundingRequest.objects.get(pk=withdrawals[2].pk).status == "pending"
    client.post(
        CHANGELIST, {"action": "reject_selected", "_selected_action": [withdrawals[2].pk], "reason": "bad account"}
    )
    assert balance_of(user=traders[2], asset_code="USD") == Decimal("100")
    # Approving what is already decided changes nothing and says so.
    again = client.post(CHANGELIST, {"action": "approve_selected", "_selected_action": approve}, follow=True)
    assert b"already completed" in again.content
    assert sorted(AuditEntry.objects.values_list("action", flat=True)) == [
        "deposit_confirm",
        "withdrawal_approve",
        "withdrawal_approve",
        "withdrawal_reject",
    ]
    assert all(entry.actor == operator for entry in AuditEntry.objects.all())


def test_staff_without_the_permission_cannot_approve(client, funded):
    staff = UserFactory(is_staff=True)
    otp_login(client, staff)
    trader = funded(USD="10")
    withdrawal, _ = withdrawal_request(user=trader, asset="USD", amount="10", destination="a")
    assert client.get(CHANGELIST).status_code == 403
    client.post(CHANGELIST, {"action": "approve_selected", "_selected_action": [withdrawal.pk]})
    assert FundingRequest.objects.get().status == "pending"
    assert client.get("/admin/overview/").status_code == 403
    assert not AuditEntry.objects.exists()


def test_a_viewer_without_decide_permission_gets_no_actions(client, funded):
    from django.contrib.auth.models import Permission

    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_fundingrequest"))
    otp_login(client, staff)
    withdrawal, _ = withdrawal_request(user=funded(USD="10"), asset="USD", amount="10", destination="a")
    assert client.get(CHANGELIST).status_code == 200
    client.post(CHANGELIST, {"action": "approve_selected", "_selected_action": [withdrawal.pk]})
    assert FundingRequest.objects.get().status == "pending"


def test_overview_shows_custody_pending_withdrawals_and_the_last_ledger_check(client, funded):
    otp_login(client, operator_create())
    trader = funded(USD="100")
    withdrawal_request(user=trader, asset="USD", amount="30", destination="a")
    page = client.get("/admin/overview/")
    assert page.status_code == 200
    custody = {row["asset"]: row for row in page.context["custody"]}
    assert (custody["USD"]["users"], custody["USD"]["custody"], custody["USD"]["difference"]) == (
        Decimal("100"),
        Decimal("100"),
        Decimal("0"),
    )
    assert page.context["pending_withdrawals"] == [{"asset__code": "USD", "count": 1, "amount": Decimal("30")}]
    assert b"never" in page.content
    redis_.client().set(
        redis_.key("ledger_check", "last"),
        json.dumps(
            {"ok": False, "problems": ["asset USD: balances sum to 1"], "at": "2026-01-01T00:00:00Z", "seconds": 0.2}
        ),
    )
    page = client.get("/admin/overview/").content.decode()
    assert "FAILED" in page and "asset USD: balances sum to 1" in page


def test_a_double_submitted_balance_adjustment_adjusts_once(client, user, usd):
    operator = get_user_model().objects.create_superuser("ops", "ops@example.com", "ops-pass-123")
    otp_login(client, operator)
    url = f"/admin/auth/user/{user.pk}/adjust-balance/"
    form = client.get(url)
    reference = form.context["form"]["reference"].value()
    assert reference
    fields = {"asset": usd.pk, "direction": "credit", "amount": "5", "reason": "goodwill", "reference": reference}
    assert client.post(url, fields).status_code == 302
    second = client.post(url, fields)
    assert second.status_code == 200 and b"already recorded" in second.content
    assert balance_of(user=user, asset_code="USD") == Decimal("5")
    assert Transfer.objects.get().reference == f"adjustment:{reference}"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.reason) == ("balance_adjust", operator, "goodwill")


def test_totpdevice_command_prints_a_key_whose_token_signs_in(client):
    from django.core.management import call_command

    get_user_model().objects.create_superuser("boss", "b@example.com", "boss-pass-123")
    import io

    out = io.StringIO()
    call_command("totpdevice", "boss", stdout=out)
    url, key = out.getvalue().split()[-2:]
    assert url.startswith("otpauth://totp/")
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(key=key)
    response = client.post(
        "/admin/login/?next=/admin/",
        {
            "username": "boss",
            "password": "boss-pass-123",
            "otp_device": device.persistent_id,
            "otp_token": totp_now(device),
        },
    )
    assert response.status_code == 302 and client.get("/admin/").status_code == 200


def test_seed_demo_gives_the_operator_a_device_whose_token_signs_in(client):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Operator 2FA: add otpauth://totp/" in out.getvalue()
    token = io.StringIO()
    call_command("totptoken", "operator", stdout=token)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "operator", "password": "operator-demo-pass", "otp_token": token.getvalue().strip()},
    )
    assert response.status_code == 302 and client.get("/admin/").status_code == 200
