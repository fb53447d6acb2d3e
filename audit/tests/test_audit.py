import pytest

from accounts.tests.factories import UserFactory
from audit.models import AuditEntry
from audit.services import audit_record


@pytest.mark.django_db
def test_an_entry_records_who_what_and_why_and_cannot_be_deleted():
    operator = UserFactory(is_staff=True)
    entry = audit_record(actor=operator, action="market_halt", target="BTC-USD", reason="maintenance")
    assert (entry.actor_label, entry.action, entry.target, entry.reason) == (
        operator.get_username(),
        "market_halt",
        "BTC-USD",
        "maintenance",
    )
    with pytest.raises(PermissionError):
        entry.delete()
    assert AuditEntry.objects.count() == 1


@pytest.mark.django_db
def test_the_admin_offers_no_way_to_add_change_or_delete(admin_client):
    audit_record(actor="manage.py haltmarket", action="market_halt", target="BTC-USD")
    entry = AuditEntry.objects.get()
    assert admin_client.get("/admin/audit/auditentry/").status_code == 200
    assert admin_client.get("/admin/audit/auditentry/add/").status_code == 403
    assert admin_client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()
